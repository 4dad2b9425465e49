"""A big graph is laid out one top-level module at a time (`composed_layout`): a valid layered drawing,
the same whether its pieces come from the cache or not, and expanding one module lays out that module's
piece only, however big the graph (a count, not a stopwatch)."""

import random

import networkx as nx
import pytest

from explorer.core.graph import layout
from explorer.core.graph.display import COMPOSE_MIN_NODES, build_display
from explorer.core.graph.layout import clear_piece_cache, collapse, composed_layout
from tests.graphs import all_expanded, gpt_step_trace


def _assert_valid(graph, lay):
    """Every node placed; edges run forwards; cards of one layer at least a card apart; a long edge bends
    once in every layer it crosses."""
    assert set(lay.positions) == set(graph.nodes)
    for u, v in graph.edges:
        if u == v:
            continue
        a, b = lay.layers[u], lay.layers[v]
        pts = lay.edge_points.get((u, v), [])
        if a < b:
            assert [round(x) for x, _y in pts] == list(range(a + 1, b)), (u, v, a, b, pts)
        else:
            assert not nx.is_directed_acyclic_graph(graph)
    by_layer: dict[float, list[float]] = {}
    for x, y in lay.positions.values():
        by_layer.setdefault(x, []).append(y)
    for ys in by_layer.values():
        ys.sort()
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(ys, ys[1:], strict=False))
    for pts in lay.edge_points.values():  # a bend never runs through a card
        for x, y in pts:
            assert all(abs(y - card) >= 0.5 - 1e-9 for card in by_layer.get(x, ())), (x, y)


def _model_figures(model):
    return model.positions, model.bends, model.ports, model.order, model.frames, model.row_starts


def test_a_gpt_composed_of_blocks_is_a_valid_layout_and_the_cache_changes_nothing():
    tr = gpt_step_trace(12)
    expanded = all_expanded(tr)
    graph = collapse(tr, expanded)
    assert graph.number_of_nodes() >= COMPOSE_MIN_NODES
    model = build_display(tr, frozenset(expanded), aspect=1.6)
    assert model.bands > 1
    clear_piece_cache()
    before = layout.LAYOUT_WORK[0]
    fresh = build_display(tr, frozenset(expanded), aspect=1.6)
    work = layout.LAYOUT_WORK[0] - before
    assert _model_figures(fresh) == _model_figures(model)
    # the twelve identical blocks are laid out once: far fewer nodes laid out than the graph has
    assert 0 < work < graph.number_of_nodes() / 3, work
    from explorer.core.graph.display import segment_of
    segments = segment_of(graph, tr.modules, expanded)
    assert {segments[d] for d in graph if d in segments} >= {f"blocks.{k}" for k in range(12)}
    _assert_valid(graph, composed_layout(graph, segments))


def test_a_tied_head_reads_the_embedding_along_a_lane_under_the_blocks():
    """The head's matrix is the token embedding's: an edge from the first segment to the last, which
    passes every block in a lane of its own, never through a card."""
    tr = gpt_step_trace(12, tied=True)
    expanded = all_expanded(tr)
    graph = collapse(tr, expanded)
    from explorer.core.graph.display import segment_of
    lay = composed_layout(graph, segment_of(graph, tr.modules, expanded))
    _assert_valid(graph, lay)
    longest = max(lay.edge_points.values(), key=len)
    assert len(longest) > 150  # the tied weight's edge crosses the blocks
    assert len({y for _x, y in longest[5:-5]}) == 1  # ... straight, in one lane


def _expand_one(blocks: int) -> tuple[int, int, object, object]:
    """(nodes laid out, cards of the changed block) when `blocks.<middle>.attn` of a GPT with every module
    expanded but the blocks' attention is expanded too (a block of a shape not laid out before); and the
    display models after and fresh."""
    tr = gpt_step_trace(blocks)
    everything = all_expanded(tr)
    inner = f"blocks.{blocks // 2}.attn"
    folded = {p for p in everything if ".attn" not in p}
    clear_piece_cache()
    first = build_display(tr, frozenset(folded), aspect=1.6)
    unfolded = folded | {p for p in everything if p == inner or p.startswith(inner + ".")}
    before = layout.LAYOUT_WORK[0]
    after = build_display(tr, frozenset(unfolded), aspect=1.6, reuse=first)
    work = layout.LAYOUT_WORK[0] - before
    block = sum(1 for d, i in after.info.items() for m in i["members"]
                if (tr.nodes[m].module or "").startswith(f"blocks.{blocks // 2}."))
    clear_piece_cache()
    fresh = build_display(tr, frozenset(unfolded), aspect=1.6)
    return work, block, after, fresh


def test_expanding_one_module_lays_out_only_its_own_block_however_big_the_graph():
    small = _expand_one(20)
    big = _expand_one(50)
    assert len(big[2].info) > 2 * len(small[2].info)
    for work, block, after, fresh in (small, big):
        # the block holding the expanded module is laid out anew (its cards and a few ports), nothing else
        assert 0 < work <= block + 8, (work, block)
        assert _model_figures(after) == _model_figures(fresh)
    assert big[0] == small[0]


def test_placing_a_segment_looks_at_the_segments_sharing_its_layers_not_at_every_one_placed():
    """Placing the pieces once compared each framed segment with every one placed before it (quadratic in
    the blocks: ~44k checks at 285); now with those sharing its layers: the same few per segment."""
    per_segment = []
    for layers in (12, 36):
        tr = gpt_step_trace(layers)
        expanded = all_expanded(tr)
        graph = collapse(tr, expanded)
        from explorer.core.graph.display import segment_of

        segments = segment_of(graph, tr.modules, expanded)
        before = layout.PLACE_WORK[0]
        _assert_valid(graph, composed_layout(graph, segments))
        per_segment.append((layout.PLACE_WORK[0] - before) / len(set(segments.values())))
    small, big = per_segment
    assert 0 < small + big and big <= small * 1.2 + 0.5, per_segment


@pytest.mark.parametrize("seed", range(6))
def test_random_segments_of_random_graphs_lay_out_validly(seed):
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for _ in range(rng.randint(n, 3 * n)):
        u, v = sorted(rng.sample(range(n), 2))
        g.add_edge(u, v)
    # contiguous runs of nodes as segments (a module's nodes are traced one after another), some alone
    segments, key = {}, 0
    for v in range(n):
        if rng.random() < 0.2:
            key += 1
        if rng.random() < 0.1:  # a node outside every module: a segment of its own
            key += 1
        else:
            segments[v] = key
    lay = composed_layout(g, segments)
    _assert_valid(g, lay)
    assert lay.method == "composed"
    if seed == 0:  # segments that feed each other in a cycle: the plain layout
        g.add_edge(n - 1, 0)
        segments = {v: v % 2 for v in range(n)}
        assert composed_layout(g, segments).method == "sugiyama"


def _frame_boxes(model):
    """Each frame's box per wrapped row: its cards' extent with the room the widest frame keeps around
    them (a card's half size, the current-node halo and the padding of a top-level module's frame)."""
    from explorer.core.graph.display import CARD_H, CARD_W, FRAME_PAD

    room = FRAME_PAD + 12 + 6  # the outermost frames' padding and the halo (the canvas draws no wider)
    boxes = []
    for path, _label, members in model.frames:
        rows: dict[int, list[float]] = {}
        for did in members:
            x, y = model.positions[did]
            box = rows.setdefault(model.row_of(did), [x, y, x, y])
            box[:] = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
        for x0, y0, x1, y1 in rows.values():
            boxes.append((path, (x0 - CARD_W / 2 - room, y0 - CARD_H / 2 - room, x1 + CARD_W / 2 + room,
                                 y1 + CARD_H / 2 + room)))
    return boxes


def _holds(outer: str, inner: str) -> bool:
    """Whether module `inner` lies in `outer` (a rolled-up "blocks.0-2" holds blocks.0 to blocks.2)."""
    if inner == outer or inner.startswith(outer + "."):
        return True
    head, _dot, span = outer.rpartition(".")
    low, dash, high = span.partition("-")
    index = inner[len(head) + 1:].split(".")[0] if inner.startswith(head + ".") else ""
    return bool(dash) and index.isdigit() and int(low) <= int(index) <= int(high)


@pytest.mark.parametrize("blocks", [3, 20, 285])
def test_frames_of_modules_that_do_not_hold_each_other_never_overlap(blocks):
    """Sibling modules (blocks.0 and blocks.1, a block's norm1 and attn, ...) get layers of their own, so
    their frames never overlap, wrapped or not, laid out whole (3 blocks) or one block at a time: every
    frame can be filled opaque. Modules nested in each other (a rolled-up "blocks.0-2" holds blocks.1)
    have nested frames."""
    tr = gpt_step_trace(blocks)
    expanded = frozenset(all_expanded(tr))
    for aspect in (None, 1.6):
        model = build_display(tr, expanded, aspect=aspect)
        assert (len(model.info) >= COMPOSE_MIN_NODES) == (blocks > 3)
        boxes = _frame_boxes(model)
        assert len(boxes) >= 9 * blocks
        order = sorted(boxes, key=lambda b: b[1][0])
        for i, (pa, a) in enumerate(order):
            for pb, b in order[i + 1:]:
                if b[0] >= a[2]:
                    break
                if _holds(pa, pb) or _holds(pb, pa):
                    continue
                assert min(a[3], b[3]) <= max(a[1], b[1]), (pa, pb, a, b, aspect)
