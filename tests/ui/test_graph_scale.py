"""The canvas stays linear as graphs grow: counts of work per node, not stopwatches (speed is in
bench/graph_bench.py)."""

from __future__ import annotations

from explorer.ui.graph import items
from explorer.ui.graph.view import GraphView, LabelShelf
from tests.graphs import all_expanded, gpt_step_trace


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
    tr = gpt_step_trace(layers)
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    view.graph_scene.expanded = all_expanded(tr)
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


def view_with_one_block_folded(qtbot, tr, block: str):
    """A 1000x700 canvas showing `tr` with every module expanded but `block`; (view, scene, its card)."""
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    scene = view.graph_scene
    scene.expanded = {p for p in all_expanded(tr) if p != block and not p.startswith(block + ".")}
    view.set_trace(tr)
    card = next(d for d, i in scene.model.info.items() if i.get("path") == block)
    return view, scene, card

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
    tr = gpt_step_trace(layers)
    block = f"blocks.{layers // 2}"
    view, scene, card = view_with_one_block_folded(qtbot, tr, block)
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


def _lazy_view(qtbot, monkeypatch, layers: int) -> GraphView:
    """A canvas that makes its cards only near the view (the threshold lowered to this test's sizes)."""
    from explorer.ui.graph import view as view_module

    monkeypatch.setattr(view_module, "LAZY_CARDS", 50)
    tr = gpt_step_trace(layers)
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    view.graph_scene.expanded = all_expanded(tr)
    view.set_trace(tr)
    return view


def _look_at(view: GraphView, did: str, zoom: float = 1.0) -> None:
    view.resetTransform()
    view.zoom_by(zoom)
    view.centerOn(*view.graph_scene.model.positions[did])
    view.grab()  # paints: the cards near the view go on the scene


def test_a_big_canvas_makes_only_the_cards_near_its_view(qtbot, monkeypatch):
    from explorer.ui.graph import view as view_module

    rows = []
    for layers in (6, 24):
        before = view_module.CARDS_MADE[0]
        view = _lazy_view(qtbot, monkeypatch, layers)
        scene = view.graph_scene
        view.grab()  # the first paint, fitted: far out, the overview draws every card as a block
        assert scene.overview_mode or layers == 6
        fitted = view_module.CARDS_MADE[0] - before
        pos = scene.model.positions
        middle = scene.model.order[len(scene.model.order) // 2]
        _look_at(view, middle)
        shown = view.mapToScene(view.viewport().rect()).boundingRect()
        near = shown.adjusted(-1.25 * view_module.CELL, -1.25 * view_module.CELL, 1.25 * view_module.CELL,
                              1.25 * view_module.CELL)
        in_view = [d for d, (x, y) in pos.items() if shown.contains(x, y)]
        assert in_view and all(scene.made_cards[d].scene() is scene and scene.made_cards[d].isVisible()
                               for d in in_view)  # every card in view is drawn
        assert all(near.contains(*pos[d]) for d in scene.made_cards)  # and no card far from it is made
        live_cards, live_frames = scene.live_items()
        rows.append((len(scene.cards), fitted, live_cards, live_frames, len(scene.frames)))
    small, big = rows
    assert big[0] > 3 * small[0]
    assert big[1] == 0, rows  # the fitted big graph is drawn without one card object
    # the cards and frames on the scene are what is near the view, not a share of the graph
    assert big[2] < big[0] / 4 and big[3] < big[4] / 4, rows
    assert big[2] <= 2 * small[2] + 10, rows


def test_a_lazy_canvas_keeps_few_cards_as_it_pans_and_finds_any_card(qtbot, monkeypatch):
    from explorer.ui.graph import view as view_module

    monkeypatch.setattr(view_module, "MAX_LIVE_CELLS", 8)  # (a graph of test size has fewer cells)
    view = _lazy_view(qtbot, monkeypatch, 24)
    scene = view.graph_scene
    order = scene.model.order
    for did in order[:: max(1, len(order) // 40)]:  # across the whole graph
        _look_at(view, did)
        assert scene.made_cards[did].scene() is scene
        assert len(scene._live_cells) <= 8 + 6  # cells far from the view were taken off
    assert scene.live_items()[0] < len(scene.cards) / 3
    view.zoom_by(0.05)  # the overview: the cards on the scene hide, the blocks show
    assert scene.overview_mode and not any(c.isVisible() for c in scene.made_cards.values())
    view.grab()
    far = order[-1]
    title = scene.model.info[far]["title"]
    found = view.find(title)
    view.grab()
    card = scene.cards[found]
    assert card.selected and card.scene() is scene and card.isVisible() and not scene.overview_mode
    assert view.mapToScene(view.viewport().rect()).boundingRect().contains(card.pos())
    view.minimap.grab()  # the minimap draws its blocks from the model


def test_a_lazy_canvas_shows_each_card_in_the_players_state(qtbot, monkeypatch):
    """A card made after player steps shows what one made before them shows."""
    view = _lazy_view(qtbot, monkeypatch, 6)
    scene = view.graph_scene
    first = scene.model.order[0]
    _look_at(view, first)
    early = set(scene.made_cards)
    for k in (5, view.step_count // 2, view.step_count, 3 * view.step_count // 4):
        view.set_step(k)
    states = {d: (c.show_value, c.show_grad, c.current) for d, c in scene.cards.items()}  # makes the rest
    assert len(scene.made_cards) > len(early)
    from explorer.ui.graph.render import build_scene

    eager = build_scene(scene.trace, step=scene.step, expanded=scene.expanded)  # every card made at once
    assert states == {d: (c.show_value, c.show_grad, c.current) for d, c in eager.cards.items()}
    assert any(g for _v, g, _c in states.values()) and not all(g for _v, g, _c in states.values())
    assert any(c for _v, _g, c in states.values())


def test_a_file_drawn_from_a_lazy_canvas_has_every_card(qtbot, monkeypatch, tmp_path):
    from explorer.ui.graph.render import render_scene_file

    view = _lazy_view(qtbot, monkeypatch, 6)
    scene = view.graph_scene
    view.grab()
    painted = set()
    paint = items.NodeCard.paint

    def counting_paint(self, painter, option, widget=None):
        painted.add(self.node_id)
        return paint(self, painter, option, widget)

    monkeypatch.setattr(items.NodeCard, "paint", counting_paint)
    render_scene_file(scene, tmp_path / "g.png")
    assert painted == set(scene.cards)
    assert scene.live_items()[0] < len(scene.cards)  # and the canvas is back to the cards near its view


def test_an_expand_while_zoomed_in_makes_the_overview_only_once_zoomed_out(qtbot, monkeypatch):
    """The overview (all cards as blocks, ~a third of a 10,000-card scene's build) is made when it is
    first shown after a rebuild: an expand among readable cards does without it. Made later, it draws as
    one made at once does, in the player's state."""
    from explorer.ui.graph import view as view_module

    made = []

    class CountingOverview(view_module.Overview):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(view_module, "Overview", CountingOverview)
    tr = gpt_step_trace(6)
    block = "blocks.3"
    views = []
    for zoomed_in in (True, False):
        view, scene, card = view_with_one_block_folded(qtbot, tr, block)
        view.resetTransform()
        view.zoom_by(1.0 if zoomed_in else 0.05)
        view.centerOn(*scene.model.positions[card])
        view.grab()
        assert scene.overview_mode is not zoomed_in
        made.clear()
        assert scene.toggle_module(card)
        assert len(made) == (0 if zoomed_in else 1)
        view.set_step(scene.step_count // 2)
        view.select(next(iter(scene.model.info)))
        view.resetTransform()
        view.zoom_by(0.05)
        view.centerOn(scene.sceneRect().center())
        image = view.grab().toImage()
        assert scene.overview_mode and len(made) == 1  # made once zoomed out (or at the expand)
        views.append(image)
    assert views[0] == views[1]


def _expand_zoomed_in(qtbot, monkeypatch, layers: int):
    """Module frame items made, and objects left in the collector's young generations, by expanding the
    middle block of a GPT (every other module expanded) on a lazy canvas zoomed in to 100 % on the block,
    its first paint included; and (frames of the graph, frames on the scene)."""
    import gc

    from explorer.ui.graph import view as view_module

    monkeypatch.setattr(view_module, "LAZY_CARDS", 50)
    made = []

    class CountingFrame(view_module.ModuleFrame):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(view_module, "ModuleFrame", CountingFrame)
    tr = gpt_step_trace(layers)
    view, scene, card = view_with_one_block_folded(qtbot, tr, f"blocks.{layers // 2}")
    _look_at(view, card)
    made.clear()
    gc.unfreeze()  # what an earlier UI test's teardown froze (tests/ui/conftest.py): the app freezes nothing
    gc.collect()
    assert scene.toggle_module(card)
    young = len(gc.get_objects(0)) + len(gc.get_objects(1))
    view.grab()
    return len(made), young, len(scene.frames), scene.live_items()[1]


def test_an_expand_on_a_big_canvas_makes_the_frames_near_the_view_and_hands_the_collector_no_work(
        qtbot, monkeypatch):
    """Work per expand that does not grow with the graph: frame items are made for the frames near the view
    only (filed by cell before they are made), and what the rebuild made goes to the collector's oldest
    generation (`no_gc(keep=True)`) instead of the young pass after it scanning every new object."""
    small = _expand_zoomed_in(qtbot, monkeypatch, 8)
    big = _expand_zoomed_in(qtbot, monkeypatch, 24)
    assert big[2] > 2.5 * small[2], (small, big)  # the graph grew ...
    for made, young, frames, live in (small, big):
        assert 0 < made <= live < frames / 2, (small, big)  # ... the items made are those in view
        assert young < 3000, (small, big)
    assert big[0] <= small[0] + 8 and big[1] <= 1.5 * small[1] + 500, (small, big)


def test_the_minimap_shows_a_block_per_card_where_a_painted_rectangle_would_be(qtbot, monkeypatch):
    """The minimap writes its blocks into pixels in array passes: the same pixels (up to blocks that overlap
    and the rounding of a block's edges) as a QPainter rectangle per card in its colour, the selected card's
    block on top in the selection colour."""
    import numpy as np
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    from explorer.core.graph.display import CARD_H, CARD_W

    view = _lazy_view(qtbot, monkeypatch, 12)
    scene = view.graph_scene
    view.zoom_by(1.0)
    view.minimap.place()
    chosen = scene.model.order[len(scene.model.order) // 2]
    scene.set_selected(chosen)
    mini = view.minimap
    got = mini._blocks(scene).toImage().convertToFormat(QImage.Format_ARGB32)

    from explorer.ui.graph import view as view_module

    monkeypatch.setattr(view_module, "blocks_into", lambda *args: None)  # the background and border alone
    want = mini._blocks(scene).toImage().convertToFormat(QImage.Format_ARGB32)
    bare = want.copy()
    t = scene.theme
    k, rect = mini._transform()
    w, h = max(1.5, CARD_W * k), max(1.5, CARD_H * k)
    painter = QPainter(want)
    painter.setPen(QColor(0, 0, 0, 0))
    for did, (x, y) in list(scene.model.positions.items()) + [(chosen, scene.model.positions[chosen])]:
        color = t["selected"] if did == chosen else items.accent_name(scene.model.info[did], t)
        painter.setBrush(QColor(color))
        painter.drawRect(QRectF((x - CARD_W / 2 - rect.left()) * k, (y - CARD_H / 2 - rect.top()) * k, w, h))
    painter.end()

    def pixels(image: QImage) -> np.ndarray:
        return np.frombuffer(image.constBits(), np.uint32).reshape(image.height(), -1)[:, :image.width()]

    a, b = pixels(got), pixels(want)
    assert (a != b).mean() < 0.05
    assert (a != pixels(bare)).mean() > 0.1  # blocks were drawn
    assert (a == QColor(t["selected"]).rgba()).sum() >= 1  # the selected card's block
