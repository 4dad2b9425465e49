"""Regressions found by a correctness review of the expression language, tracer and gradient checks."""

import pytest
import torch

from explorer.core.autograd.gradcheck import compare_grads
from explorer.core.autograd.trace import trace
from explorer.core.lang.program import ExprError, parse


def test_int_param_finite_differences_run_in_float64():
    # `param([1, 2])` becomes float32, but its finite differences must still perturb in float64
    report = compare_grads(parse("x = param([1, 2]); y = (x * x).sum()"))
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad((x * x).sum(), x)
    check = report.params["x"]
    assert torch.allclose(check.autograd, expected)
    assert torch.allclose(check.numeric, expected, atol=1e-6)
    assert report.max_abs_error < 1e-6


def test_int_scalar_param_finite_differences():
    report = compare_grads(parse("x = param(3); y = x * x"))
    assert abs(float(report.params["x"].numeric) - 6.0) < 1e-6


def test_loss_against_a_plain_number_target():
    # mse(x, 3): the target is broadcast with expand_as(·, x), a const node that reads the param
    report = compare_grads(parse("x = param([1.0, 2.0]); y = mse(x, 3)"))
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (expected,) = torch.autograd.grad(torch.nn.functional.mse_loss(x, torch.full((2,), 3.0)), x)
    check = report.params["x"]
    assert torch.allclose(check.autograd.float(), expected)
    assert torch.allclose(check.numeric.float(), expected, atol=1e-5)
    assert check.manual is not None and torch.allclose(check.manual.float(), expected)


def test_cross_entropy_int_target_shaped_like_logits_explains_itself():
    # torch reads a target of the logits' shape as probabilities; "needs floating-point tensors" misled
    for src in (
        "z = param(1.0); L = cross_entropy(z, 0)",
        "z = param([[1.0, 2.0]]); L = cross_entropy(z, [[0, 1]])",
    ):
        with pytest.raises(ExprError) as info:
            parse(src).run()
        message = str(info.value)
        assert message.startswith("line 1:")
        assert "probabilities" in message and "one whole number per row" in message


def test_unnamed_vector_leaf_is_not_labelled_like_a_number():
    # `[5.0, 7.0]` was labelled "2" (its shape), which reads as the constant 2 next to a real `2`
    tr = trace(parse("a = param([[1.0, 2.0], [3.0, 4.0]]); L = (a * [5.0, 7.0] * 2).sum()").callable())
    leaves = {n.label for n in tr.nodes.values() if n.kind in ("leaf", "const") and not n.inputs}
    assert "2" not in leaves  # the number 2 stays a number inside MulBackward0, as in torch
    assert "(2,)" in leaves  # the vector of two elements


def test_grad_json_tells_an_infinite_gradient_from_a_missing_one(capsys):
    # sqrt(0): autograd's gradient is inf and finite differences hit sqrt(-eps) = NaN; both were null,
    # which also means "finite differences skipped". Written as the trace's JSON writes them instead.
    import json

    from explorer.cli import main

    assert main(["grad", "-e", "x = param([0.0, 4.0]); y = sqrt(x).sum()", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["grads"]["x"] == ["inf", 0.25]
    assert data["numeric_grads"]["x"][0] == "nan"
    assert data["numeric_grads"]["x"][1] == pytest.approx(0.25)
    assert data["max_abs_error"] == "nan"
    assert main(["grad", "-e", "x = param(0.0); y = log(x)", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"]["value"] == "-inf" and data["grads"]["x"] == "inf"


def test_finite_difference_time_limit_covers_all_params_together():
    # the 20 s guard was per param: eight 40×40 weights took minutes. The limit is now for the whole check.
    import time

    from explorer.core.autograd.gradcheck import finite_difference_grads

    def slow_sum(values):
        time.sleep(0.01)
        return sum(v.sum() for v in values.values())

    # about 0.06 s of runs per param, 2.4 s for all forty: the 1 s budget stops well before the last, and
    # leaves room for the first even on a loaded machine (where a sleep lasts longer than asked)
    params = {f"p{i}": torch.zeros(3) for i in range(40)}
    out = finite_difference_grads(slow_sum, params, max_seconds=1.0)
    assert out["p0"] is not None and torch.allclose(out["p0"], torch.ones(3, dtype=torch.float64))
    assert out["p39"] is None


def test_long_sum_and_huge_program_errors_say_what_to_do():
    # `L = p0 + p1 + ... + p119` nests 120 additions; the error said only "nested more than 100 levels"
    params = "\n".join(f"p{i} = param({i}.0)" for i in range(120))
    src = params + "\nL = " + " + ".join(f"p{i}" for i in range(120))
    with pytest.raises(ExprError) as info:
        parse(src)
    assert str(info.value).startswith("line 121:5:") and "split" in str(info.value)
    long = "a = param(0.5)\n" + "a = sin(a)\n" * 3_500
    with pytest.raises(ExprError) as info:
        parse(long)
    assert "syntax nodes" in str(info.value) and "split" in str(info.value)
