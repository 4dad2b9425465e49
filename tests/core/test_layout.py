"""Tests of the layered layout, the crossing count and module collapsing."""

import itertools
import random

import networkx as nx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.core.autograd.trace import trace
from explorer.core.graph.layout import collapse, count_crossings, inversions, layered_layout


def brute_crossings(graph, lay):
    """Crossings by checking every pair of edge segments between neighbouring layers (dummies included)."""
    segs = []
    for u, v in graph.edges:
        pts = [lay.positions[u], *lay.edge_points.get((u, v), []), lay.positions[v]]
        if pts[0][0] > pts[-1][0]:
            pts = pts[::-1]
        segs += [(a, b) for a, b in zip(pts, pts[1:], strict=False)]
    c = 0
    for (a1, b1), (a2, b2) in itertools.combinations(segs, 2):
        if a1[0] == a2[0] and b1[0] == b2[0] and (a1[1] - a2[1]) * (b1[1] - b2[1]) < 0:
            c += 1
    return c


def assert_well_formed(graph, lay):
    assert set(lay.positions) == set(graph.nodes)
    for u, v in graph.edges:
        if (u, v) in lay.edge_points or lay.layers[v] > lay.layers[u]:
            continue
        assert (v, u) in graph.edges or not nx.is_directed_acyclic_graph(graph)
    for n, (x, _) in lay.positions.items():
        assert x == pytest.approx(float(lay.layers[n]))
    by_layer = {}
    for x, y in lay.positions.values():
        by_layer.setdefault(x, []).append(y)
    for ys in by_layer.values():
        ys.sort()
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(ys, ys[1:], strict=False))


def test_layers_follow_edges_and_long_edges_bend_at_each_layer():
    g = nx.DiGraph([("x", "mul"), ("w", "mul"), ("mul", "add"), ("b", "add"), ("add", "sig"),
                    ("sig", "bce"), ("y", "bce"), ("x", "bce")])
    lay = layered_layout(g)
    assert_well_formed(g, lay)
    for u, v in g.edges:
        assert lay.layers[v] > lay.layers[u]
        span = lay.layers[v] - lay.layers[u]
        bends = lay.edge_points.get((u, v), [])
        assert len(bends) == span - 1
        assert [p[0] for p in bends] == list(range(lay.layers[u] + 1, lay.layers[v]))
    # parameters sit right before the op that reads them, not at the far left
    assert lay.layers["b"] == lay.layers["add"] - 1 and lay.layers["y"] == lay.layers["bce"] - 1
    assert lay.crossings == 0 == count_crossings(g, lay.positions, lay.edge_points)
    assert lay.method == "sugiyama" and lay.xy.shape == (len(g), 2)


def test_crossing_reduction_untangles_a_twisted_ladder():
    # Insertion order puts every rung's ends in opposite orders: a naive drawing crosses a lot.
    n = 6
    g = nx.DiGraph()
    g.add_nodes_from([f"a{i}" for i in range(n)] + [f"b{i}" for i in reversed(range(n))])
    g.add_nodes_from([f"c{i}" for i in range(n)])
    g.add_edges_from([(f"a{i}", f"b{i}") for i in range(n)] + [(f"b{i}", f"c{i}") for i in range(n)])
    naive = {v: (0.0 if v[0] == "a" else 1.0 if v[0] == "b" else 2.0, float(i % n))
             for i, v in enumerate(g.nodes)}
    assert count_crossings(g, naive) == 2 * (n * (n - 1) // 2)
    lay = layered_layout(g)
    assert lay.crossings == 0 == count_crossings(g, lay.positions, lay.edge_points)


def test_reported_crossings_match_an_independent_count():
    rng = random.Random(3)
    g = nx.DiGraph()
    layers = [[f"{k}_{i}" for i in range(5)] for k in range(4)]
    for a, b in zip(layers, layers[1:], strict=False):
        for u in a:
            for v in rng.sample(b, 3):
                g.add_edge(u, v)
    g.add_edge(layers[0][0], layers[3][4])  # a long edge through two dummy layers
    lay = layered_layout(g)
    assert_well_formed(g, lay)
    assert lay.crossings == count_crossings(g, lay.positions, lay.edge_points) == brute_crossings(g, lay)
    assert lay.crossings > 0  # 3-of-5 random bipartite layers cannot be planar


def test_inversion_counter_small_and_large_paths_agree():
    rng = random.Random(0)
    for m in (7, 600):
        pairs = [(rng.randint(0, 20), rng.randint(0, 20)) for _ in range(m)]
        brute = sum(1 for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2) if (a1 - a2) * (b1 - b2) < 0)
        assert inversions(pairs) == brute


def test_cycles_directions_and_empty_graphs():
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    lay = layered_layout(g)
    assert set(lay.positions) == set(g) and len(set(lay.layers.values())) >= 3
    tb = layered_layout(g, direction="TB")
    for n in g:
        assert tb.positions[n][1] == pytest.approx(float(tb.layers[n]))
    assert layered_layout(nx.DiGraph()).positions == {}
    with pytest.raises(ValueError):
        layered_layout(g, direction="diagonal")


def test_groups_stay_together_in_each_layer():
    g = nx.DiGraph()
    for k in range(4):  # four parallel chains, groups alternate so barycenters alone would interleave
        g.add_edges_from([(f"s{k}", f"m{k}"), (f"m{k}", f"t{k}"), (f"t{k}", "out")])
    groups = {n: ("A" if n[-1] in "02" else "B") for n in g if n != "out"}
    lay = layered_layout(g, groups=groups)
    by_layer = {}
    for n, (x, y) in lay.positions.items():
        if n in groups:
            by_layer.setdefault(x, []).append((y, groups[n]))
    for items in by_layer.values():
        seq = [gname for _, gname in sorted(items)]
        assert seq in (["A", "A", "B", "B"], ["B", "B", "A", "A"])


# ---------------------------------------------------------------------------------------------- traces


class _Block(nn.Module):
    def __init__(self, d=4):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        return x + torch.tanh(self.fc(self.ln(x)))


class _Net(nn.Module):
    def __init__(self, n=3, d=4):
        super().__init__()
        self.inp = nn.Linear(3, d)
        self.blocks = nn.ModuleList(_Block(d) for _ in range(n))
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


@pytest.fixture(scope="module")
def net_trace():
    torch.manual_seed(0)
    net = _Net()
    X, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    return trace(lambda: F.cross_entropy(net(X), y))


def test_traced_network_lays_out_without_crossings(net_trace):
    lay = layered_layout(net_trace.graph)
    assert_well_formed(net_trace.graph, lay)
    assert lay.crossings == 0
    out = net_trace.output_id
    assert lay.layers[out] == max(lay.layers.values())


def test_collapse_groups_modules_and_rolls_up_repeated_blocks(net_trace):
    tr = net_trace
    top = collapse(tr)
    modules = {n: d for n, d in top.nodes(data=True) if d["kind"] == "module"}
    assert {d["label"] for d in modules.values()} == {"Linear", "_Block × 3"}  # a list reads as what it holds
    rolled = collapse(tr, {"blocks"})
    labels = {d["path"]: d["label"] for _, d in rolled.nodes(data=True) if d["kind"] == "module"}
    assert labels == {"inp": "Linear", "blocks.0-2": "_Block × 3", "head": "Linear"}
    one_by_one = collapse(tr, {"blocks", "blocks.0-2", "blocks.1"})
    paths = {d["path"] for _, d in one_by_one.nodes(data=True) if d["kind"] == "module"}
    assert {"blocks.0", "blocks.1.fc", "blocks.1.ln", "blocks.2"} <= paths and "blocks.1" not in paths
    assert any(d.get("module") == "blocks.1" and d.get("op") == "add" for _, d in one_by_one.nodes(data=True))
    for g in (top, rolled, one_by_one):
        seen = []
        for n, d in g.nodes(data=True):
            seen += d["members"] if d["kind"] == "module" else [n]
        assert sorted(seen) == sorted(tr.nodes)  # every traced node is shown exactly once
        assert all(u != v for u, v in g.edges)
        assert nx.is_directed_acyclic_graph(g)
    edge = rolled.edges["module:inp", "module:blocks.0-2"]
    assert edge["count"] >= 1
    everything = {"inp", "blocks", "blocks.0-2", "blocks.0", "blocks.1", "blocks.2", "head",
                  *[f"blocks.{i}.{m}" for i in range(3) for m in ("fc", "ln")]}
    assert collapse(tr, everything).number_of_nodes() == len(tr.nodes)


def test_collapsed_graph_lays_out(net_trace):
    g = collapse(net_trace, {"blocks"})
    lay = layered_layout(g)
    assert_well_formed(g, lay)
    assert lay.crossings == 0


def test_ogdf_method_gives_the_same_kind_of_layout():
    pytest.importorskip("ogdf")
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("x", "d")])
    lay = layered_layout(g, method="ogdf")
    assert lay.method == "ogdf" and set(lay.positions) == set(g)
    for u, v in g.edges:
        assert lay.layers[v] > lay.layers[u]
        assert len(lay.edge_points.get((u, v), [])) == lay.layers[v] - lay.layers[u] - 1
    assert lay.crossings == count_crossings(g, lay.positions, lay.edge_points) == 0


def test_main_path_runs_straight_through_a_long_pipeline():
    torch.manual_seed(0)
    deep = _Net(n=8)
    X, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    tr = trace(lambda: F.cross_entropy(deep(X), y))
    lay = layered_layout(tr.graph)
    path = [tr.output_id]  # back from the loss through the residual branches' first input
    while tr.nodes[path[-1]].inputs:
        ops = [i for i in tr.nodes[path[-1]].inputs if tr.nodes[i].kind in ("op", "const")]
        if not ops:
            break
        path.append(max(ops, key=lambda i: lay.layers[i]))
    ys = [lay.positions[n][1] for n in path]
    assert len(path) > 30 and max(ys) - min(ys) < 1e-3  # one straight line, no staircase
    assert lay.size[1] < 6  # the height does not grow with the depth


# ---------------------------------------------------------------------------------------------- property

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 25), st.lists(st.tuples(st.integers(0, 24), st.integers(0, 24)), max_size=60),
       st.sampled_from(["LR", "TB", "RL", "BT"]))
def test_any_graph_gets_a_consistent_layout(n, pairs, direction):
    g = nx.DiGraph()
    g.add_nodes_from(range(n))  # isolated nodes, cycles, self-loops and both directions all allowed
    g.add_edges_from((a % n, b % n) for a, b in pairs)
    lay = layered_layout(g, direction=direction)
    assert set(lay.positions) == set(g) and set(lay.layers) == set(g)
    axis = 0 if direction in ("LR", "RL") else 1
    sign = -1 if direction in ("RL", "BT") else 1
    for v, p in lay.positions.items():
        assert p[axis] == pytest.approx(sign * lay.layers[v])
    for (u, v), bends in lay.edge_points.items():
        assert (u, v) in g.edges and len(bends) == abs(lay.layers[v] - lay.layers[u]) - 1
    acyclic = nx.is_directed_acyclic_graph(g)
    for u, v in g.edges:
        if acyclic:
            assert lay.layers[v] > lay.layers[u]
        elif u != v:
            assert lay.layers[v] != lay.layers[u]  # every edge crosses at least one strip
    assert lay.crossings == count_crossings(g, lay.positions, lay.edge_points, direction)


def test_main_path_ends_at_the_output_even_beside_longer_dead_ends():
    g = nx.DiGraph([("A", "F"), ("F", "R"), ("F", "V"), ("A", "T"), ("T", "G"), ("A", "G")])
    g.nodes["G"]["is_output"] = True
    lay = layered_layout(g)
    assert lay.positions["A"][1] == pytest.approx(lay.positions["T"][1], abs=1e-6)
    assert lay.positions["T"][1] == pytest.approx(lay.positions["G"][1], abs=1e-6)


def test_promote_shortcuts_change_no_layer(monkeypatch):
    """Promote-layering skips up front the shifts whose cascade passes its cap, and moves a node alone
    without walking a cascade: the layers must be exactly those of walking every cascade."""
    import explorer.core.graph.layout as layout

    rng = random.Random(3)
    graphs = []
    for n in (30, 120, 400):  # short-range random DAGs, long chains with side inputs, and cyclic graphs
        graphs.append([(a, b) for a, b in ((rng.randrange(n), rng.randrange(n)) for _ in range(2 * n))
                       if a < b <= a + 8])
        graphs.append([(i, i + 1) for i in range(n - 1)] + [(rng.randrange(n), rng.randrange(n)) for _ in
                                                            range(n // 5)])
    cyclic = nx.gnm_random_graph(40, 90, seed=2, directed=True)
    graphs.append(list(cyclic.edges) + [(5, 5)])
    fast = [layered_layout(nx.DiGraph(edges)).positions for edges in graphs]

    def walk_every_cascade(v, step, layer, preds, succs, behind, max_moves):
        moved, seen, stack = [], {v}, [v]
        while stack:
            w = stack.pop()
            layer[w] += step
            moved.append(w)
            if len(moved) > max_moves:
                return moved, 0
            for u in behind[w]:
                if u not in seen and (layer[u] >= layer[w] if step < 0 else layer[u] <= layer[w]):
                    seen.add(u)
                    stack.append(u)
        saved = sum(step for w in moved for u in preds[w] if u not in seen)
        saved -= sum(step for w in moved for x in succs[w] if x not in seen)
        return moved, -saved

    monkeypatch.setattr(layout, "_shift", walk_every_cascade)
    monkeypatch.setattr(layout, "_too_big", lambda layer, *_args: [False] * len(layer))
    slow = [layered_layout(nx.DiGraph(edges)).positions for edges in graphs]
    assert fast == slow
