"""Tests of how the tracer builds its records: the fast paths equal the plain ones they replace."""

from __future__ import annotations

import networkx as nx
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
    return lambda: model.loss(idx, torch.roll(idx, -1, 1))


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
