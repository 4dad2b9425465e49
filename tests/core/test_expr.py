"""The expression language: parsing, values, dtypes, randomness and its error messages."""

import pytest
import torch

from explorer.core.lang import ops
from explorer.core.lang.program import ExprError, parse

SEED = """x = 1.1
y = 1.0
w = param(2.2)
b = param(0.0)
z = w * x + b
a = sigmoid(z)
L = bce(a, y)"""


def error_of(source: str, run: bool = False) -> ExprError:
    with pytest.raises(ExprError) as info:
        program = parse(source)
        if run:
            program.run().require_scalar()
    return info.value


def test_seed_program_structure_and_values():
    program = parse(SEED)
    assert [s.name for s in program.statements] == ["x", "y", "w", "b", "z", "a", "L"]
    assert program.statements[4].line == 5 and program.statements[4].col == 1
    assert program.statements[4].source_text == "z = w * x + b"
    assert program.output_name == "L"
    assert program.param_names == ["w", "b"]
    run = program.run()
    assert run.output.item() == pytest.approx(0.0852, abs=5e-5)
    assert run.env["z"].item() == pytest.approx(2.42, abs=1e-6)
    assert run.env["a"].item() == pytest.approx(0.9183397, abs=1e-6)
    run.output.backward()
    assert run.params["w"].grad.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert run.params["b"].grad.item() == pytest.approx(-0.0816603, abs=1e-6)


def test_semicolons_and_comments_separate_statements():
    program = parse("x = 2.0; y = x * 3  # six\n# a comment line\nz = y + 1")
    assert [s.name for s in program.statements] == ["x", "y", "z"]
    assert program.statements[1].col == 10
    assert program.run().output.item() == 7.0


def test_tensor_literals_follow_torch_dtypes():
    env = parse("i = [[1, 2, 3], [4, 5, 6]]; f = [1.0, 2.5]; G = i @ i.T").run().env
    assert env["i"].dtype == torch.int64 and env["f"].dtype == torch.float32
    assert env["G"].tolist() == [[14, 32], [32, 77]]


def test_methods_shapes_and_views():
    env = (
        parse(
            "A = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]\n"
            "r = A.reshape(3, 2); v = A.view(6); t = A.transpose(0, 1); T = A.T\n"
            "s = A.sum(); m = A.mean(); d = A.to(float64); k = reshape(A, (3, -1))\n"
            "f = flatten(A); u = unsqueeze(f, 0); q = squeeze(u); e = eye(2); n = arange(4)\n"
        )
        .run()
        .env
    )
    assert env["r"].shape == (3, 2) and env["v"].shape == (6,) and env["k"].shape == (3, 2)
    assert not env["T"].is_contiguous() and env["T"].stride() == (1, 3)
    assert torch.equal(env["t"], env["T"])
    assert env["s"].item() == 21.0 and env["m"].item() == 3.5
    assert env["d"].dtype == torch.float64
    assert env["u"].shape == (1, 6) and env["q"].shape == (6,)
    assert env["e"].tolist() == [[1.0, 0.0], [0.0, 1.0]] and env["n"].dtype == torch.int64


def test_keyword_arguments_by_the_tables_names():
    out = parse("z = [[1.0, 2.0], [3.0, 0.0]]; s = softmax(z, dim=0)").run().output
    assert torch.allclose(out, torch.softmax(torch.tensor([[1.0, 2.0], [3.0, 0.0]]), 0))


def test_seed_makes_random_values_reproducible_and_matches_torch():
    a = parse("seed(3); r = randn(2, 3)").run().output
    b = parse("seed(3); r = randn(2, 3)").run().output
    c = parse("seed(4); r = randn(2, 3)").run().output
    torch.manual_seed(3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, torch.randn(2, 3))


def test_callable_skips_param_initialisers_but_sees_the_same_numbers():
    program = parse("seed(1); W = param(randn(3, 2) * 0.5); x = randn(2); h = (W @ x).sum()")
    out, names = program.callable()()
    run = program.run()
    assert torch.equal(out.detach(), run.output.detach())
    assert names["W"].is_leaf and names["W"].requires_grad
    assert torch.equal(names["x"], run.env["x"])


def test_overrides_and_float64_runs():
    program = parse(SEED)
    run = program.run(overrides={"w": 1.0}, dtype=torch.float64)
    assert run.params["w"].dtype == torch.float64 and run.params["w"].item() == 1.0
    assert run.env["x"] == 1.1  # a plain number stays a number, as in Python
    values = program.param_values()
    assert set(values) == {"w", "b"} and not values["w"].requires_grad
    with pytest.raises(ExprError, match="did you mean `w`"):
        program.run(overrides={"ww": 1.0})


def test_integer_param_becomes_float_leaf():
    w = parse("w = param(3); y = w * w").run().params["w"]
    assert w.dtype == torch.float32 and w.requires_grad and w.is_leaf


def test_dropout_is_deterministic_per_program():
    program = parse("seed(0); x = ones(100); d = dropout(x, 0.5)")
    a, b = program.run().output, program.run().output
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize(
    "source, line, col, needle",
    [
        ("x = 1.0\ny = x.__class__", 2, 6, "`.__class__`: attributes starting with `_` are not allowed"),
        ("y = 1 +", 1, 8, "invalid syntax"),
        ("# nothing here", 1, 1, "the program is empty"),
        ("y = 10 ** 400 * 1.0", 1, 5, "`a 401-digit number * 1.0` is too large"),
        ("import os", 1, 1, "`import os` is not allowed"),
        ("import numpy as np", 1, 1, "numpy is not available"),
        ("x = eval('1 + 1')", 1, 5, "`eval` is not allowed"),
        ("f = lambda x: x", 1, 5, "lambdas are not supported: define a function with `def`"),
        ("import torch\nx = torch.load('model.pt')", 2, 10, "`torch.load` is not allowed"),
        ("class A:\n    pass", 1, 1, "needs exactly one base class, nn.Module"),
        ("try:\n    x = 1\nexcept ValueError:\n    x = 2", 1, 1, "`try` is not supported"),
        ("x = 1\ndel x", 2, 1, "`del` is not supported"),
    ],
)
def test_parse_errors_say_where_and_what(source, line, col, needle):
    err = error_of(source)
    assert (err.line, err.col) == (line, col), str(err)
    assert needle in err.message
    assert str(err).startswith(f"line {line}:{col}: ")


@pytest.mark.parametrize(
    "source, line, col, needles",
    [
        ("a = ones(2, 3)\nb = ones(4)\nc = a + b", 3, 5, ["(2, 3)", "(4,)", "broadcast"]),
        ("a = ones(2, 3)\nc = a @ a", 2, 5, ["(2, 3) @ (2, 3)", "try `.T`"]),
        ("x = ones(3)\nW = ones(5, 4)\nh = linear(x, W)", 3, 5, ["(3,)", "(5, 4)"]),
        ("w = param(ones(3))\ny = w * 2", 2, 1, ["backward needs a scalar output: try `.sum()`", "(3,)"]),
        ("a = ones(2, 3)\nb = a.T.view(6)", 2, 8, ["contiguous", "reshape"]),
        ("a = ones(2, 3)\nb = a.reshape(4, 4)", 2, 6, ["(4, 4)", "6 elements"]),
        ("a = [1, 2, 3]\nm = mean(a)", 2, 5, ["floating-point", "int64"]),
        ("p = [2.0]\nL = bce(p, 1.0)", 2, 5, ["between 0 and 1"]),
        ("a = [[1.0, 2.0], [3.0]]", 1, 5, ["same length"]),
        ("a = ones(2, 2)\nb = [1, 2]\nc = a @ to(b, float64)", 3, 5, ["dtypes", "float32", "float64"]),
        ("x = 1 / 0", 1, 5, ["division by zero"]),
        ("z = randn(2, 3)\nL = cross_entropy(z, [0, 5])", 2, 5, ["class 5 does not exist"]),
        ("z = randn(2, 3)\nL = cross_entropy(z, [0.0, 1.0])", 2, 5, ["class indices as whole numbers"]),
        ("p = sigmoid(randn(3))\nL = bce(p, [1, 0])", 2, 5, ["target's shape (2,)", "(3,)"]),
        ("x = ones(6)\ny = reshape(x)", 2, 5, ["needs the new shape"]),
        ("x = (-8) ** 0.5", 1, 5, ["not a real number"]),
        ("x = ones(3)\ny = softmax(x, 4)", 2, 5, ["dimension 4 does not exist", "-1 to 0"]),
        ("x = ones(2, 3)\ny = x.T.T.transpose(0, 5)", 2, 10, ["dimension 5 does not exist"]),
        ("x = sigmod(2.0)", 1, 5, ["`sigmod` is not defined; did you mean `sigmoid`?"]),
        ("x = 1.0\ny = xx + 1", 2, 5, ["`xx` is not defined; did you mean `x`?"]),
        ("x = ones(2)\ny = x.sums()", 2, 6, ["did you mean `sum`?"]),
        ("y = softmax(1.0, axis=0)", 1, 5, ["has no argument `axis`"]),
        ("y = sigmoid(1.0, 2.0)", 1, 5, ["`sigmoid` takes fewer arguments"]),
        ("y = torch.sigmoid(2.0)", 1, 5, ["`torch` is not defined: add `import torch` at the top"]),
        ("import torch\nw = torch.ones(3, requires_grad=True)\ny = w * 2\ny.backward()", 4, 2,
         ["needs `gradient=`", "`.sum()`"]),  # at the dot of `.backward()`
    ],
)
def test_runtime_errors_say_where_and_what(source, line, col, needles):
    err = error_of(source, run=True)
    assert (err.line, err.col) == (line, col), str(err)
    for needle in needles:
        assert needle in err.message, err.message


def test_limits_are_checked_before_allocating(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("allocated")

    monkeypatch.setattr(ops.torch, "zeros", refuse)
    monkeypatch.setattr(ops.torch, "randn", refuse)
    for source in ("x = zeros(100000, 100000)", "x = randn(1001, 1000)", "x = eye(1001)"):
        assert "limit is 1,000,000" in error_of(source, run=True).message
    n = "n = 100000\nx = zeros(n, n)"  # sizes known only while running: checked before allocating too
    assert error_of(n, run=True).line == 2
    big = "a = ones(1000, 1)\nb = ones(1, 1001)\nc = a * b"
    monkeypatch.undo()
    err = error_of(big, run=True)
    assert err.line == 3 and "(1000, 1001)" in err.message


def test_every_table_entry_is_reachable_and_documented():
    for name, spec in ops.OPS.items():
        assert spec.label and spec.local_derivative and spec.doc, name
    for name in (
        "sigmoid",
        "tanh",
        "relu",
        "gelu",
        "exp",
        "log",
        "sqrt",
        "abs",
        "sin",
        "cos",
        "softmax",
        "log_softmax",
        "sum",
        "mean",
        "max",
        "min",
        "matmul",
        "transpose",
        "reshape",
        "view",
        "flatten",
        "unsqueeze",
        "squeeze",
        "to",
        "linear",
        "layer_norm",
        "dropout",
        "bce",
        "bce_with_logits",
        "mse",
        "cross_entropy",
        "nll",
        "param",
        "randn",
        "rand",
        "zeros",
        "ones",
        "eye",
        "arange",
        "seed",
    ):
        assert name in ops.FUNCTIONS, name
    assert set(ops.METHODS) >= {"sum", "mean", "reshape", "view", "transpose", "to"}
    assert ops.OPS["sigmoid"].local_derivative == "σ(z)(1 − σ(z))"
    assert ops.find_op("SigmoidBackward0").name == "sigmoid"
    assert ops.find_op("binary_cross_entropy").name == "bce"
    assert ops.find_op("MulBackward0").name == "mul"
    assert ops.find_op("nonsense") is None


def test_manual_local_derivatives_match_autograd():
    z = torch.linspace(0.2, 2.0, 7, dtype=torch.float64, requires_grad=True)
    for name in ("sigmoid", "tanh", "relu", "gelu", "exp", "log", "sqrt", "abs", "sin", "cos"):
        spec = ops.OPS[name]
        (expected,) = torch.autograd.grad(spec.fn(z).sum(), z)
        assert torch.allclose(spec.manual(z.detach())[0], expected), name


def test_the_language_reference_lists_every_function_and_method():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "expressions.md").read_text(encoding="utf-8")
    for name in ops.FUNCTIONS:
        assert f"`{ops.OPS[name].signature()}`" in text, name
    for method in ops.METHODS:
        assert f"`.{method}()`" in text, method


def test_every_dtype_converts_and_float64_runs_keep_precision_through_casts():
    env = (
        parse("x = [1.5, 2.25]\na = to(x, float16); b = to(x, bfloat16); c = to(x, int64); d = x.to(float64)")
        .run()
        .env
    )
    assert [env[k].dtype for k in "abcd"] == [torch.float16, torch.bfloat16, torch.int64, torch.float64]
    assert env["c"].tolist() == [1, 2]
    run = parse("w = param(0.1); h = to(w, float16); y = h * 3").run(dtype=torch.float64)
    assert run.env["h"].dtype == torch.float64  # finite differences are not spoiled by a float16 cast


def test_matrix_products_have_a_budget():
    from explorer.core.lang.interp import Limits

    program = parse("a = ones(10, 10); b = a @ a")
    program.limits = Limits(products=1_500)
    assert program.run().output.shape == (10, 10)  # 1,000 multiply-adds
    program = parse("a = ones(10, 10); b = a @ a; c = linear(b, a)")
    program.limits = Limits(products=1_500)
    with pytest.raises(ExprError) as info:
        program.run()
    assert info.value.col == 34 and "multiply-adds" in info.value.message


@pytest.mark.parametrize(
    "source, needle",
    [
        ("import torch\nx = torch.ones(2, 3)\ny = x.numpy()", "numpy is not available to programs: use .tolist() or .item()"),
        ("import torch\nx = torch.ones(2, 3)\ny = x.transpos(0, 1)", "did you mean `transpose`?"),
        ("import torch.nn.functional as F\nimport torch\nL = F.binary_cross_entrpy(torch.ones(1), torch.ones(1))",
         "did you mean `binary_cross_entropy`?"),
        ("import torch\nx = torch.sigmoidd(torch.ones(1))", "did you mean `sigmoid`?"),
        ("import torch\nx = torch.load('w.pt')", "`torch.load` is not allowed"),
        ("import torch\nt = torch\nx = t.save", "`torch.save` is not allowed"),
        ("x = 1\nx.backward()", "`.backward` is not available on a int"),
    ],
)
def test_pasted_code_gets_the_spelling_that_works(source, needle):
    err = error_of(source, run=True)
    assert needle in err.message, err.message


def test_what_used_to_be_refused_in_pasted_code_now_runs():
    # print, .t(), torch names, backward() on its own line, re-assignment, += (issue 19's list)
    run = parse(
        "import torch\nimport torch.nn.functional as F\n"
        "W = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)\n"
        "x = torch.tensor([1.0, -1.0])\n"
        "h = W.t() @ x\nh = h.relu()\nc = h.sum() * 2\nc += 1\n"
        "loss = F.binary_cross_entropy(torch.sigmoid(c), torch.tensor(1.0))\n"
        "loss.backward()\nprint(f'{loss.item():.3f}', W.grad.shape)\n"
    ).run()
    assert run.printed.startswith("0.") and "torch.Size([2, 2])" in run.printed
    assert run.output_name == "loss" and list(run.params) == ["W"]
