"""Programs, scalar and tensor: the language's gradients equal torch.autograd.grad on the same
computation written directly in torch here, and float64 finite differences agree with both."""

import pytest
import torch
import torch.nn.functional as F

from explorer.core.autograd.gradcheck import compare_grads
from explorer.core.lang.program import parse

# (program, the same computation in plain torch: f(P, E) with P the params, E the program's data values)
PROGRAMS = {
    "seed": (
        "x = 1.1\ny = 1.0\nw = param(2.2)\nb = param(0.0)\nz = w * x + b\na = sigmoid(z)\nL = bce(a, y)",
        lambda P, E: F.binary_cross_entropy(torch.sigmoid(P["w"] * E["x"] + P["b"]), torch.tensor(E["y"])),
    ),
    "polynomial": (
        "x = param(1.5); y = 3 * x ** 3 - 2 * x + 1",
        lambda P, E: 3 * P["x"] ** 3 - 2 * P["x"] + 1,
    ),
    "division": (
        "a = param(2.0); b = param(-3.0); y = a / b + b / (a * a)",
        lambda P, E: P["a"] / P["b"] + P["b"] / (P["a"] * P["a"]),
    ),
    "unary_chain": (
        "x = param(0.7); y = exp(sin(x)) * cos(x) + log(sqrt(x + 2))",
        lambda P, E: torch.exp(torch.sin(P["x"])) * torch.cos(P["x"]) + torch.log(torch.sqrt(P["x"] + 2)),
    ),
    "tanh_abs_neg": (
        "x = param(-0.4); y = tanh(-x) * abs(x)",
        lambda P, E: torch.tanh(-P["x"]) * torch.abs(P["x"]),
    ),
    "reused_value": (
        "x = param(0.3); s = sigmoid(x); y = s * s + s",
        lambda P, E: torch.sigmoid(P["x"]) ** 2 + torch.sigmoid(P["x"]),
    ),
    "power_of_param": ("a = param(1.3); b = param(0.8); y = a ** b", lambda P, E: P["a"] ** P["b"]),
    "gelu_relu": (
        "x = param([0.5, -1.2, 2.0]); y = (gelu(x) + relu(x * 2)).sum()",
        lambda P, E: (F.gelu(P["x"]) + torch.relu(P["x"] * 2)).sum(),
    ),
    "vector_mean": (
        "v = param([1.0, -2.0, 0.5, 4.0]); y = mean(v * v)",
        lambda P, E: (P["v"] * P["v"]).mean(),
    ),
    "matmul_sum": (
        "seed(0)\nW = param(randn(3, 4))\nx = randn(4)\ny = (W @ x).sum()",
        lambda P, E: (P["W"] @ E["x"]).sum(),
    ),
    "matmul_both": (
        "A = param([[1.0, 2.0], [3.0, -1.0]]); B = param([[0.5, -1.0, 2.0], [1.5, 0.0, 1.0]])\n"
        "C = A @ B; y = (C * C).mean()",
        lambda P, E: ((P["A"] @ P["B"]) ** 2).mean(),
    ),
    "broadcast_bias": (
        "seed(1); X = randn(4, 3); b = param([0.1, -0.2, 0.3]); y = tanh(X + b).sum()",
        lambda P, E: torch.tanh(E["X"] + P["b"]).sum(),
    ),
    "broadcast_column": (
        "seed(2); X = randn(3, 5); c = param([[1.0], [2.0], [-1.0]]); y = (X * c).sum()",
        lambda P, E: (E["X"] * P["c"]).sum(),
    ),
    "reshape_view": (
        "w = param([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]); M = w.reshape(2, 3); V = M.view(3, 2)\ny = (V @ M).sum()",
        lambda P, E: (P["w"].view(3, 2) @ P["w"].reshape(2, 3)).sum(),
    ),
    "transpose_T": (
        "A = param([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]); G = A @ A.T; y = sum(G * G)",
        lambda P, E: ((P["A"] @ P["A"].T) ** 2).sum(),
    ),
    "transpose_fn": (
        "A = param([[1.0, -2.0], [3.0, 0.5]])\nB = transpose(A, 0, 1)\n"
        "y = (B * [[1.0, 2.0], [3.0, 4.0]]).sum()",
        lambda P, E: (P["A"].transpose(0, 1) * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum(),
    ),
    "softmax_weighted": (
        "z = param([1.0, 2.0, 0.5]); p = softmax(z, 0); y = (p * [1.0, -1.0, 3.0]).sum()",
        lambda P, E: (torch.softmax(P["z"], 0) * torch.tensor([1.0, -1.0, 3.0])).sum(),
    ),
    "log_softmax_rows": (
        "Z = param([[1.0, 2.0, 0.5], [0.1, -0.3, 0.9]]); y = log_softmax(Z, 1).mean()",
        lambda P, E: torch.log_softmax(P["Z"], 1).mean(),
    ),
    "cross_entropy": (
        "logits = param([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]); L = cross_entropy(logits, [0, 2])",
        lambda P, E: F.cross_entropy(P["logits"], torch.tensor([0, 2])),
    ),
    "nll": (
        "z = param([[0.2, 0.9, -1.0]]); lp = log_softmax(z, 1); L = nll(lp, [1])",
        lambda P, E: F.nll_loss(torch.log_softmax(P["z"], 1), torch.tensor([1])),
    ),
    "mse": (
        "w = param([0.5, -0.5]); x = [[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]]; y = [1.0, 2.0, 0.0]\n"
        "L = mse(x @ w, y)",
        lambda P, E: F.mse_loss(E["x"] @ P["w"], E["y"]),
    ),
    "bce_with_logits": (
        "z = param([0.3, -1.2, 2.0]); L = bce_with_logits(z, [1.0, 0.0, 1.0])",
        lambda P, E: F.binary_cross_entropy_with_logits(P["z"], torch.tensor([1.0, 0.0, 1.0])),
    ),
    "layer_norm": (
        "x = param([[1.0, 2.0, 4.0, -1.0], [0.5, 0.0, 3.0, 1.0]]); h = layer_norm(x)\n"
        "y = (h * [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, -1.0, 2.0]]).sum()",
        lambda P, E: (
            F.layer_norm(P["x"], (4,)) * E["h"].new_tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, -1.0, 2.0]])
        ).sum(),
    ),
    "linear_layer": (
        "seed(3)\nx = randn(2, 4)\nW = param(randn(3, 4) * 0.5)\nb = param(zeros(3))\n"
        "y = sigmoid(linear(x, W, b)).sum()",
        lambda P, E: torch.sigmoid(F.linear(E["x"], P["W"], P["b"])).sum(),
    ),
    "one_hidden_layer": (
        "seed(4)\nx = randn(1, 10)\ny = [[1.0]]\nW1 = param(randn(5, 10) * 0.3)\nb1 = param(zeros(5))\n"
        "W2 = param(randn(1, 5) * 0.3)\nb2 = param(zeros(1))\nh = relu(linear(x, W1, b1))\n"
        "p = sigmoid(linear(h, W2, b2))\nL = bce(p, y)",
        lambda P, E: F.binary_cross_entropy(
            torch.sigmoid(F.linear(torch.relu(F.linear(E["x"], P["W1"], P["b1"])), P["W2"], P["b2"])), E["y"]
        ),
    ),
    "max_min": (
        "v = param([0.3, 2.0, -1.0, 0.7]); y = max(v) * 2 - min(v * v)",
        lambda P, E: P["v"].max() * 2 - (P["v"] * P["v"]).min(),
    ),
    "unsqueeze_squeeze_flatten": (
        "a = param([1.0, 2.0, 3.0]); c = unsqueeze(a, 1) @ unsqueeze(a, 0)\n"
        "y = squeeze(flatten(c).reshape(1, 9)).sum() + mean(c, 0).sum()",
        lambda P, E: (
            (P["a"][:, None] @ P["a"][None, :]).sum() + (P["a"][:, None] @ P["a"][None, :]).mean(0).sum()
        ),
    ),
    "dtype_float64": (
        "w = param([0.5, 1.5]); d = to(w, float64); y = (d * d).sum().to(float32)",
        lambda P, E: (P["w"].double() ** 2).sum().float(),
    ),
    "sum_along_dim": (
        "M = param([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]); r = sum(M, 1); y = (r * r).mean()",
        lambda P, E: (P["M"].sum(1) ** 2).mean(),
    ),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_gradients(name):
    source, reference = PROGRAMS[name]
    program = parse(source)
    assert program.param_names, "every program here differentiates something"
    report = compare_grads(program)
    run = program.run()
    data = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in run.env.items()
            if k not in program.param_names}
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in program.param_values().items()}
    expected_out = reference(leaves, data)
    expected = torch.autograd.grad(expected_out, list(leaves.values()))
    assert report.output.item() == pytest.approx(expected_out.item(), rel=1e-5, abs=1e-6)
    for pname, direct in zip(leaves, expected, strict=True):
        check = report.params[pname]
        direct = direct.to(torch.float64)
        assert check.autograd.shape == direct.shape
        assert torch.allclose(check.autograd, direct, rtol=1e-5, atol=1e-6), (pname, check.autograd, direct)
        assert check.numeric is not None
        assert torch.allclose(check.numeric, direct, rtol=1e-3, atol=1e-4), (pname, check.numeric, direct)
        if check.manual is not None:  # the op table's own formulas, step by step
            assert torch.allclose(check.manual, direct, rtol=1e-4, atol=1e-5), (pname, check.manual, direct)
            MANUAL_SEEN.add(name)
    assert report.max_abs_error < 1e-3


MANUAL_SEEN: set[str] = set()


def test_manual_formulas_cover_most_programs():
    for name in PROGRAMS:
        if name not in MANUAL_SEEN:
            test_program_gradients(name)
    assert len(MANUAL_SEEN) >= 27, sorted(set(PROGRAMS) - MANUAL_SEEN)


def test_there_are_enough_programs_of_both_kinds():
    scalar = [
        n for n, (s, _) in PROGRAMS.items() if all(v.numel() == 1 for v in parse(s).param_values().values())
    ]
    assert len(PROGRAMS) >= 25
    assert len(scalar) >= 5 and len(PROGRAMS) - len(scalar) >= 15


def test_backward_with_inputs_accumulates_into_those_leaves_only():
    # `inputs=` was passed to torch.autograd.backward as its fifth positional argument (grad_variables, a
    # deprecated alias of grad_tensors): a program's `loss.backward(inputs=[w])` failed with a shape error
    source = ("import torch\n"
              "w = torch.tensor([0.5, -1.0], requires_grad=True)\n"
              "b = torch.tensor(0.3, requires_grad=True)\n"
              "loss = ((w * torch.tensor([2.0, 3.0])).sum() + b) ** 2\n"
              "loss.backward(inputs=[w], retain_graph=True)\n"
              "torch.autograd.backward(loss * 1.0, inputs=[b])\n")
    env = parse(source).run().env
    w, b = torch.tensor([0.5, -1.0], requires_grad=True), torch.tensor(0.3, requires_grad=True)
    loss = ((w * torch.tensor([2.0, 3.0])).sum() + b) ** 2
    loss.backward(inputs=[w], retain_graph=True)
    torch.autograd.backward(loss * 1.0, inputs=[b])
    assert torch.equal(env["w"].grad, w.grad) and torch.equal(env["b"].grad, b.grad)
