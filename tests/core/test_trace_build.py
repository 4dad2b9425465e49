"""Tests of how the tracer builds its records: the fast paths equal the plain ones they replace."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from explorer.core.autograd import trace as trace_module
from explorer.core.autograd.trace import Node, Snapshot, trace, trace_program
from explorer.core.lang.program import parse

LOOP = """import torch
w = torch.tensor([0.5, -1.0], requires_grad=True)
x = torch.tensor([1.0, 2.0])
opt = torch.optim.SGD([w], lr=0.1)
for step in range(3):
    y = (w * x).sum()
    L = y * y + w.pow(2).sum()
    opt.zero_grad()
    L.backward()
    opt.step()
"""


def _small_gpt():
    from explorer.core.gpt.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, context_length=4, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 16, (1, 4))

    def step():
        model.zero_grad(set_to_none=True)  # each trace from no .grad: two traces see the same accumulation
        return model.loss(idx, torch.roll(idx, -1, 1))
    return step


def assert_same_graph(a: nx.DiGraph, b: nx.DiGraph) -> None:
    """Equal as the callers see them: nodes, attributes, edges and adjacency, all in the same order, one
    data dict per edge shared by its two directions, the graph's own attributes."""
    assert list(a.nodes) == list(b.nodes)
    assert all(a.nodes[n] == b.nodes[n] for n in a)
    assert list(a.edges(data=True)) == list(b.edges(data=True))
    assert all(list(a.pred[n]) == list(b.pred[n]) and list(a.succ[n]) == list(b.succ[n]) for n in a)
    assert all(a.succ[u][v] is a.pred[v][u] for u, v in a.edges)
    assert a.graph == b.graph
    assert nx.is_directed_acyclic_graph(a) == nx.is_directed_acyclic_graph(b)


def test_the_graph_equals_the_one_networkx_adders_make():
    tr = trace(_small_gpt())
    assert tr.graph.number_of_edges() > len(tr.nodes) / 2  # a real graph, with shared inputs
    reference = trace_module._data_flow_graph_nx(tr.nodes, tr.forward_order, tr.modules)
    assert_same_graph(tr.graph, reference)


def test_each_iterations_graph_of_a_program_equals_the_reference():
    pt = trace_program(parse(LOOP))
    assert len(pt.iterations) == 3
    for tr in pt.iterations:
        keep = set(tr.forward_order)
        reference = trace_module._data_flow_graph_nx(tr.nodes, tr.forward_order, tr.modules, keep)
        assert_same_graph(tr.graph, reference)
        assert tr.graph.number_of_edges() > 0


def test_an_input_outside_the_order_becomes_a_bare_node_as_networkx_adds_it():
    value = Snapshot.of(torch.zeros(2))
    nodes = {
        "a": Node("a", "leaf", "a", None, None, None, None, [], False, value),
        "b": Node("b", "op", "+", None, "add", None, None, ["a", "z", "a"], True, value),
    }
    fast = trace_module._data_flow_graph(nodes, ["a", "b"], {})
    assert_same_graph(fast, trace_module._data_flow_graph_nx(nodes, ["a", "b"], {}))
    assert list(fast.nodes) == ["a", "b", "z"] and fast.nodes["z"] == {}
    assert fast.edges["a", "b"] == {"arg": 0} and fast.edges["z", "b"] == {"arg": 1}


# ------------------------------------------------------------------------------------------ backward hooks


def _snap(s):
    return None if s is None else (s.shape, s.dtype, tuple(s.stride), s.is_contiguous, s.data.tolist())


def _record_of(tr) -> tuple:
    """Everything a backward pass left in a trace: events in the engine's order with every gradient, and
    each node's gradient."""
    events = [(e.node_id, e.torch_name, [_snap(g) for g in e.grad_outputs], [_snap(g) for g in e.grad_inputs],
               _snap(e.grad_before), _snap(e.grad_after)) for e in tr.backward_events]
    return events, {nid: _snap(n.grad) for nid, n in tr.nodes.items()}


def _with_per_node_prehooks(make_trace, monkeypatch):
    monkeypatch.setattr(trace_module, "_SHARED_HOOK_MIN", 10**9)
    try:
        return make_trace()
    finally:
        monkeypatch.undo()


def test_the_shared_tensor_hook_records_what_per_node_prehooks_record(monkeypatch):
    step = _small_gpt()
    fast = trace(step)
    slow = _with_per_node_prehooks(lambda: trace(step), monkeypatch)
    assert len(fast.backward_events) > 40
    assert _record_of(fast) == _record_of(slow)


class _Doubler(torch.nn.Module):
    """A layer whose module backward pre-hook doubles the gradient arriving at it (a pre-hook on a custom
    Function's node, which keeps a pre-hook of its own)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_full_backward_pre_hook(lambda _m, grad_output: (grad_output[0] * 2,))

    def forward(self, x):
        return torch.tanh(self.lin(x))


def test_gradients_changed_by_user_hooks_are_recorded_as_the_node_received_them(monkeypatch):
    torch.manual_seed(0)
    model = _Doubler()
    x = torch.randn(4, 3, requires_grad=True)

    def step():
        model.zero_grad(set_to_none=True)
        x.grad = None
        h = model(x)
        h.register_hook(lambda g: g * 3)  # a tensor hook on an intermediate: its node gets 3x
        return (h * h).sum()

    fast = trace(step)
    slow = _with_per_node_prehooks(lambda: trace(step), monkeypatch)
    assert _record_of(fast) == _record_of(slow)
    # the hooks are real: the weight's gradient is 6x the plain one
    model.zero_grad()
    h = torch.tanh(model.lin(x))
    (h * h).sum().backward()
    plain = model.lin.weight.grad.clone()
    by_name = {n.name: n for n in fast.nodes.values() if n.name}
    assert torch.allclose(torch.from_numpy(by_name["lin.weight"].grad.data).float(), 6 * plain)


RETAINED = """import torch
w = torch.tensor([0.5, -1.0], requires_grad=True)
L = (w * w * 3).sum()
L.backward(retain_graph=True)
L.backward()
"""


def test_a_graph_run_twice_records_both_passes_and_the_hooks_go_quiet_after(monkeypatch):
    fast = trace_program(parse(RETAINED)).last
    slow = _with_per_node_prehooks(lambda: trace_program(parse(RETAINED)).last, monkeypatch)
    assert [p.count for p in fast.passes] == [p.count for p in slow.passes] and len(fast.passes) == 2
    assert _record_of(fast) == _record_of(slow)
    first, second = (fast.backward_events[p.first:p.first + p.count] for p in fast.passes)
    assert [e.node_id for e in first] == [e.node_id for e in second]


def test_after_the_trace_its_shared_hook_is_empty_and_a_later_backward_is_torchs(monkeypatch):
    dicts = []
    make = trace_module._BackwardRecorder._shared_hook

    def spy(self):
        shared, carrier = make(self)
        dicts.append(shared)
        return shared, carrier

    monkeypatch.setattr(trace_module._BackwardRecorder, "_shared_hook", spy)
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    kept = []

    def step():
        y = (w * 3).exp().sum()
        kept.append(y)
        return y

    tr = trace(step)
    assert len(dicts) == 1 and dicts[0] == {}  # emptied: the nodes still held by `kept` call nothing
    assert [e.torch_name for e in tr.backward_events][:2] == ["SumBackward0", "ExpBackward0"]
    w.grad = None
    y = (w * 3).exp().sum()
    y.backward()
    expected = w.grad.clone()
    w.grad = None
    with pytest.raises(RuntimeError):  # the traced graph was freed by the trace's own pass, as before
        kept[0].backward()
    assert torch.equal(expected, 3 * torch.exp(w.detach() * 3))


# ------------------------------------------------------------------------------------------ saved tensors


def _role_reference(rec, node, nid, r, attr, places=None):
    """The roles as the first version of saved.py worked them out, kept here to compare with."""
    from explorer.core.autograd.saved import _place

    candidates = [("output", nid)] + [(f"input {k}", i) for k, i in enumerate(node.inputs)]
    saved = r.ref()
    tensor_of = rec.tensor_of
    if saved is not None:
        same = [role for role, other in candidates if tensor_of[other] is saved]
        positions = [role.removeprefix("input ") for role in same if role.startswith("input ")]
        if len(positions) > 1 and "output" not in same:
            return f"inputs {', '.join(positions)} (one tensor)"
        if same:
            return same[0]
    places = {} if places is None else places
    wanted = (r.storage_key, r.data_ptr)
    for role, other in candidates:
        if _place(tensor_of, other, places) == wanted:
            return f"{role} (view)"
    return attr


def _saved_roles(tr):
    return {nid: [(s.role, s.attr, s.grad_fn, s.storage, s.shared, s.param) for s in n.saved or ()]
            for nid, n in tr.nodes.items()}


ROLES = """import torch
a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
h = a * 2
s = h * h
t = h.t()
u = t.exp() @ h
v = u.transpose(0, 1).sigmoid()
L = (s + v).sum() + (h[0] * h[1]).sum()
"""


def test_saved_roles_equal_the_reference_way_of_working_them_out(monkeypatch):
    from explorer.core.autograd import saved as saved_module

    fast = [trace(_small_gpt()), trace_program(parse(ROLES)).last]
    monkeypatch.setattr(saved_module, "_role", _role_reference)
    slow = [trace(_small_gpt()), trace_program(parse(ROLES)).last]
    for a, b in zip(fast, slow, strict=True):
        assert _saved_roles(a) == _saved_roles(b)
    roles = [{role for saved in _saved_roles(tr).values() for role, *_ in saved} for tr in fast]
    assert {"output", "input 0", "inputs 0, 1 (one tensor)"} <= roles[1]  # every kind of role is compared
    assert {"input 0 (view)", "result"} <= roles[0]


# ------------------------------------------------------------------------------------------ call text


def _show_reference(a) -> str:
    """The argument text as the first version of the tracer wrote it, kept here to compare with."""
    from explorer.core.numbers import fmt_number

    if isinstance(a, torch.Tensor):
        return "·"
    if isinstance(a, (list, tuple)):
        inner = ", ".join(_show_reference(x) for x in a)
        return f"[{inner}]" if isinstance(a, list) else f"({inner})"
    if isinstance(a, float):
        return fmt_number(a)
    if isinstance(a, torch.dtype):
        return str(a).removeprefix("torch.")
    if isinstance(a, slice):
        text = ":".join("" if v is None else str(v) for v in (a.start, a.stop))
        return text + (f":{a.step}" if a.step is not None else "")
    if a is Ellipsis:
        return "..."
    if a is None or isinstance(a, (bool, int, str)):
        return repr(a)
    return type(a).__name__


def test_call_text_of_every_kind_of_argument_equals_the_reference():
    import enum

    import numpy as np

    class Mode(enum.IntEnum):
        ON = 1

    t = torch.zeros(2)
    p = torch.nn.Parameter(torch.zeros(2))
    args = [t, p, 3, -2, True, False, None, "same", 0.0, -0.0, 1e-05, 2.5, float("nan"), float("inf"), -1e9,
            (1, 8, 2, 8), (16,), (), [1, 2], [t, 2.0], (t, (1, None)), torch.Size([2, 3]), torch.float16,
            slice(1, 5), slice(None, None, 2), Ellipsis, Mode.ON, np.float64(0.25), np.int64(4), object()]
    for a in args:
        assert trace_module._show(a) == _show_reference(a), a
        for _ in range(2):  # (floats are remembered: the second time from the table)
            text = trace_module._call_text("op", (t, a), {"k": a, "none": None, "_private": 1})
            shown = _show_reference(a)
            expected = f"op(·, {shown}, k={shown})" if a is not None else "op(·, None)"
            assert text == (expected if len(expected) <= 80 else expected[:79] + "…"), (a, text)
    long = trace_module._call_text("view", (t, *range(40)), {})
    assert len(long) == 80 and long.endswith("…")


def test_a_leafs_grad_after_has_the_fields_snapshot_of_gives_its_grad():
    torch.manual_seed(0)
    w = torch.randn(3, 4, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    b.grad = torch.ones(4)  # accumulates onto an existing .grad
    x = torch.randn(2, 3)
    tr = trace(lambda: ((x @ w + b).tanh() ** 2).sum())
    fields = ("shape", "dtype", "stride", "is_contiguous", "requires_grad", "is_leaf", "grad_fn", "numel",
              "truncated")
    afters = {e.node_id: e.grad_after for e in tr.backward_events if e.torch_name == "AccumulateGrad"}
    assert len(afters) == 2
    for t in (w, b):
        nid = next(i for i in afters if tr.nodes[i].value.shape == tuple(t.shape))
        got, expected = afters[nid], Snapshot.of(t.grad)
        assert [getattr(got, f) for f in fields] == [getattr(expected, f) for f in fields]
        assert got.data.tolist() == expected.data.tolist()


def test_the_tensors_of_a_call_are_found_in_every_kind_of_container():
    t, p = torch.zeros(1), torch.nn.Parameter(torch.zeros(2))

    class Sub(torch.Tensor):
        pass

    s = torch.zeros(3).as_subclass(Sub)
    args = (t, 1, 2.0, None, "x", True, [p, (s, {"k": t})], {"a": p}, (), [[[]]], torch.Size([2]))
    found = trace_module._flat_tensors(args, [])
    assert [id(x) for x in found] == [id(t), id(p), id(s), id(t), id(p)]
    assert [id(x) for x in trace_module._flat_tensors({"w": p, "l": [t]}, [])] == [id(p), id(t)]
    assert trace_module._flat_tensors(s, []) == [s] and trace_module._flat_tensors(3, []) == []
    assert [id(x) for x in trace_module._flat_tensors([t, (p,)], [])] == [id(t), id(p)]


class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_a_custom_functions_own_node_prehook_runs_before_the_recording_as_it_did(monkeypatch):
    w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def step():
        w.grad = None
        y = _Scale.apply(w * 3)
        y.grad_fn.register_prehook(lambda grad_outputs: (grad_outputs[0] * 5,))  # changes what arrives
        return (y * y).sum()

    fast = trace(step)
    slow = _with_per_node_prehooks(lambda: trace(step), monkeypatch)
    assert _record_of(fast) == _record_of(slow)
    y_node = next(e for e in fast.backward_events if e.torch_name == "_ScaleBackward")
    y_value = fast.nodes[y_node.node_id].value.data
    assert y_node.grad_outputs[0].data.tolist() == (5 * 2 * y_value).tolist()  # recorded after the x5


def test_only_leaves_and_custom_nodes_get_a_prehook_of_their_own(monkeypatch):
    """A count, not a clock: per-node Python pre-hooks (each ~7 us to add) only where the shared hook cannot
    stand in, whatever the graph's size."""
    seen = []
    remove = trace_module._BackwardRecorder.remove

    def spy(self):
        fns = {id(fn): fn for fn in self.fn_of.values()}
        own = [key for key, name in self.names.items() if not trace_module._one_gradient_in(fns[key], name)]
        seen.append((len(self.handles), len(self.routes), len(own), len(self.names),
                     list(self.names.values()).count("AccumulateGrad")))
        remove(self)

    monkeypatch.setattr(trace_module._BackwardRecorder, "remove", spy)
    trace(_small_gpt())
    handles, post_hooks, own, nodes, leaves = seen[0]
    assert nodes > 2 * own and own >= leaves > 0  # (the leaves, and the attention's split: two gradients)
    assert handles == own + post_hooks  # one pre-hook each where the shared one cannot stand in


def test_each_leaf_gets_the_accumulate_grad_node_torch_gives_it_without_a_view_of_it(monkeypatch):
    """A count, not a clock: the leaves' AccumulateGrad nodes come from the recorded ops' edges (the same
    node objects get_gradient_edge returns), and get_gradient_edge (a view of the leaf each) is asked only
    for a leaf that no recorded op's autograd node reaches."""
    asked, found = [], []
    edge_of = torch.autograd.graph.get_gradient_edge
    install = trace_module._BackwardRecorder.install

    def counting(t):
        asked.append(t)
        return edge_of(t)

    def spy(self):
        install(self)
        for nid, fn in self.fn_of.items():
            t = self.rec.tensor_of[nid]
            if t.is_leaf and t.requires_grad:
                found.append((nid, fn is edge_of(t).node, type(fn).__name__))

    monkeypatch.setattr(torch.autograd.graph, "get_gradient_edge", counting)
    monkeypatch.setattr(trace_module._BackwardRecorder, "install", spy)
    step = _small_gpt()
    tr = trace(step)
    params = [n for n in tr.nodes.values() if n.kind == "param"]
    assert len(params) >= 10 and len(found) == len(params)
    assert all(same and name == "AccumulateGrad" for _, same, name in found)
    assert asked == []  # every parameter is read by a recorded op: found on its edges
    monkeypatch.undo()
    assert _record_of(trace(step)) == _record_of(tr)

    # a leaf that no op reads (the output itself) still gets its node, through get_gradient_edge
    monkeypatch.setattr(torch.autograd.graph, "get_gradient_edge", counting)
    w = torch.tensor(2.0, requires_grad=True)
    tr = trace(lambda: w)
    assert len(asked) == 1 and tr.backward_events[0].torch_name == "AccumulateGrad"


def _mixed():
    """Gradients of several shapes and dtypes: a cast, a broadcast, a split, a max with indices."""
    torch.manual_seed(3)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)

    def fn():
        x.grad = w.grad = b.grad = None  # each trace from no .grad
        h = (x.float() @ w + b).tanh()  # float32; x's gradient comes back through the cast as float64
        left, right = h.split([1, 2], dim=1)  # two outputs of one autograd node, of two shapes
        top, _ = (left * right).max(dim=0)
        return (h.double() * x[:, :3]).sum() + top.sum()
    return fn


def _with_grads():
    """Leaves whose .grad exists before the pass (grad_before), one read twice (gradients sent to it)."""
    torch.manual_seed(4)
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    x.grad, w.grad = torch.ones(3, 4), torch.full((4, 3), 0.5)
    return lambda: (x @ w).relu().sum() + (x * x.sin()).sum()


@pytest.mark.parametrize("make", [_small_gpt, _mixed, _with_grads])
def test_a_gradients_shape_and_dtype_taken_from_its_value_equal_the_gradients_own(make, monkeypatch):
    fast = trace(make())
    monkeypatch.setattr(trace_module, "_settle_as", lambda grabbed, value: trace_module._settle(grabbed))
    slow = trace(make())
    assert _record_of(fast) == _record_of(slow)
    if make is _with_grads:
        leaves = [e for e in fast.backward_events if e.torch_name == "AccumulateGrad"]
        assert len(leaves) == 2 and all(e.grad_before is not None for e in leaves)
        assert any(g is not None for e in fast.backward_events for g in e.grad_inputs)
    grads = [n.grad for n in fast.nodes.values() if n.grad is not None]
    assert len(grads) > 8 and all(g.data.shape == g.shape and g.data.size == g.numel for g in grads)
    if make is _mixed:
        assert {g.dtype for g in grads} == {"float32", "float64"}


def test_module_paths_read_from_the_tables_in_place_and_through_members_agree():
    """The module tree is read from each module's own dict tables in place; a table of another mapping
    type (an OrderedDict, as older torch made them) is read through ``_members``: same paths either way."""
    import collections

    def names(convert):
        torch.manual_seed(5)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
        model.register_buffer("scale", torch.tensor(2.0))
        if convert:
            for m in model.modules():
                for table in ("_parameters", "_buffers", "_modules"):
                    setattr(m, table, collections.OrderedDict(getattr(m, table)))
        x = torch.randn(2, 3)
        tr = trace(lambda: (model(x) * model.scale).sum())
        return [(n.kind, n.name, n.module) for n in tr.nodes.values()], tr.modules

    fast, slow = names(False), names(True)
    assert fast == slow
    assert {"0.weight", "1.bias", "2.weight", "scale"} <= {name for _, name, _ in fast[0]}
