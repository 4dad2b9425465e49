"""Issue 21, the first build far out: the overview is made from arrays (no Python object per card or edge).
The array helpers draw what the per-object calls they replace draw: the same path elements, the same
pixels; the overview of a graph is made without a card object or a QRectF per card."""

from __future__ import annotations

import numpy as np
import pytest

from tests.graphs import all_expanded, gpt_step_trace
from tests.ui.graph_views import shown_graph


def _image_of(draw) -> np.ndarray:
    from PySide6.QtGui import QColor, QImage, QPainter

    image = QImage(300, 200, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.scale(0.37, 0.41)
    painter.translate(13.3, 7.7)
    draw(painter)
    painter.end()
    return np.frombuffer(image.constBits(), dtype=np.uint32).reshape(200, image.bytesPerLine() // 4).copy()


def test_draw_rects_from_an_array_draws_what_a_list_of_rectangles_draws(qapp):
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor

    from explorer.ui.graph.items import draw_rects

    rng = np.random.default_rng(3)
    rects = np.column_stack([rng.uniform(0, 700, 400), rng.uniform(0, 450, 400), rng.uniform(1, 40, 400),
                             rng.uniform(1, 30, 400)])

    def with_brush(fn):
        def draw(painter):
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor("#3a7"))
            fn(painter)
        return draw

    for part in (rects, rects[:137], rects[250:], rects[::3]):  # prefixes, suffixes and a strided copy
        listed = _image_of(with_brush(lambda p, r=part: p.drawRects([QRectF(*row) for row in r.tolist()])))
        arrayed = _image_of(with_brush(lambda p, r=part: draw_rects(p, r)))
        assert (listed != 0xFFFFFFFF).sum() > 1000  # something was drawn
        assert np.array_equal(listed, arrayed)


def test_polyline_path_is_the_path_of_move_and_line_calls(qapp):
    from PySide6.QtGui import QColor, QPainterPath, QPen

    from explorer.ui.graph.items import polyline_path

    rng = np.random.default_rng(5)
    counts = rng.integers(2, 6, 300)
    x, y = rng.uniform(-50, 800, counts.sum()), rng.uniform(-20, 500, counts.sum())
    made = polyline_path(x, y, counts)
    called = QPainterPath()
    k = 0
    for n in counts.tolist():
        called.moveTo(x[k], y[k])
        for j in range(k + 1, k + n):
            called.lineTo(x[j], y[j])
        k += n
    assert made.elementCount() == called.elementCount() == counts.sum()
    for i in range(made.elementCount()):
        a, b = made.elementAt(i), called.elementAt(i)
        assert (a.type, a.x, a.y) == (b.type, b.x, b.y)
    pen = QPen(QColor("black"), 1.0)
    pen.setCosmetic(True)

    def stroke(path):
        def draw(painter):
            painter.setPen(pen)
            painter.drawPath(path)
        return draw

    assert np.array_equal(_image_of(stroke(made)), _image_of(stroke(called)))
    assert polyline_path(np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)).isEmpty()


def test_the_fitted_overview_is_made_without_an_object_per_card(qtbot, monkeypatch):
    """Fitted far out, a graph's first paint makes no card object, and its overview no QRectF per card,
    edge or frame: the rectangles made while the overview is built are as many on a graph twice as large."""
    from PySide6.QtCore import QRectF

    from explorer.ui.graph import items
    from explorer.ui.graph import view as view_module

    made = [0]

    class CountedRect(QRectF):
        def __init__(self, *args):
            made[0] += 1
            super().__init__(*args)

    real = view_module.GraphScene._make_overview

    def counted(self):
        monkeypatch.setattr(items, "QRectF", CountedRect)
        try:
            real(self)
        finally:
            monkeypatch.setattr(items, "QRectF", QRectF)

    monkeypatch.setattr(view_module.GraphScene, "_make_overview", counted)
    monkeypatch.setattr(view_module, "LAZY_CARDS", 50)  # (a lazy canvas at this test's sizes)
    rows = []
    for blocks in (6, 12):
        tr = gpt_step_trace(blocks)
        made[0] = 0
        cards = view_module.CARDS_MADE[0]
        view = shown_graph(qtbot, tr, all_expanded(tr))
        view.grab()
        scene = view.graph_scene
        assert scene.overview_mode and scene.overview is not None
        assert view_module.CARDS_MADE[0] == cards  # far out: blocks, not cards
        rows.append((len(scene.cards), len(scene.frames), made[0]))
    (small, small_frames, small_made), (big, big_frames, big_made) = rows
    assert big > 1.7 * small and big_frames > 1.7 * small_frames, rows
    assert 0 < big_made == small_made < 10, rows


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_accent_codes_are_accent_name_of_every_card(theme):
    from explorer.core.graph.display import build_display
    from explorer.ui.common.theme import THEMES
    from explorer.ui.graph.items import accent_codes, accent_name

    tr = gpt_step_trace(2)
    for expanded in (set(), all_expanded(tr)):  # module cards (one an output) and traced nodes
        model = build_display(tr, frozenset(expanded))
        infos = list(model.info.values())
        assert any(i["is_output"] for i in infos) and len({i["kind"] for i in infos}) >= 3
        names, codes = accent_codes(infos, THEMES[theme])
        assert [names[k] for k in codes.tolist()] == [accent_name(i, THEMES[theme]) for i in infos]
        bare = [{"kind": i["kind"]} for i in infos]  # (infos without the keys: the same, card by card)
        names, codes = accent_codes(bare, THEMES[theme])
        assert [names[k] for k in codes.tolist()] == [accent_name(i, THEMES[theme]) for i in bare]


def test_the_overview_drawn_cell_by_cell_is_the_overview_drawn_whole(qtbot, monkeypatch):
    """The frames and edges that a paint of part of the overview draws (filed by grid cell, each cell's edges
    one path, made as a paint first needs them) are those of a paint of all of it, there: the same pixels
    in the part painted, at several parts and zooms."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    from explorer.ui.graph import items

    monkeypatch.setattr(items, "OVERVIEW_CELL", 700.0)  # many cells on a graph of test size
    tr = gpt_step_trace(6)
    view = shown_graph(qtbot, tr, all_expanded(tr))
    view.grab()
    overview = view.graph_scene.overview
    whole = overview.boundingRect()
    assert overview._lines is not None and len(items.overview_cells(whole)) > 20

    def paint(part: QRectF, zoom: float, exposed: QRectF) -> np.ndarray:
        """`part` of the graph at `zoom` in an image, the overview told `exposed` is to be painted."""
        image = QImage(900, 600, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(QColor(view.graph_scene.theme["canvas"]))
        painter = QPainter(image)
        painter.scale(zoom, zoom)
        painter.translate(-part.left(), -part.top())
        painter.setClipRect(part)
        overview._paint(painter, zoom, exposed)
        painter.end()
        return np.frombuffer(image.constBits(), dtype=np.uint32).reshape(600, -1).copy()

    drawn = 0
    for fx, fy, zoom in ((0.1, 0.2, 0.12), (0.45, 0.5, 0.25), (0.7, 0.05, 0.08)):
        part = QRectF(whole.left() + fx * whole.width(), whole.top() + fy * whole.height(), 900 / zoom,
                      600 / zoom)
        assert items.overview_cells(part, whole) is not None  # a part: drawn from the cells under it
        by_cells = paint(part, zoom, part)
        at_once = paint(part, zoom, whole)  # every frame and one path of every edge
        assert np.array_equal(by_cells, at_once)
        drawn += int((by_cells != by_cells[0, 0]).sum())
    assert drawn > 10_000  # frames and edges were drawn


def test_the_cells_around_the_view_come_a_few_per_idle_turn(qtbot, monkeypatch):
    """After a jump (find, the minimap, an expand), a lazy canvas puts the cards around the view on the scene
    while idle, at most AHEAD_CELLS grid cells per turn (one turn stays short), until all are there."""
    from PySide6.QtCore import QRectF

    from explorer.ui.graph import tiles
    from explorer.ui.graph import view as view_module

    monkeypatch.setattr(view_module, "LAZY_CARDS", 50)
    monkeypatch.setattr(view_module, "CELL", 400.0)  # many cells around a view of test size
    monkeypatch.setattr(view_module, "MAX_LIVE_CELLS", 400)
    tr = gpt_step_trace(6)
    view = shown_graph(qtbot, tr, all_expanded(tr))
    scene = view.graph_scene
    order = scene.model.order
    shown: list[tuple[int, int]] = []
    real = view_module.GraphScene._show_cell
    monkeypatch.setattr(view_module.GraphScene, "_show_cell", lambda self, cell: (shown.append(cell),
                                                                                  real(self, cell)))
    view.resetTransform()
    view.zoom_by(1.0)
    view.viewport().grab()
    view.viewport().grab()  # (the same zoom twice: not a zoom gesture)
    layer = view.static_layer
    for did in (order[len(order) // 3], order[-5]):
        view.centerOn(*scene.model.positions[did])  # a jump: the view's cells come with its paint
        view.viewport().grab()
        assert layer.drawing_ahead
        turns = []
        while layer.drawing_ahead and len(turns) < 100:
            layer._ahead.stop()
            shown.clear()
            layer._draw_ahead()  # one idle turn
            turns.append(len(shown))
        region = layer.region(view.viewportTransform(), QRectF(view.viewport().rect()))
        shown.clear()
        assert scene.show_region(region) and not shown  # every cell around the view is on the scene
        assert max(turns) == tiles.AHEAD_CELLS and sum(turns) > tiles.AHEAD_CELLS, turns


def test_a_dropped_scene_goes_at_once_without_the_collector(qapp):
    """A scene no one holds is freed by reference counting (no cycle through its card map or frame list):
    it never lingers until the collector's next pass (an event-loop turn before that had Qt index all its
    items: ~150 ms at 10,000 cards)."""
    import gc
    import weakref

    from explorer.ui.graph.render import build_scene

    tr = gpt_step_trace(2)
    scene = build_scene(tr, expanded=all_expanded(tr))
    assert len(scene.frames) > 5 and len(scene.cards) > 50 and scene.frames[0] is not None
    gone = weakref.ref(scene)
    was = gc.isenabled()
    gc.disable()
    try:
        del scene
        assert gone() is None
    finally:
        if was:
            gc.enable()
