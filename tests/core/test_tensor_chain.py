"""The tensor chain rule in numbers (explain.tensor_chain / element_chain) against torch.autograd, float64."""

import numpy as np
import pytest
import torch

from explorer.core.autograd import explain
from explorer.core.autograd.trace import trace
from explorer.core.numbers import fmt_number

W0 = [[0.5, -1.0], [2.0, 0.25], [1.5, -0.5]]
X0 = [[1.0, 2.0], [-0.5, 0.3]]


def _program():
    """W (3x2) is read twice: by a matmul and by an elementwise product."""
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(X0, dtype=torch.float64)

    def fn():
        A = W @ x
        S = torch.sigmoid(A)
        B = S * W
        L = (B * B).sum()
        return L, {"W": W, "A": A, "S": S, "B": B, "L": L}

    return fn


def _autograd():
    """dL/dW, dL/dA, dL/dB straight from torch.autograd.grad (no tracer)."""
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(X0, dtype=torch.float64)
    A = W @ x
    B = torch.sigmoid(A) * W
    L = (B * B).sum()
    gW, gA, gB = torch.autograd.grad(L, [W, A, B])
    return {"W": gW.numpy(), "A": gA.numpy(), "B": gB.numpy(), "S": torch.sigmoid(A).detach().numpy()}


@pytest.fixture(scope="module")
def traced():
    tr = trace(_program())
    return tr, {n.name: nid for nid, n in tr.nodes.items() if n.name}


def test_each_path_is_upstream_times_local_and_the_paths_sum_to_autograd(traced):
    tr, ids = traced
    ref = _autograd()
    tc = explain.tensor_chain(tr, ids["W"])
    assert tc.name == "dL/dW" and len(tc.terms) == 2  # both uses of W, not only one
    np.testing.assert_allclose(sum(t.result for t in tc.terms), ref["W"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tc.total, ref["W"], rtol=1e-12, atol=1e-14)
    by_op = {tr.nodes[t.consumer_id].op: t for t in tc.terms}
    matmul, mul = by_op["matmul"], by_op["mul"]
    np.testing.assert_allclose(matmul.upstream, ref["A"], rtol=1e-12)
    assert matmul.local is None and "@" in matmul.local_formula  # a matrix rule: no elementwise factor
    np.testing.assert_allclose(matmul.result, ref["A"] @ np.array(X0).T, rtol=1e-12)
    np.testing.assert_allclose(mul.upstream, ref["B"], rtol=1e-12)
    np.testing.assert_allclose(mul.local, ref["S"], rtol=1e-12)  # ∂(S × W)/∂W = S, element by element
    np.testing.assert_allclose(mul.result, mul.upstream * mul.local, rtol=1e-12)


@pytest.mark.parametrize("name", ["W", "A", "S", "B"])
def test_every_elements_own_chain_sums_to_autograds_number(traced, name):
    tr, ids = traced
    grad = np.asarray(tr.nodes[ids[name]].grad.data).reshape(tr.nodes[ids[name]].grad.shape)
    if name in ("W", "A", "B"):
        np.testing.assert_allclose(grad, _autograd()[name], rtol=1e-12)
    for index in np.ndindex(grad.shape):
        total = explain.element_chain_total(tr, ids[name], index)
        assert total == pytest.approx(grad[index], rel=1e-12, abs=1e-14), (name, index)


def test_the_element_chain_reads_term_by_term(traced):
    tr, ids = traced
    lines = explain.element_chain(tr, ids["W"], (1, 0))
    text = "\n".join(lines)
    assert lines[0] == "dL/dW[1, 0] ="
    assert sum(line.startswith("via ") for line in lines) == 2
    # the matmul path sums over the outputs that W[1, 0] feeds: A[1, 0] = ... and A[1, 1] = ...
    assert "Σ_m dL/dA[m] × ∂A[m]/∂W[1, 0]" in text and f"× {fmt_number(X0[0][1])}" in text
    expected = fmt_number(float(_autograd()["W"][1, 0]))
    assert f"sum over the 2 paths: dL/dW[1, 0] = {expected}" in text
    assert lines[-1] == f"autograd: W.grad[1, 0] = {expected}"


def test_chain_rule_text_shows_numbers_not_a_tensor_placeholder(traced):
    tr, ids = traced
    text = explain.chain_rule_text(tr, ids["W"])
    assert "[tensor" not in text
    assert fmt_number(float(_autograd()["W"][0, 0])) in text and "sum over the 2 uses" in text


def test_big_tensors_and_scalars_get_no_grids():
    W = torch.randn(5, 13, dtype=torch.float64, requires_grad=True)  # 65 elements

    def fn():
        return (W * W).sum(), {"W": W}

    tr = trace(fn)
    wid = next(i for i, n in tr.nodes.items() if n.name == "W")
    assert explain.tensor_chain(tr, wid) is None
    assert explain.tensor_chain(tr, tr.output_id) is None
