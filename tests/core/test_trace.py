"""Tests of the tracer: it records what torch did, and its gradients are torch's."""

import json
import math

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.core.autograd.trace import Snapshot, TraceError, trace

# ---------------------------------------------------------------------------------------------- helpers


def seed_example(w=None, b=None):
    """DESIGN.md's seed: L = BCE(sigmoid(w*x + b), y) with x=1.1, w=2.2, b=0, y=1."""
    x = torch.tensor(1.1)
    y = torch.tensor(1.0)
    w = torch.tensor(2.2, requires_grad=True) if w is None else w
    b = torch.tensor(0.0, requires_grad=True) if b is None else b
    z = w * x + b
    a = torch.sigmoid(z)
    L = F.binary_cross_entropy(a, y)
    return L, {"x": x, "y": y, "w": w, "b": b, "z": z, "a": a, "L": L}


def by_name(tr):
    return {n.name: n for n in tr.nodes.values() if n.name}


def assert_backward_respects_topology(tr):
    """A node's grad_fn runs only after every consumer of its value has sent its gradient."""
    pos = {nid: i for i, nid in enumerate(tr.backward_order)}
    checked = 0
    for u, v in tr.graph.edges:
        if u in pos and v in pos:
            assert pos[v] < pos[u], f"{u} ran before its consumer {v}"
            checked += 1
    assert checked > 0


def assert_grads_match_direct(tr, fn):
    """Every named node's grad equals torch.autograd.grad computed directly on a fresh run of fn."""
    out, names = fn()
    named = {k: t for k, t in names.items() if isinstance(t, torch.Tensor) and t.requires_grad}
    assert named
    grads = torch.autograd.grad(out, list(named.values()), allow_unused=True)
    nodes = by_name(tr)
    for (name, _), g in zip(named.items(), grads, strict=True):
        node = nodes[name]
        assert node.grad is not None, name
        assert node.grad.shape == tuple(g.shape)
        if not node.grad.truncated:
            torch.testing.assert_close(torch.from_numpy(node.grad.data), g.double(), rtol=1e-5, atol=1e-6)


class CausalSelfAttention(nn.Module):
    """Hand-written single causal self-attention (minGPT style), optionally through SDPA."""

    def __init__(self, d=8, heads=2, ctx=4, sdpa=False):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


# ---------------------------------------------------------------------------------------------- seed


def test_seed_example_reference_numbers_and_orders():
    tr = trace(seed_example)
    n = by_name(tr)
    assert n["L"].value.item() == pytest.approx(0.0852, abs=5e-5)
    assert n["w"].grad.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert n["b"].grad.item() == pytest.approx(-0.0816603, abs=1e-6)
    assert n["z"].grad.item() == pytest.approx(-0.0816603, abs=1e-6)
    assert n["L"].is_output and tr.output_id == n["L"].id
    ops = [tr.nodes[i].op for i in tr.forward_order if tr.nodes[i].op]
    assert ops == ["mul", "add", "sigmoid", "binary_cross_entropy"]
    assert [tr.nodes[i].kind for i in tr.forward_order][:2] == ["param", "leaf"]  # w, then x: first use
    names = [tr.nodes[i].torch_name for i in tr.backward_order]
    assert names[:3] == ["BinaryCrossEntropyBackward0", "SigmoidBackward0", "AddBackward0"]
    assert set(names[3:]) == {"MulBackward0", "AccumulateGrad"}
    assert n["a"].torch_name == "SigmoidBackward0"
    assert [e.node_id for e in tr.backward_events] == tr.backward_order
    assert_backward_respects_topology(tr)
    assert_grads_match_direct(tr, seed_example)


def test_seed_event_gradients_in_and_out():
    tr = trace(seed_example)
    n = by_name(tr)
    ev = {e.node_id: e for e in tr.backward_events}
    sig = ev[n["a"].id]
    assert sig.grad_outputs[0].item() == pytest.approx(n["a"].grad.item())  # dL/da arrives
    assert sig.grad_inputs[0].item() == pytest.approx(-0.0816603, abs=1e-6)  # dL/dz sent to z
    mul = ev[tr.nodes[n["z"].id].inputs[0]]
    assert mul.grad_inputs[0].item() == pytest.approx(-0.0898263, abs=1e-6)
    assert mul.grad_inputs[1] is None  # x does not require grad
    acc = ev[n["w"].id]
    assert acc.torch_name == "AccumulateGrad" and acc.grad_before is None
    assert acc.grad_after.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert n["x"].grad is None and n["x"].kind == "leaf"


def test_second_backward_without_zero_grad_accumulates():
    w = torch.tensor(2.2, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    first = trace(lambda: seed_example(w, b))
    second = trace(lambda: seed_example(w, b))
    ev1 = {e.node_id: e for e in first.backward_events}
    ev2 = {e.node_id: e for e in second.backward_events}
    w1, w2 = by_name(first)["w"].id, by_name(second)["w"].id
    assert ev1[w1].grad_before is None
    assert ev2[w2].grad_before.item() == pytest.approx(-0.0898263, abs=1e-6)
    assert ev2[w2].grad_after.item() == pytest.approx(2 * -0.0898263, abs=1e-6)
    assert by_name(second)["w"].grad.item() == pytest.approx(-0.0898263, abs=1e-6)  # dL/dw of this pass
    assert w.grad.item() == pytest.approx(2 * -0.0898263, abs=1e-6)


def test_a_trace_leaves_its_objects_to_the_oldest_generation_and_others_frozen_objects_frozen():
    """The trace's objects go to the collector's oldest generation unscanned (no young pass over tens of
    thousands of long-lived objects); objects someone froze on purpose stay frozen."""
    import gc

    gc.unfreeze()  # what a UI test's teardown froze (tests/ui/conftest.py), in a worker that ran one first
    tr = trace(seed_example)
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert not any(id(n) in young for n in tr.nodes.values())
    assert any(o is tr for o in gc.get_objects(generation=2))
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        trace(seed_example)
        assert gc.get_freeze_count() >= frozen  # not released by the trace
    finally:
        gc.unfreeze()


def test_a_leafs_grad_after_is_its_grad_once_the_pass_has_accumulated_it():
    """grad_after is read when the pass ends (a leaf's AccumulateGrad runs once per pass): it must be the
    .grad the user sees, after any post-accumulate hook, for a weight used twice and for a leaf an op
    returned unchanged; a leaf's event sends nothing on."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 2)
    lin.weight.grad = torch.full((2, 3), 0.5)  # accumulates onto an earlier gradient

    def halve(p):
        p.grad.mul_(0.5)

    lin.bias.register_post_accumulate_grad_hook(halve)
    x = torch.randn(4, 3)

    def fn():
        h = lin(x)
        same = lin.weight.contiguous()  # returns the weight itself: one more node on the same leaf
        return (h * h).sum() + (lin(x) * same.sum()).mean()

    tr = trace(fn)
    leaves = [e for e in tr.backward_events if e.torch_name == "AccumulateGrad"]
    assert {tr.nodes[e.node_id].name for e in leaves} >= {"weight", "bias"}
    for e in leaves:
        t = lin.weight if tr.nodes[e.node_id].name != "bias" else lin.bias
        np.testing.assert_allclose(e.grad_after.data.reshape(t.shape), t.grad.numpy(), rtol=1e-6)
        assert e.grad_inputs == []
    weight = next(e for e in leaves if tr.nodes[e.node_id].name == "weight")
    np.testing.assert_allclose(weight.grad_before.data, np.full((2, 3), 0.5))
    np.testing.assert_allclose(weight.grad_after.data - weight.grad_before.data,
                               weight.grad_outputs[0].data, rtol=1e-5, atol=1e-6)


def test_json_round_trip():
    tr = trace(seed_example)
    js = tr.to_json()
    back = json.loads(json.dumps(js))
    assert back == js
    assert back["output"] == tr.output_id
    assert back["forward_order"] == tr.forward_order and back["backward_order"] == tr.backward_order
    node = back["nodes"][0]
    assert {"id", "kind", "label", "value", "grad"} <= set(node)
    assert {"source", "target"} <= set(back["edges"][0])
    assert len(back["edges"]) == tr.graph.number_of_edges()


def test_backward_false_records_forward_only():
    tr = trace(seed_example, backward=False)
    assert tr.backward_order == [] and all(n.grad is None for n in tr.nodes.values())
    assert len(tr.forward_order) == 8


# ---------------------------------------------------------------------------------------------- modules


def test_sequential_mlp_params_modules_and_grads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])

    def fn():
        outs = {}
        hooks = [m.register_forward_hook(lambda m, i, o, k=k: outs.__setitem__(f"out{k}", o))
                 for k, m in enumerate(model)]
        loss = F.cross_entropy(model(X), y)
        for h in hooks:
            h.remove()
        return loss, {**outs, "loss": loss}

    tr = trace(fn)
    params = {n.name: n for n in tr.nodes.values() if n.kind == "param"}
    assert set(params) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert params["2.weight"].module == "2"
    for name, p in model.named_parameters():
        torch.testing.assert_close(torch.from_numpy(params[name].grad.data), p.grad.double())
    lin = [n for n in tr.nodes.values() if n.op == "linear"]
    assert [n.module for n in lin] == ["0", "2"]
    assert by_name(tr)["out1"].module == "1" and by_name(tr)["out1"].op == "tanh"
    assert by_name(tr)["loss"].module is None
    assert tr.modules["0"] == "Linear" and tr.modules[""] == "Sequential"
    assert_backward_respects_topology(tr)
    model.zero_grad()
    assert_grads_match_direct(tr, fn)


@pytest.mark.parametrize("sdpa", [False, True])
def test_attention_layer(sdpa):
    torch.manual_seed(1)
    attn = CausalSelfAttention(sdpa=sdpa)
    x = torch.randn(2, 4, 8)

    def fn():
        out = attn(x)
        return out.pow(2).mean(), {"out": out}

    tr = trace(fn)
    ops = [tr.nodes[i].op for i in tr.forward_order if tr.nodes[i].op]
    assert ("scaled_dot_product_attention" in ops) == sdpa
    if not sdpa:
        assert {"softmax", "masked_fill", "matmul"} <= set(ops)
        mask_eq = next(n for n in tr.nodes.values() if n.op == "eq")
        assert mask_eq.kind == "const" and mask_eq.grad is None  # constants stay in the record
        assert by_name(tr)["mask"].kind == "leaf"  # buffers are named by their path too
    splits = [n for n in tr.nodes.values() if n.op == "split"]
    assert [n.label for n in splits] == ["split[0]", "split[1]", "split[2]"]
    assert all(n.grad is not None for n in splits)
    params = {n.name: n for n in tr.nodes.values() if n.kind == "param"}
    assert set(params) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    for name, p in attn.named_parameters():
        torch.testing.assert_close(torch.from_numpy(params[name].grad.data), p.grad.double())
    assert_backward_respects_topology(tr)
    attn.zero_grad()
    assert_grads_match_direct(tr, fn)


def test_inplace_and_multiple_uses():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def fn():
        h = a * a  # the same input twice
        h2 = h.clone()
        h2.add_(1.0)
        return h2.sum(), {"a": a, "h": h, "h2": h2}

    tr = trace(fn)
    n = by_name(tr)
    assert n["h"].inputs == [n["h"].inputs[0]] * 2
    assert n["h2"].op == "add_" and tr.nodes[n["h2"].inputs[0]].op == "clone"
    ev = {e.node_id: e for e in tr.backward_events}
    assert [g.data.tolist() for g in ev[n["h"].id].grad_inputs] == [[1.0, 2.0, 3.0]] * 2
    assert n["a"].grad.data.tolist() == [2.0, 4.0, 6.0]


# ---------------------------------------------------------------------------------------------- snapshots


def test_snapshot_truncates_and_keeps_metadata():
    big = torch.arange(10_000, dtype=torch.float32).reshape(100, 100).t()
    s = Snapshot.of(big, max_elems=50)
    assert s.truncated and s.data.shape == (50,) and s.numel == 10_000
    assert s.shape == (100, 100) and s.stride == (1, 100) and not s.is_contiguous
    assert s.data[:3].tolist() == [0.0, 100.0, 200.0]  # row-major order of the view
    small = Snapshot.of(torch.tensor([[1, 2], [3, 4]]))
    assert small.dtype == "int64" and small.data.tolist() == [[1, 2], [3, 4]] and not small.truncated
    assert json.loads(json.dumps(small.to_json()))["data"] == [[1, 2], [3, 4]]
    with pytest.raises(ValueError):
        small.item()


def test_trace_uses_max_snapshot_elems():
    W = torch.randn(40, 40, requires_grad=True)
    tr = trace(lambda: (W @ W).sum(), max_snapshot_elems=100)
    mm = next(n for n in tr.nodes.values() if n.op == "matmul")
    assert mm.value.truncated and mm.grad.truncated and mm.value.data.size == 100


# ---------------------------------------------------------------------------------------------- errors


def test_errors_are_clear_and_leave_no_hooks():
    registry = torch.nn.modules.module._global_forward_pre_hooks
    before = len(registry)
    v = torch.ones(3, requires_grad=True)
    with pytest.raises(TraceError, match="scalar"):
        trace(lambda: v * 2)
    with pytest.raises(TraceError, match="tensor"):
        trace(lambda: 3.0)
    with pytest.raises(ZeroDivisionError):
        trace(lambda: 1 / 0)
    assert len(registry) == before
    assert not torch.overrides._is_torch_function_mode_enabled()


def test_output_without_grad_traces_forward():
    tr = trace(lambda: torch.tensor(2.0) * 3)
    assert tr.backward_order == [] and tr.nodes[tr.output_id].kind == "const"


def test_json_is_strict_with_infinities():
    q = torch.randn(3, 3, requires_grad=True)
    mask = torch.tril(torch.ones(3, 3)) == 0

    def fn():
        att = q.masked_fill(mask, float("-inf"))
        return torch.softmax(att, dim=-1).sum(), {"att": att}

    tr = trace(fn)
    text = json.dumps(tr.to_json(), allow_nan=False)  # raises if any NaN/Infinity slipped through
    att = next(n for n in json.loads(text)["nodes"] if n["label"] == "att")
    assert att["value"]["data"][0][1] == "-inf"
    assert by_name(tr)["att"].value.data[0, 1] == float("-inf")  # the snapshot itself keeps the number


def test_identity_ops_and_outside_inputs():
    W = torch.randn(2, 2, requires_grad=True)
    outside = W * 2  # computed before the traced call: an input with a history
    x = torch.ones(2)

    def fn():
        same = W.contiguous()  # returns W itself
        return (same @ x + outside.sum(0)).sum(), {"same": same, "outside": outside}

    tr = trace(fn)
    n = by_name(tr)
    assert n["outside"].kind == "leaf" and n["outside"].grad is not None
    assert n["same"].op == "contiguous" and n["same"].grad is not None
    assert n["same"].torch_name == "AccumulateGrad"
    assert_backward_respects_topology(tr)
    assert W.grad is not None


def test_recording_stays_on_the_tracing_thread():
    import threading

    model = nn.Linear(3, 1)
    X = torch.randn(4, 3)
    started, stop = threading.Event(), threading.Event()

    def busy():  # another thread using torch and modules meanwhile must not leak into the trace
        started.set()
        while not stop.is_set():
            model(X).sum()

    th = threading.Thread(target=busy)
    th.start()
    started.wait()
    try:
        tr = trace(lambda: (torch.sigmoid(torch.tensor(0.5, requires_grad=True)) * 2))
    finally:
        stop.set()
        th.join()
    assert [tr.nodes[i].op for i in tr.forward_order] == [None, "sigmoid", "mul"]
    assert all(n.module is None for n in tr.nodes.values())


def test_non_scalar_output_with_grad_seed():
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    tr = trace(lambda: v * 3, grad_seed=torch.tensor([1.0, 10.0]))
    assert tr.nodes[tr.output_id].grad.data.tolist() == [1.0, 10.0]
    assert v.grad.tolist() == [3.0, 30.0]


# ---------------------------------------------------------------------------------------------- property

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_UNARY = [torch.sigmoid, torch.tanh, torch.exp, lambda t: t * t, lambda t: -t, lambda t: t.T.T, torch.sin]
_BINARY = [torch.add, torch.mul, torch.sub, lambda a, b: a * 0.5 + b]


@st.composite
def programs(draw):
    """Random straight-line programs over two 2x2 parameters: (op kind, op index, operand indices)."""
    steps = []
    for k in range(draw(st.integers(1, 8))):
        avail = k + 2
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(_UNARY) - 1)), draw(st.integers(0, avail - 1)), None))
        else:
            steps.append(("b", draw(st.integers(0, len(_BINARY) - 1)),
                          draw(st.integers(0, avail - 1)), draw(st.integers(0, avail - 1))))
    return steps


def _run(steps, a, b):
    vals = [a, b]
    for kind, op, i, j in steps:
        vals.append(_UNARY[op](vals[i]) if kind == "u" else _BINARY[op](vals[i], vals[j]))
    return vals[-1].sum() + 0.0 * (a.sum() + b.sum())  # both leaves always reach the output


@settings(max_examples=25, deadline=None)
@given(programs(), st.integers(0, 2**16))
def test_random_programs_match_autograd(steps, seed):
    gen = torch.Generator().manual_seed(seed)
    a0, b0 = torch.randn(2, 2, generator=gen) * 0.5, torch.randn(2, 2, generator=gen) * 0.5
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    tr = trace(lambda: (_run(steps, a, b), {"a": a, "b": b}))
    ra, rb = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    ga, gb = torch.autograd.grad(_run(steps, ra, rb), [ra, rb])
    n = by_name(tr)
    torch.testing.assert_close(torch.from_numpy(n["a"].grad.data), ga.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(n["b"].grad.data), gb.double(), rtol=1e-5, atol=1e-6)
    assert sorted(tr.backward_order) == sorted(set(tr.backward_order))  # each node runs once
    assert_backward_respects_topology(tr)
    for e in tr.backward_events:  # what each node sent on reached its inputs
        for inp, g in zip(tr.nodes[e.node_id].inputs, e.grad_inputs, strict=True):
            if g is not None and tr.nodes[inp].grad is not None and tr.graph.out_degree(inp) == 1 \
                    and tr.nodes[e.node_id].inputs.count(inp) == 1:
                np.testing.assert_allclose(g.data, tr.nodes[inp].grad.data, rtol=1e-6)


def test_helpers_and_a_callable_that_already_ran_backward():
    tr = trace(seed_example)
    assert set(tr.by_name()) == {"x", "y", "w", "b", "z", "a", "L"}
    assert tr.event(tr.by_name()["a"].id).torch_name == "SigmoidBackward0"
    assert tr.event(tr.by_name()["x"].id) is None

    def steps_itself():
        L, names = seed_example()
        L.backward()
        return L

    with pytest.raises(TraceError, match="backward"):
        trace(steps_itself)


def test_call_text_shows_the_settings_of_each_op():
    x = torch.randn(2, 3, 4, requires_grad=True)
    tr = trace(lambda: F.softmax(x.transpose(1, 2).reshape(2, 12)[:, 1:5], dim=-1).to(torch.float64).sum())
    calls = [tr.nodes[i].call for i in tr.forward_order if tr.nodes[i].op]
    assert calls == ["transpose(·, 1, 2)", "reshape(·, 2, 12)", "getitem(·, (:, 1:5))", "softmax(·, dim=-1)",
                     "to(·, float64)", "sum(·)"]
    assert json.loads(json.dumps(tr.to_json()))["nodes"][1]["call"] == "transpose(·, 1, 2)"


class _HandSigmoid(torch.autograd.Function):
    """A custom Function, as a student would write one: its apply is invisible to function modes."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


def test_custom_autograd_function_becomes_an_op_with_its_backward():
    w = torch.tensor(0.3, requires_grad=True)

    def fn():
        h = w * 2
        s = _HandSigmoid.apply(h)
        return s * 3, {"h": h, "s": s, "w": w}

    tr = trace(fn)
    n = by_name(tr)
    assert n["s"].op == "_HandSigmoid" and n["s"].inputs == [n["h"].id] and n["s"].kind == "op"
    assert n["s"].torch_name == "_HandSigmoidBackward"
    assert [tr.nodes[i].torch_name for i in tr.backward_order] == [
        "MulBackward0", "_HandSigmoidBackward", "MulBackward0", "AccumulateGrad"]
    sig = torch.sigmoid(torch.tensor(0.6))
    assert n["w"].grad.item() == pytest.approx(float(3 * sig * (1 - sig) * 2), rel=1e-6)
    calls = [tr.nodes[i].call for i in tr.forward_order if tr.nodes[i].op == "div"]
    assert calls == ["div(1, ·)"]  # 1 / x reads as written, not as x.__rtruediv__(1)
    assert_backward_respects_topology(tr)


def test_parameter_initialisation_in_place_leaves_no_trace():
    base = torch.randn(3, 4)

    def fn():
        W = torch.empty(3, 4, requires_grad=True)
        with torch.no_grad():
            W.copy_(base)  # filling a parameter is not part of the graph
        return (W * 2).sum(), {"W": W}

    tr = trace(fn)
    assert [tr.nodes[i].op or tr.nodes[i].name for i in tr.forward_order] == ["W", "mul", "sum"]


class _ReusedActivation(nn.Module):
    """One ReLU module applied after both layers, as students often write."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(3, 4), nn.Linear(4, 2), nn.ReLU()

    def forward(self, x):
        return self.act(self.fc2(self.act(self.fc1(x))))


def test_a_module_called_twice_is_two_steps():
    from explorer.core.graph.layout import collapse

    torch.manual_seed(0)
    model = _ReusedActivation()
    tr = trace(lambda: model(torch.randn(5, 3)).sum())
    relus = [n.module for n in tr.nodes.values() if n.op == "relu"]
    assert relus == ["act", "act#2"] and tr.modules["act#2"] == "ReLU"
    g = collapse(tr)
    assert nx.is_directed_acyclic_graph(g)  # the two calls are not merged into a loop
    assert {d["label"] for _, d in g.nodes(data=True) if d["kind"] == "module"} == {"Linear", "ReLU"}
    assert sum(1 for _, d in g.nodes(data=True) if d.get("label") == "ReLU") == 2
