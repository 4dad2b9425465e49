"""What autograd keeps: the tracer's saved tensors are torch's own, and checkpointing trades them away."""

import pytest
import torch
import torch.nn.functional as F

from explorer.core.autograd.saved import hooks_total, recompute_steps, saved_by_module
from explorer.core.autograd.timeline import Timeline
from explorer.core.autograd.trace import trace
from explorer.core.gpt.model import GPT, GPTConfig, memory_estimate
from explorer.core.lang.ops import OPS
from explorer.core.lang.program import parse


def torch_saved(out: torch.Tensor) -> list[tuple[str, tuple, int]]:
    """(attribute, shape, bytes) of every tensor the autograd nodes behind ``out`` saved, read straight
    from their ``_saved_*`` attributes, walking down to the leaves."""
    found, stack, seen = [], [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen or type(fn).__name__ == "AccumulateGrad":
            continue
        seen.add(id(fn))
        for name in dir(fn):
            if name.startswith("_saved_"):
                value = getattr(fn, name)
                if isinstance(value, torch.Tensor):
                    found.append((name.removeprefix("_saved_"), tuple(value.shape),
                                  value.numel() * value.element_size()))
        stack.extend(nf for nf, _ in fn.next_functions)
    return sorted(found)


def traced_saved(tr) -> list[tuple[str, tuple, int]]:
    return sorted((s.attr, tuple(s.shape), s.bytes) for n in tr.nodes.values() for s in n.saved or ())


def param(*shape):
    return torch.randn(*shape, dtype=torch.float32, requires_grad=True)


CASES = {
    "sigmoid": (lambda x, w: torch.sigmoid(x @ w), {"sigmoid": {("output", (4, 3))}}),
    "mul": (lambda x, w: (x[:, :3] * w[0]), {"mul": {("input 0", (4, 3)), ("input 1", (3,))}}),
    "matmul": (lambda x, w: x @ w, {"matmul": {("input 0", (4, 5)), ("input 1", (5, 3))}}),
    "softmax": (lambda x, w: F.softmax(x @ w, dim=-1), {"softmax": {("output", (4, 3))}}),
    "layer_norm": (lambda x, w: F.layer_norm(x, (5,), w[:, 0], w[:, 1]),
                   {"layer_norm": {("input 0", (4, 5)), ("input 1", (5,)), ("input 2", (5,)),
                                   ("result1", (4, 1)), ("result2", (4, 1))}}),
    "linear": (lambda x, w: F.linear(x, w.T), {"linear": {("input 0", (4, 5)), ("input 1 (view)", (5, 3))}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_saved_tensors_are_torchs_own(name):
    fn, expected = CASES[name]
    torch.manual_seed(0)
    x = torch.randn(4, 5).requires_grad_()  # an input that wants its gradient: ops save for it too
    w = param(5, 3)
    holder = {}

    def run():
        holder["out"] = fn(x, w)
        return holder["out"].sum()

    tr = trace(run, backward=False)
    # the same tensors, shapes and bytes as the grad_fn attributes torch exposes
    assert traced_saved(tr) == torch_saved(holder["out"]), name
    roles = {n.op: {(s.role, tuple(s.shape)) for s in n.saved} for n in tr.nodes.values() if n.saved}
    for op, want in expected.items():
        assert roles[op] == want, (op, roles[op])
    for n in tr.nodes.values():
        for s in n.saved or ():
            assert s.bytes == int(torch.Size(s.shape).numel()) * 4


def test_json_has_saved_lists_and_a_total():
    x = torch.randn(3, requires_grad=True)
    tr = trace(lambda: torch.sigmoid(x).sum())
    data = tr.to_json()
    sig = next(n for n in data["nodes"] if n["op"] == "sigmoid")
    assert {k: sig["saved"][0][k] for k in ("role", "shape", "dtype", "bytes")} == {
        "role": "output", "shape": [3], "dtype": "float32", "bytes": 12}
    assert data["saved_bytes"] == 12
    assert all(isinstance(n["saved"], list) for n in data["nodes"] if n["kind"] == "op")


def test_a_storage_saved_twice_counts_once():
    x = torch.randn(6, requires_grad=True)

    def run():
        a = torch.sigmoid(x)  # saves a
        return (a * a).sum()  # saves a twice more

    tr = trace(run, backward=False)
    saved = [s for n in tr.nodes.values() for s in n.saved or ()]
    assert len(saved) == 3 and all(s.shared for s in saved)
    square = next(n for n in tr.nodes.values() if n.op == "mul")
    assert {s.role for s in square.saved} == {"inputs 0, 1 (one tensor)"}
    assert tr.saved_memory.total == 24  # x itself is not saved: one 6-float storage


def small_gpt(**changes) -> GPTConfig:
    cfg = GPTConfig(vocab_size=37, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    return cfg.replace(**changes)


def test_total_matches_hooks_accounting_on_a_gpt_block():
    torch.manual_seed(1)
    model = GPT(small_gpt(drop_rate=0.1)).train()
    block = model.blocks[0]
    x = torch.randn(2, 16, 32, requires_grad=True)
    state = torch.random.get_rng_state()
    expected = hooks_total(lambda: block(x).sum())
    torch.random.set_rng_state(state)
    tr = trace(lambda: block(x).sum(), backward=False)
    assert tr.saved_memory.total == expected
    assert tr.saved_memory.unattributed == 0  # every saved storage belongs to a node
    assert tr.saved_memory.params > 0 and tr.saved_memory.activations > 0


def test_checkpointing_a_block_lowers_saved_bytes_and_keeps_gradients():
    cfg = small_gpt(drop_rate=0.1)
    idx = torch.randint(0, 37, (2, 16), generator=torch.Generator().manual_seed(3))
    results = {}
    for ckpt in (False, True):
        torch.manual_seed(2)
        model = GPT(cfg).train()
        model.set_checkpointing([0] if ckpt else False)
        torch.manual_seed(5)  # the same dropout masks in both runs
        tr = trace(lambda m=model: m.loss(idx, idx))
        results[ckpt] = (tr, {k: p.grad.clone() for k, p in model.named_parameters()}, model)
    plain, ckpt = results[False], results[True]
    assert ckpt[0].saved_memory.activations < plain[0].saved_memory.activations
    per_block_plain, per_block_ckpt = saved_by_module(plain[0]), saved_by_module(ckpt[0])
    assert per_block_ckpt["blocks.0"] < per_block_plain["blocks.0"] / 10
    assert per_block_ckpt["blocks.1"] == per_block_plain["blocks.1"]
    assert ckpt[2].blocks[0].recomputations == 1 and plain[2].blocks[0].recomputations == 0
    for k, g in plain[1].items():
        torch.testing.assert_close(ckpt[1][k], g, rtol=0, atol=1e-6)
    assert any(s.recomputed for n in ckpt[0].nodes.values() for s in n.saved or ())
    timeline = Timeline(ckpt[0])
    at = recompute_steps(timeline)
    assert set(at) == {"blocks.0"} and timeline.event(at["blocks.0"])[0] == "backward"
    assert recompute_steps(Timeline(plain[0])) == {}


@pytest.mark.parametrize("cfg, batch", [
    (GPTConfig(vocab_size=103, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0), 4),
    (GPTConfig(vocab_size=200, context_length=32, emb_dim=32, n_heads=2, n_layers=3, drop_rate=0.1), 4),
    (GPTConfig(vocab_size=500, context_length=16, emb_dim=48, n_heads=3, n_layers=2, hidden_dim=96), 6),
])
def test_estimate_agrees_with_what_the_tracer_measures(cfg, batch):
    torch.manual_seed(0)
    model = GPT(cfg).train()
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length))
    tr = trace(lambda: model.loss(idx, idx), backward=False)
    estimate = memory_estimate(cfg, batch_size=batch)["activations"]
    measured = tr.saved_memory.activations
    assert 0.9 < estimate / measured < 1.1, (estimate, measured)


def test_saved_memory_falls_during_backward():
    x = torch.randn(8, 8, requires_grad=True)
    w = param(8, 8)

    def run():
        h = torch.tanh(x @ w)
        return torch.sigmoid(h @ w).sum()

    tr = trace(run)
    tl = Timeline(tr)
    alive = [tl.saved_bytes_at(k) for k in range(tl.length + 1)]
    peak = max(alive)
    assert alive[0] == 0 and peak == alive[tl.forward_length] > 0
    backward = alive[tl.forward_length:]
    assert all(a >= b for a, b in zip(backward, backward[1:], strict=False))  # never rises in backward
    assert backward[-1] == 0  # everything saved is freed once backward is done
    assert peak == tr.saved_memory.activations


def test_every_op_that_saves_has_a_reason():
    """The inspector's one-line reason lives in the op table: each op whose backward keeps a tensor
    (as the tracer finds on the op table's own sample inputs) has one, and ops that keep nothing do not
    claim to."""
    from tests.core.test_op_table import _run_fn, _samples

    missing, claiming = [], []
    for name, spec in OPS.items():
        if spec.kind == "constructor":
            continue
        values = tuple(v.clone().requires_grad_() if isinstance(v, torch.Tensor) and v.is_floating_point()
                       else v for v in _samples(spec))
        tr = trace(lambda spec=spec, values=values: torch.as_tensor(_run_fn(spec, values)).sum(),
                   backward=False)
        saves = any(n.saved for n in tr.nodes.values() if not n.is_output)  # not the test's own .sum()
        if saves and not spec.saved_reason:
            missing.append(name)
        if not saves and spec.saved_reason:
            claiming.append(name)
    assert not missing, f"ops that save tensors but give no reason: {missing}"
    assert not claiming, f"ops that keep nothing but give a reason: {claiming}"
    assert OPS["sigmoid"].saved_reason == "sigmoid keeps its output a: the backward needs a(1 − a)"


def test_training_with_checkpointed_blocks_matches_plain_training():
    """The training setting reaches the model through the child process's trainer factory, the step
    records carry time per step and peak memory, and the losses are those of plain training."""
    from explorer.core.gpt.child_process import make_trainer

    cfg = small_gpt(vocab_size=128).to_dict()
    settings = {"steps": 2, "batch_size": 2, "eval_every": 0, "sample_every": 0, "seed": 3}
    losses = {}
    for ckpt in (False, True):
        trainer = make_trainer(cfg, {**settings, "checkpoint_blocks": ckpt}, None)
        steps = [r for r in trainer.run() if r["type"] == "step"]
        assert all(b.checkpointed is ckpt for b in trainer.model.blocks)
        assert all(b.recomputations == (2 if ckpt else 0) for b in trainer.model.blocks)
        assert all(r["step_s"] > 0 and r["peak_memory_kind"] in ("rss", "allocated", None) for r in steps)
        losses[ckpt] = [r["train_loss"] for r in steps]
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)


def test_measuring_on_the_meta_device_costs_nothing_and_differs_only_in_attention():
    """GPT-2 at full size is measured on the meta device (no data) and agrees with the estimate. On the
    meta device attention runs its reference kernel, which keeps the (B, nh, T, T) attention matrix
    (a softmax result and the bmm inputs) where the CPU's fused kernel keeps a (B, nh, T) log-sum-exp:
    the two measurements differ by exactly that, so the estimate (which counts the matrix only with
    attention dropout, when the CPU also runs unfused) follows the real kernels. (The note of issue 13:
    why the meta measurement and the estimate can differ.)"""
    from explorer.core.gpt.model import measured_activation_bytes, preset

    cfg = preset("gpt2-124m")
    meta = measured_activation_bytes(cfg, 8)
    assert 0.9 < memory_estimate(cfg, batch_size=8)["activations"] / meta < 1.1
    small = small_gpt(drop_rate=0.0)
    B, T, nh, L = 2, small.context_length, small.n_heads, small.n_layers
    cpu = measured_activation_bytes(small, B, device="cpu")
    on_meta = measured_activation_bytes(small, B)
    # per layer the reference kernel keeps the softmax of the scores (B nh T T floats, also the input of
    # attn·v: one storage) where the fused one keeps the log-sum-exp (B nh T); q, k, v are kept by both
    assert on_meta - cpu == L * (B * nh * T * T - B * nh * T) * 4
    assert measured_activation_bytes(small, B, checkpoint_blocks=True) < on_meta / 2


# -- the same code in plain torch saves the same bytes (issue 19: a number stays a number) ----------

def _plain_saved_bytes(fn) -> int:
    """Bytes of the distinct storages torch packs for backward while `fn` runs (its own hooks)."""
    storages: dict = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


SAME_CODE = {
    "a ** 3 - 2 * a ** 2": lambda: _pow(),
    "sigmoid neuron": lambda: _neuron(),
}


def _pow():
    a = torch.tensor(2.0, requires_grad=True)
    return a**3 - 2 * a**2


def _neuron():
    w = torch.tensor(2.2, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    return torch.nn.functional.binary_cross_entropy(torch.sigmoid(w * 1.1 + b), torch.tensor(1.0))


PROGRAMS_AS_TEXT = {
    "a ** 3 - 2 * a ** 2": "import torch\na = torch.tensor(2.0, requires_grad=True)\ny = a ** 3 - 2 * a ** 2",
    "sigmoid neuron": ("import torch\nimport torch.nn.functional as F\n"
                       "w = torch.tensor(2.2, requires_grad=True)\n"
                       "b = torch.tensor(0.0, requires_grad=True)\n"
                       "L = F.binary_cross_entropy(torch.sigmoid(w * 1.1 + b), torch.tensor(1.0))"),
}


@pytest.mark.parametrize("name", sorted(SAME_CODE))
def test_saved_bytes_equal_plain_torch_on_the_same_code(name):
    from explorer.core.autograd.trace import trace_program

    tr = trace_program(parse(PROGRAMS_AS_TEXT[name])).last
    assert tr.saved_memory.total == _plain_saved_bytes(SAME_CODE[name])
    if name.startswith("a **"):
        pows = [n for n in tr.nodes.values() if n.torch_name and n.torch_name.startswith("Pow")]
        assert {n.torch_name for n in pows} == {"PowBackward0"}  # the exponent stays a number
        assert tr.saved_memory.total == 4  # one float32 `a`, saved by both powers
