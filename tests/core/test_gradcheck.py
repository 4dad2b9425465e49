"""Finite differences beside autograd, and the chain rule read off a real trace."""

import numpy as np
import pytest
import torch

from explorer.core.autograd.gradcheck import chain_rule, chain_rules, compare_grads, finite_difference_grads
from explorer.core.autograd.trace import trace
from explorer.core.lang.program import ExprError, parse
from tests.core.test_programs import PROGRAMS

SEED = PROGRAMS["seed"][0]


def test_finite_differences_of_a_plain_function():
    values = {"a": torch.tensor([1.0, -2.0, 0.5]), "s": torch.tensor(3.0)}
    grads = finite_difference_grads(lambda v: (v["a"] ** 2).sum() * v["s"], values)
    assert grads["a"].dtype == torch.float64
    assert torch.allclose(grads["a"], torch.tensor([6.0, -12.0, 3.0], dtype=torch.float64), atol=1e-6)
    assert grads["s"].item() == pytest.approx(5.25, abs=1e-6)


def test_finite_differences_skip_large_params_and_need_a_scalar():
    program = parse("w = param(ones(5)); y = (w * w).sum()")
    assert finite_difference_grads(program, max_elements=4) == {"w": None}
    report = compare_grads(program, max_fd_elements=4)
    assert report.params["w"].numeric is None and "5 elements" in report.params["w"].skipped
    slow = compare_grads(program, max_fd_seconds=0.0)  # any run takes longer than no time at all
    assert slow.params["w"].numeric is None and "10 runs" in slow.params["w"].skipped
    with pytest.raises(ExprError, match="scalar"):
        finite_difference_grads(parse("w = param(ones(2)); y = w * 2"))


def test_compare_grads_on_the_seed_example():
    report = compare_grads(parse(SEED))
    assert report.output_name == "L" and report.output.item() == pytest.approx(0.0852, abs=5e-5)
    w, b = report.params["w"], report.params["b"]
    assert w.autograd.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert b.numeric.item() == pytest.approx(-0.0816603, abs=1e-6)
    assert w.max_abs_error < 1e-6 and report.max_abs_error == max(w.max_abs_error, b.max_abs_error)
    assert report.max_rel_error < 1e-5


def test_compare_grads_without_params_reports_the_output_only():
    report = compare_grads(parse("A = [[1, 2], [3, 4]]; B = A @ A"))
    assert report.params == {} and report.output.tolist() == [[7, 10], [15, 22]]


@pytest.fixture(scope="module")
def seed_trace():
    return trace(parse(SEED).callable())


def _by_name(tr, name):
    return next(n for n in tr.nodes.values() if n.name == name)


def test_seed_trace_orders(seed_trace):
    tr = seed_trace
    ops_forward = [tr.nodes[i].op for i in tr.forward_order if tr.nodes[i].kind == "op"]
    assert ops_forward == ["mul", "add", "sigmoid", "binary_cross_entropy"]
    ops_backward = [tr.nodes[i].torch_name for i in tr.backward_order if tr.nodes[i].kind == "op"]
    assert ops_backward == ["BinaryCrossEntropyBackward0", "SigmoidBackward0", "AddBackward0", "MulBackward0"]
    leaves_backward = [tr.nodes[i].name for i in tr.backward_order if tr.nodes[i].kind == "param"]
    assert sorted(leaves_backward) == ["b", "w"]


def test_chain_rule_numbers_at_each_seed_node(seed_trace):
    tr = seed_trace
    sig = chain_rule(tr, _by_name(tr, "a").id)
    assert sig.text == "dL/dz = dL/da × σ(z)(1 − σ(z)) = -0.0817"
    assert sig.local_formula == "σ(z)(1 − σ(z))"
    assert sig.local == pytest.approx(0.0749919, abs=1e-6)  # σ(2.42)(1 − σ(2.42))
    assert sig.upstream.item() == pytest.approx(-1.0889216, abs=1e-5)
    assert sig.numbers == "-1.0889 × 0.0750 = -0.0817"
    assert sig.manual_result == pytest.approx(sig.result.item(), abs=1e-6)

    bce = chain_rule(tr, _by_name(tr, "L").id)
    # y = 1.0 is a Python number, so torch sees the number itself (as it would in a script)
    assert bce.text == "dL/da = dL/dL × (a − 1) / (a(1 − a)) = -1.0889"
    assert bce.upstream.item() == 1.0

    add_b = chain_rules(tr, _by_name(tr, "z").id)[1]
    assert add_b.text == "dL/db = dL/dz × 1 = -0.0817"

    mul = tr.nodes[_by_name(tr, "z").inputs[0]]
    mul_w = chain_rule(tr, mul.id)
    # x = 1.1 is a plain number: the op is MulBackward0 with the constant, as in torch, not a leaf
    assert mul.inputs == [_by_name(tr, "w").id] and mul.torch_name == "MulBackward0"
    assert mul_w.text == "dL/dw = dL/d(w × 1.1) × 1.1 = -0.0898"
    assert mul_w.local == pytest.approx(1.1, abs=1e-6)
    assert len(chain_rules(tr, mul.id)) == 1

    leaf = chain_rule(tr, _by_name(tr, "w").id)
    assert leaf.text.startswith("dL/dw = ") and leaf.text.endswith("-0.0898")
    assert leaf.result.item() == pytest.approx(-0.0898263, abs=1e-6)


def test_leaf_without_gradient_says_so():
    tr = trace(parse("x = [1.0, 2.0]\nw = param(0.5)\ny = (w * x).sum()").callable())
    rule = chain_rule(tr, _by_name(tr, "x").id)
    assert rule.result is None and "no gradient reaches `x`" in rule.text


def test_tensor_chain_rules_use_shapes_and_formulas():
    tr = trace(parse(PROGRAMS["linear_layer"][0]).callable())
    # only the program's own values and ops: no stray nodes from the language's shape checks
    assert [tr.nodes[i].op or tr.nodes[i].name for i in tr.forward_order] == [
        "x",
        "W",
        "b",
        "linear",
        "sigmoid",
        "sum",
    ]
    lin = next(n for n in tr.nodes.values() if n.op == "linear")
    rules = chain_rules(tr, lin.id)
    w_rule = rules[1]
    assert w_rule.result.shape == (3, 4)
    assert "dL/dW = " in w_rule.text and "ᵀ @ x" in w_rule.text and "[tensor (3, 4)]" in w_rule.text


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_manual_local_derivatives_agree_with_torch_at_every_node(name):
    """Wherever the op table can compute upstream × local by hand, it equals what autograd sent."""
    tr = trace(parse(PROGRAMS[name][0]).callable())
    compared = 0
    for nid in tr.backward_order:
        for rule in chain_rules(tr, nid):
            if rule.manual_result is None or rule.result is None:
                continue
            expected = np.asarray(rule.result.data, dtype=np.float64).reshape(rule.result.shape)
            got = np.asarray(rule.manual_result, dtype=np.float64).reshape(rule.result.shape)
            assert np.allclose(got, expected, rtol=1e-4, atol=1e-6), (nid, rule.text, got, expected)
            compared += 1
    elementwise = {"sigmoid", "tanh", "exp", "mul", "add", "sub", "div", "binary_cross_entropy"}
    if any(n.op in elementwise for n in tr.nodes.values()):
        assert compared > 0


def test_plain_numbers_are_operands_the_chain_rule_can_name():
    tr = trace(parse("x = param(1.5); y = 3 - x").callable())
    node = _by_name(tr, "y")
    # the 3 stays a Python number (RsubBackward1 keeps it), written where the program wrote it
    assert [tr.nodes[i].label for i in node.inputs] == ["x"] and node.torch_name == "RsubBackward1"
    rule = chain_rule(tr, node.id)
    assert rule.text == "dL/dx = dL/dy × (−1) = -1.0000"
    tr = trace(parse("x = param(1.5); y = 3 * x ** 3").callable())
    power = tr.nodes[_by_name(tr, "y").inputs[0]]
    assert power.torch_name == "PowBackward0"  # `x ** 3` in torch: the exponent is no tensor
    assert chain_rule(tr, power.id).text == "dL/dx = dL/d(x ** 3) × 3·x^(3 − 1) = 20.2500"


def test_chain_rules_work_on_module_traces():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    tr = trace(lambda: torch.nn.functional.cross_entropy(net(x), y))
    checked = 0
    for nid in tr.nodes:
        for rule in chain_rules(tr, nid):
            assert rule.text.startswith(("dL/d", "no gradient reaches"))
            if rule.manual_result is not None and rule.result is not None:
                got = np.asarray(rule.manual_result).reshape(rule.result.shape)
                assert np.allclose(got, rule.result.data.reshape(rule.result.shape), atol=1e-5), rule.text
                checked += 1
    assert checked >= 4  # both linear layers (x, W, b), relu, the loss


def test_chain_rules_never_fail_on_an_attention_layer():
    torch.manual_seed(0)
    att = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    q = torch.randn(2, 3, 8)
    tr = trace(lambda: torch.softmax(att(q, q, q)[0], -1).sum(-1, keepdim=True).pow(2).mean())
    for nid in tr.nodes:
        for rule in chain_rules(tr, nid):
            assert len(rule.text) < 400
            if rule.manual_result is not None and rule.result is not None:
                got = np.asarray(rule.manual_result).reshape(rule.result.shape)
                assert np.allclose(got, rule.result.data.reshape(rule.result.shape), atol=1e-5), rule.text
