"""The canvas stays linear as graphs grow: counts of work per node, not stopwatches (speed is in
bench/graph_bench.py)."""

from __future__ import annotations

import torch

from explorer.core.autograd.trace import trace
from explorer.core.gpt.model import GPT, GPTConfig
from explorer.core.graph.layout import collapse
from explorer.ui.graph import items
from explorer.ui.graph.view import GraphView, LabelShelf


def _gpt_step_trace(layers: int):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, context_length=4, emb_dim=8, n_heads=2, n_layers=layers, drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 16, (1, 4))
    return trace(lambda: model.loss(idx, torch.roll(idx, -1, 1)), max_snapshot_elems=16)


def _all_expanded(tr) -> set[str]:
    expanded: set[str] = set()
    while True:
        paths = {d["path"] for _, d in collapse(tr, expanded).nodes(data=True) if d.get("kind") == "module"}
        if not paths - expanded:
            return expanded
        expanded |= paths


def _work(qtbot, monkeypatch, layers: int) -> tuple[int, float, float, int]:
    """(nodes, font-metric calls per card, labels compared per frame, frames) of one scene build in a
    wrapped canvas, the shape that once put hundreds of frames side by side in one band."""
    looked = []
    place = LabelShelf.place

    def counting_place(self, left, top, width):
        offset = place(self, left, top, width)
        looked.append(self.looked_at)
        return offset

    monkeypatch.setattr(LabelShelf, "place", counting_place)
    tr = _gpt_step_trace(layers)
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    view.graph_scene.expanded = _all_expanded(tr)
    before = items.METRIC_CALLS[0]
    view.set_trace(tr)
    calls = items.METRIC_CALLS[0] - before
    frames = len(view.graph_scene.frames)
    cards = len(view.graph_scene.cards)
    assert cards == len(tr.nodes) and view.graph_scene.model.bands > 1  # every node drawn, rows wrapped
    return cards, calls / cards, (looked[-1] if looked else 0) / max(1, frames), frames


def test_scene_work_per_node_does_not_grow_with_the_graph(qtbot, monkeypatch):
    small = _work(qtbot, monkeypatch, 6)
    big = _work(qtbot, monkeypatch, 24)
    assert big[0] > 3 * small[0] and big[3] > 3 * small[3]
    # placing frame labels once compared every frame with every frame of its band: quadratic
    assert big[1] <= small[1] * 1.2 + 0.05, (small, big)
    assert big[2] <= small[2] * 1.5 + 1.0, (small, big)


def test_labels_at_one_corner_go_side_by_side():
    shelf = LabelShelf()
    assert shelf.place(0, 0, 50) == 0
    assert shelf.place(0, 10, 30) == 50  # the second label starts where the first ends
    assert shelf.place(0, 20, 10) == 80
    assert shelf.place(500, 0, 40) == 0  # another corner: its own place
    assert shelf.place(0, 200, 40) == 0  # another band
    assert shelf.place(60, 0, 10) == 30  # starts inside the stack of labels: moves past its end (90)


def _expand_one_block(qtbot, monkeypatch, layers: int):
    """(cards made, node infos made, cards shown, members of the block) when the middle block of a GPT
    whose other modules are all expanded is expanded too; and the scene then."""
    from explorer.core.graph import display
    from explorer.ui.graph import view as view_module

    made_infos = []
    node_info = display._node_info

    def counting_info(node, has_grad):
        made_infos.append(node.id)
        return node_info(node, has_grad)

    monkeypatch.setattr(display, "_node_info", counting_info)
    tr = _gpt_step_trace(layers)
    block = f"blocks.{layers // 2}"
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    scene = view.graph_scene
    scene.expanded = {p for p in _all_expanded(tr) if p != block and not p.startswith(block + ".")}
    view.set_trace(tr)
    card = next(d for d, i in scene.model.info.items() if i.get("path") == block)
    members = len(scene.model.info[card]["members"])
    cards_before, infos_before = view_module.CARDS_MADE[0], len(made_infos)
    assert scene.toggle_module(card)
    return (view_module.CARDS_MADE[0] - cards_before, len(made_infos) - infos_before, len(scene.cards),
            members), view


def test_expanding_one_module_makes_only_its_own_cards(qtbot, monkeypatch):
    small, _ = _expand_one_block(qtbot, monkeypatch, 4)
    big, view = _expand_one_block(qtbot, monkeypatch, 16)
    assert big[2] > 3 * small[2]  # the graph grew ...
    for made, infos, _cards, members in (small, big):
        # ... but an expansion makes the block's cards (its inner modules' cards, still folded, at most)
        assert 0 < made <= members and 0 < infos <= members, (small, big)
    assert big[0] <= small[0] + 2 and big[1] <= small[1] + 2, (small, big)


def test_an_expanded_module_draws_as_a_fresh_build_does(qtbot, monkeypatch):
    """The kept cards and infos are the ones a rebuild from scratch makes: same cards, places, texts."""
    _, view = _expand_one_block(qtbot, monkeypatch, 4)
    scene = view.graph_scene
    fresh = GraphView()
    qtbot.addWidget(fresh)
    fresh.resize(1000, 700)
    fresh.show()
    fresh.graph_scene.expanded = set(scene.expanded)
    fresh.set_trace(scene.trace, step=scene.step)
    other = fresh.graph_scene
    assert scene.cards.keys() == other.cards.keys()
    for did, card in scene.cards.items():
        twin = other.cards[did]
        assert card.pos() == twin.pos() and card.scene() is scene
        assert {k: v for k, v in card.info.items() if k not in ("value", "grad")} == \
            {k: v for k, v in twin.info.items() if k not in ("value", "grad")}
        assert (card.show_value, card.show_grad, card.current) == (twin.show_value, twin.show_grad,
                                                                   twin.current)
    assert len(scene.frames) == len(other.frames)
    from explorer.ui.graph.view import SCENE_MARGIN, SCENE_MARGIN_X

    for sc in (scene, other):  # the scene's rectangle, worked out from the model, is Qt's bounding rect
        m, mx = SCENE_MARGIN, SCENE_MARGIN_X
        want = sc.itemsBoundingRect().adjusted(-mx, -m, mx, m)
        got = sc.sceneRect()
        gaps = (got.left() - want.left(), got.top() - want.top(), got.right() - want.right(),
                got.bottom() - want.bottom())
        assert max(abs(g) for g in gaps) < 1e-6, (got, want)
    assert sorted(type(i).__name__ for i in scene.items()) == sorted(type(i).__name__ for i in other.items())
