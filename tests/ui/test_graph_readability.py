"""Readable at every size (issue 12): card text, elided names, module frames, find, minimap, SVG export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from explorer.core.autograd.trace import trace
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.program import parse
from explorer.ui.graph.render import build_scene, render_scene_file
from tests.graphs import all_expanded
from tests.ui.graph_views import CANVAS, shown_graph

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def gpt_trace():
    """The "Trace one step" graph of the tiny preset: 158 traced nodes."""
    from explorer.core.gpt.model import PRESETS
    from explorer.ui.pretrain.trace_step import trace_one_step

    source = {"checkpoint": None, "config": PRESETS["tiny"].to_dict(), "settings": {"tokenizer": "char"}}
    return trace_one_step(source, 8)[0]


def _example(name: str):
    from explorer.commands.graph import trace_program
    from explorer.core.lang.examples import load_example

    return trace_program(parse(load_example(name)))


def _shown(qtbot, tr, expanded=()):
    view = shown_graph(qtbot, tr, expanded)
    view.viewport().grab()  # paint every card once, at the default (fitted) zoom
    return view


@pytest.mark.parametrize("case", ["seed", "tensors_basics", "gpt", "gpt-expanded"])
def test_card_text_is_at_least_9_pt_on_screen_at_the_default_zoom(qtbot, seed_trace, gpt_trace, case):
    from explorer.ui.graph.items import MIN_SCREEN_PT

    tr = {"seed": seed_trace, "tensors_basics": _example("tensors_basics")}.get(case, gpt_trace)
    view = _shown(qtbot, tr, all_expanded(tr) if case == "gpt-expanded" else ())
    cards = view.graph_scene.cards
    if case == "gpt-expanded":
        assert len(cards) > 60  # every op of the step: the graph the user could not read
    assert not view.graph_scene.overview_mode
    painted = [c for c in cards.values() if c.painted]
    assert len(painted) >= min(len(cards), 30)
    sizes = [pt for c in painted for _text, pt in c.painted]
    assert min(sizes) >= MIN_SCREEN_PT - 0.05, (case, min(sizes), view.transform().m11())
    titles = {c.info["title"]: c.painted[0][0] for c in painted}
    if case in ("seed", "tensors_basics"):  # small graphs: every name whole, and the numbers shown
        assert all(shown == title for title, shown in titles.items()), titles
        assert all(len(c.painted) >= 2 for c in painted)


def test_a_long_graph_wraps_into_rows_and_fills_the_canvas(qtbot, gpt_trace):
    view = _shown(qtbot, gpt_trace)
    model = view.graph_scene.model
    assert model.bands >= 2
    used = view.mapFromScene(view.graph_scene.itemsBoundingRect()).boundingRect()
    assert used.width() > 0.7 * CANVAS[0] and used.height() > 0.45 * CANVAS[1]
    # one row per band: every edge still runs left to right except the turns between rows
    rows = {model.row_of(d) for d in model.info}
    assert rows == set(range(model.bands))


def test_long_names_are_elided_with_an_ellipsis_and_a_tooltip(qtbot, gpt_trace):
    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace) - {"blocks.0.attn"})
    cards = view.graph_scene.cards
    attn = next(c for c in cards.values() if c.info["title"] == "CausalSelfAttention")
    shown = attn.painted[0][0]
    assert shown == "CausalSelfAttention" or (shown.endswith("…") and "CausalSelfAttention".startswith(
        shown[:-1])), shown
    assert "CausalSelfAttention" in attn.toolTip()


def test_bce_with_logits_loss_is_never_cut_mid_word_without_an_ellipsis(qtbot):
    import torch
    import torch.nn as nn

    from explorer.core.autograd.trace import trace as trace_fn

    torch.manual_seed(0)
    model, loss = nn.Linear(3, 1), nn.BCEWithLogitsLoss()
    x, y = torch.randn(4, 3), torch.ones(4, 1)
    view = _shown(qtbot, trace_fn(lambda: loss(model(x), y)))
    view.zoom_by(0.5)  # zoomed out: the names are drawn large, so they are elided earlier
    view.viewport().grab()
    for card in view.graph_scene.cards.values():
        title, shown = card.info["title"], card.painted[0][0]
        assert shown == title or (shown.endswith("…") and title.startswith(shown[:-1])), (title, shown)
        assert title in card.toolTip()
    assert any(c.info["title"] == "BCEWithLogitsLoss" for c in view.graph_scene.cards.values())


def test_expanded_modules_are_framed_and_labelled(qtbot, gpt_trace):
    view = _shown(qtbot, gpt_trace, {"blocks", "blocks.0", "blocks.0.attn"})
    scene = view.graph_scene
    frames = {f.path: f for f in scene.frames if not f.label.endswith("(cont.)")}
    assert {"blocks.0", "blocks.0.attn"} <= set(frames)
    assert frames["blocks.0"].label == "blocks.0 · Block"
    assert frames["blocks.0.attn"].label == "blocks.0.attn · CausalSelfAttention"
    members = [d for path, _label, ids in scene.model.frames if path == "blocks.0.attn" for d in ids]
    boxes = [f.rect for f in scene.frames if f.path == "blocks.0.attn"]
    for did in members:
        assert any(b.contains(scene.cards[did].sceneBoundingRect()) for b in boxes), did
    outside = [d for d in scene.cards if d not in members and scene.model.info[d]["kind"] != "module"]
    assert outside and not any(b.contains(scene.cards[d].sceneBoundingRect()) for b in boxes for d in outside)
    # the labels of nested frames that start at one corner do not overlap
    labels = sorted((f.rect.left() + f.label_offset, f.label_width()) for f in frames.values()
                    if abs(f.rect.top() - frames["blocks.0"].rect.top()) < 60)
    assert all(a + w <= b + 0.5 for (a, w), (b, _w) in zip(labels, labels[1:], strict=False))


def test_find_selects_and_centres_a_node(qtbot, gpt_trace):
    from PySide6.QtCore import Qt

    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.zoom_by(2.0)
    view.show_find()
    assert view.find_bar.isVisible()
    qtbot.keyClicks(view.find_bar, "scaled_dot")
    did = view.selected()
    assert did is not None and view.graph_scene.model.info[did]["title"].startswith("scaled_dot")
    centre = view.mapToScene(view.viewport().rect().center())
    card = view.graph_scene.cards[did].sceneBoundingRect()
    assert view.viewport().rect().contains(view.mapFromScene(card).boundingRect())
    assert abs(centre.x() - card.center().x()) < 5  # centred (as far as the graph's edge allows)
    view.find_bar.setText("")
    qtbot.keyClicks(view.find_bar, "view")
    first = view.selected()
    qtbot.keyClick(view.find_bar, Qt.Key_Return)  # Enter: the next match
    assert view.selected() != first and "view" in view.graph_scene.model.info[view.selected()]["title"]
    qtbot.keyClick(view.find_bar, Qt.Key_Escape)
    assert not view.find_bar.isVisible()
    assert view.find("no such node") is None


def test_ctrl_f_opens_the_find_bar_of_the_window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtGui import QAction

    from explorer.ui import main_window as mw
    from explorer.ui.common import actions
    from explorer.ui.graph.view import GraphView

    assert actions.spec("app.find_node").shortcut == "Ctrl+F"
    window = mw.MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.show()
    try:
        panel = window.panel("expression")
        qtbot.waitUntil(lambda: panel.result is not None, timeout=60_000)
        find = next(a for a in window.findChildren(QAction)
                    if a.property(actions.ACTION_ID) == "app.find_node")
        assert find.shortcut().toString() == "Ctrl+F"
        find.trigger()
        view = panel.findChild(GraphView)
        assert view.find_bar.isVisible()
        qtbot.keyClicks(view.find_bar, "sigmoid")
        assert view.graph_scene.model.info[view.selected()]["subtitle"] == "sigmoid"
        qtbot.keyClick(view.find_bar, Qt.Key_Escape)
        assert not view.find_bar.isVisible()
    finally:
        window.shutdown_panels()


def test_a_minimap_appears_when_the_graph_is_larger_than_the_view(qtbot, seed_trace, gpt_trace):
    small = _shown(qtbot, seed_trace)
    assert not small.minimap.isVisible()
    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.zoom_by(3.0)
    assert view.minimap.isVisible()
    before = view.mapToScene(view.viewport().rect().center())
    from PySide6.QtCore import QPoint, Qt

    qtbot.mouseClick(view.minimap, Qt.LeftButton, pos=QPoint(3, 3))
    after = view.mapToScene(view.viewport().rect().center())
    assert after.x() < before.x()  # the view moved to the graph's start


@pytest.fixture(scope="module")
def seed_trace():
    return trace(parse(SEED_SOURCE).callable())


def _chain(n: int):
    import torch

    w = torch.tensor(0.5, requires_grad=True)

    def fn():
        h = w
        for i in range(n):
            h = torch.sin(h) if i % 2 else h * 1.01
        return h
    return trace(fn)


@pytest.mark.parametrize("make", ["seed", "chain"])
def test_svg_export_is_valid_xml_with_one_group_per_card(qapp, tmp_path, seed_trace, make):
    tr = seed_trace if make == "seed" else _chain(300)
    scene = build_scene(tr)
    path = render_scene_file(scene, tmp_path / "g.svg")
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    nodes = [g for g in root.iter(SVG + "g") if g.get("class") == "node"]
    assert sorted(g.get("id") for g in nodes) == sorted(f"node-{d}" for d in scene.cards)
    assert len(list(root.iter(SVG + "path"))) == len(scene.model.edges)
    texts = {"".join(t.itertext()) for g in nodes for t in g.iter(SVG + "text")}
    if make == "seed":
        assert {"w", "sigmoid", "0.0852", "∇ -0.0898"} <= texts


# -- one inspector serves every graph ---------------------------------------------------------------


def _click_card(qtbot, view, did: str) -> None:
    from PySide6.QtCore import Qt

    view.fit()
    view.centerOn(view.graph_scene.cards[did])
    pos = view.mapFromScene(view.graph_scene.cards[did].sceneBoundingRect().center())
    assert view.viewport().rect().contains(pos)
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    assert view.selected() == did


def test_a_click_in_the_expression_graph_fills_the_same_inspector(qtbot):
    from explorer.ui.expression.panel import ExpressionPanel
    from explorer.ui.graph.inspector import Inspector

    panel = ExpressionPanel(source=SEED_SOURCE)
    qtbot.addWidget(panel)
    panel.resize(1600, 1000)
    panel.show()
    try:
        qtbot.waitUntil(lambda: panel.result is not None and panel.result.ok, timeout=60_000)
        assert type(panel.inspector) is Inspector
        scene = panel.graph.graph_scene
        w = next(d for d, i in scene.model.info.items() if i["title"] == "w")
        _click_card(qtbot, panel.graph, w)
        assert "w" in panel.inspector.title.text() and panel.inspector.check_box.isVisible()
    finally:
        panel.shutdown()


def test_a_click_in_the_network_iteration_graph_fills_the_inspector(qtbot):
    from PySide6.QtWidgets import QWidget

    from explorer.ui.graph.inspector import Inspector
    from explorer.ui.network.panel import NetworkPanel

    panel = NetworkPanel()
    qtbot.addWidget(panel)
    panel.resize(1600, 1000)
    panel.show()
    try:
        view = panel.iteration
        view.wait_recorded()
        view.player.set_step(view.player.length)  # the end: every value and gradient known
        inspector = panel.findChild(QWidget, "networkInspector")
        assert isinstance(inspector, Inspector)
        scene = view.graph.graph_scene
        module = next(d for d, i in scene.model.info.items()
                      if i["kind"] == "module" and i["has_grad"] and len(i["members"]) > 1)
        _click_card(qtbot, view.graph, module)
        assert scene.model.info[module]["title"] in inspector.title.text()
        assert inspector.value_box.isVisible() and inspector.grad_box.isVisible()
        assert inspector.chain_box.isVisible() and "module of" in inspector.chain_label.text()
        leaf = next(d for d, i in scene.model.info.items() if i["kind"] == "leaf")
        _click_card(qtbot, view.graph, leaf)
        assert inspector.meta_box.isVisible() and inspector.meta_labels["shape"].text().startswith("(")
        view.player.set_step(0)  # before the iteration: nothing computed
        assert "not computed yet" in inspector.title.text()
    finally:
        panel.shutdown()


def test_a_click_in_the_gpt_trace_graph_fills_the_inspector(qtbot):
    from explorer.core.gpt.model import PRESETS
    from explorer.ui.pretrain.trace_step import TraceTab

    class Panel:  # the two calls TraceTab makes of the pretraining panel
        def with_fresh_checkpoint(self, then):
            then()
            return False

        def model_source(self):
            config = PRESETS["tiny"].replace(n_layers=2, emb_dim=32, n_heads=2, context_length=16)
            return {"checkpoint": None, "config": config.to_dict(), "settings": {"tokenizer": "char"}}

    tab = TraceTab(Panel())
    qtbot.addWidget(tab)
    tab.resize(1600, 1000)
    tab.show()
    tab.tokens.setValue(4)
    with qtbot.waitSignal(tab.sig_traced, timeout=60_000):
        tab.trace_step()
    try:
        scene = tab.view.graph_scene
        loss = next(d for d, i in scene.model.info.items() if i["is_output"])
        _click_card(qtbot, tab.view, loss)
        assert tab.inspector.objectName() == "traceInspector"
        assert tab.inspector.value_box.isVisible()
        assert "backward starts at the output" in tab.inspector.chain_label.text()
        tab.player.set_step(0)
        assert "not computed yet" in tab.inspector.title.text()
    finally:
        tab.shutdown()


def test_the_inspector_shows_a_tensors_chain_rule_as_grids_and_an_elements_own_chain(qtbot):
    import torch
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QTableWidget

    from explorer.core.autograd import explain
    from explorer.ui.graph.inspector import Inspector
    from explorer.ui.graph.view import GraphView

    W = torch.tensor([[0.5, -1.0], [2.0, 0.25], [1.5, -0.5]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[1.0, 2.0], [-0.5, 0.3]], dtype=torch.float64)

    def fn():
        A = W @ x
        B = torch.sigmoid(A) * W
        return B.sum(), {"W": W, "A": A, "B": B}

    tr = trace(fn)
    view, inspector = GraphView(), Inspector()
    for w in (view, inspector):
        qtbot.addWidget(w)
        w.show()
    inspector.follow(view)
    view.resize(*CANVAS)
    view.set_trace(tr)
    wid = next(i for i, n in tr.nodes.items() if n.name == "W")
    view.select(wid)
    assert inspector.tensor_box.isVisible()
    grids = inspector.tensor_box.findChildren(QTableWidget)
    assert len(grids) >= 5  # two paths (upstream, [local,] term each) and their sum
    texts = " ".join(lbl.text() for lbl in inspector.tensor_box.findChildren(QLabel))
    assert "path 1 of 2" in texts and "path 2 of 2" in texts and "sum over the 2 paths" in texts
    total = grids[-1]
    assert total.item(1, 0).text() == fmt(float(W.grad[1, 0]))  # the sum is torch's .grad
    rect = total.visualItemRect(total.item(1, 0))
    qtbot.mouseClick(total.viewport(), Qt.LeftButton, pos=rect.center())
    assert inspector.element_label.isVisible()
    assert inspector.element_label.text() == "\n".join(explain.element_chain(tr, wid, (1, 0)))
    assert "sum over the 2 paths: dL/dW[1, 0]" in inspector.element_label.text()


def fmt(v: float) -> str:
    from explorer.core.numbers import fmt_number

    return fmt_number(v)


def test_the_svg_of_an_expanded_model_frames_its_modules(qapp, tmp_path, gpt_trace):
    scene = build_scene(gpt_trace, expanded={"blocks", "blocks.0"})
    root = ET.parse(render_scene_file(scene, tmp_path / "g.svg")).getroot()
    frames = [g for g in root.iter(SVG + "g") if g.get("class") == "frame"]
    labels = {"".join(t.itertext()) for g in frames for t in g.iter(SVG + "text")}
    assert "blocks.0 · Block" in labels
    assert len([g for g in root.iter(SVG + "g") if g.get("class") == "node"]) == len(scene.cards)


@pytest.mark.parametrize("zoom", [0.35, 0.6, 1.0])
def test_a_still_repaint_or_a_pan_copies_card_faces_and_a_step_redraws_only_changed_cards(
        qtbot, gpt_trace, monkeypatch, zoom):
    """Issue 21: repaint at every zoom. From 30 % on a card's face is drawn once per state and zoom and then
    copied: a still repaint draws no face anew, a pan only the cards that came into view, a player step only
    the cards whose state changed."""
    from PySide6.QtGui import QPaintEngine

    from explorer.ui.graph import items

    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.resetTransform()
    view.zoom_by(zoom)
    view.centerOn(view.graph_scene.sceneRect().center())
    drawn: list[str] = []
    looks: dict[str, set[tuple]] = {}  # the looks each card's face was drawn in
    lods: list[float] = []  # the levels of detail the faces were drawn at
    real = items.NodeCard._paint_face

    def look(card) -> tuple:  # what a face shows: no gradient below NAME_LOD (a gradient arriving there
        # draws nothing anew)
        return card.show_value, card.show_grad if lods[-1] >= items.NAME_LOD else None, card.current

    def counted(self, painter, lod):
        # (blocks, drawn below 30 %, and pictures of the scene in a vector engine are never cached)
        if lod >= 0.3 and painter.paintEngine().type() == QPaintEngine.Raster:
            lods.append(lod)
            drawn.append(self.node_id)
            looks.setdefault(self.node_id, set()).add(look(self))
        real(self, painter, lod)

    monkeypatch.setattr(items.NodeCard, "_paint_face", counted)

    def in_view() -> set[str]:
        seen = view.mapToScene(view.viewport().rect()).boundingRect()
        return {did for did, card in view.graph_scene.made_cards.items()
                if card.isVisible() and card.sceneBoundingRect().intersects(seen)}

    view.viewport().grab()
    for _ in range(20):  # the first paint at a new zoom may copy faces of the last zoom scaled (a zoom
        # gesture); the next paints draw the sharp ones, tiles.FACES_PER_PAINT at a time
        copies = items.SCALED_COPIES[0]
        view.viewport().grab()
        if items.SCALED_COPIES[0] == copies:
            break
    shown = in_view()
    assert len(shown) >= 5
    drawn.clear()
    view.viewport().grab()
    assert drawn == []  # a still repaint: every face copied
    bar = view.horizontalScrollBar()
    bar.setValue(bar.value() + 120)
    view.viewport().grab()
    assert not set(drawn) & shown  # a pan: only cards that were not in view (no shown one again)
    assert len(drawn) < len(in_view())
    cards = view.graph_scene.made_cards
    for step in (1, view.step_count // 2, view.step_count):
        view.viewport().grab()
        drawn.clear()
        before = {did: look(c) for did, c in cards.items()}
        had_grad = {did: c.show_grad for did, c in cards.items()}
        seen = {did: set(shown) for did, shown in looks.items()}
        was_in_view = in_view()
        view.set_step(step)
        view.viewport().grab()
        changed = {did for did, c in cards.items() if before.get(did) != look(c)}
        new = {did for did in changed if look(cards[did]) not in seen.get(did, ())}
        # a step: only the cards whose state changed to a look not drawn before (and those the view brought
        # in, following the player); a look shown before is copied from the cache
        assert not set(drawn) & (was_in_view - new)
        assert set(drawn) >= new & in_view()
        if step == view.step_count and lods[-1] < items.NAME_LOD:  # gradients arrived, not drawn: no face
            grads = {did for did in was_in_view if cards[did].show_grad and not had_grad[did]}
            assert grads and not set(drawn) & (grads - new)


@pytest.mark.parametrize("zoom", [0.35, 1.0])
def test_every_frame_is_filled_opaque_and_a_pan_or_a_step_copies_the_frame_labels(qtbot, gpt_trace, zoom):
    """Issue 21: repaint at every zoom. Sibling modules never share layers, so no frame overlaps another in
    part: every frame in view is filled with one opaque colour (a plain memory fill, not a blend of every
    pixel). A frame's label is drawn once per zoom and then copied: a still repaint and a player step draw
    no label anew, a pan only those that came into view."""
    from explorer.ui.graph import items

    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.resetTransform()
    view.zoom_by(zoom)
    view.centerOn(view.graph_scene.sceneRect().center())

    def in_view() -> set:
        seen = view.mapToScene(view.viewport().rect()).boundingRect()
        return {f for f in view.graph_scene.frames if f.scene() is not None and f.isVisible()
                and f.boundingRect().intersects(seen)}

    view.viewport().grab()
    frames = in_view()
    assert len(frames) >= 3
    assert all(frame.fill_color().alpha() == 255 for frame in frames)
    drawn = items.LABELS_DRAWN[0]
    view.viewport().grab()
    view.set_step(view.step_count // 2)
    view.viewport().grab()
    assert items.LABELS_DRAWN[0] == drawn  # a still repaint and a step: every label copied
    bar = view.horizontalScrollBar()
    bar.setValue(bar.value() + 120)
    view.viewport().grab()
    assert items.LABELS_DRAWN[0] - drawn < len(in_view())  # the labels that came into view, not every one
    assert all(frame.fill_color().alpha() == 255 for frame in in_view())


def test_a_zoom_far_out_copies_one_picture_per_zoom_step(qtbot, gpt_trace):
    """Issue 21: repaint at every zoom. Far out (the overview: blocks and one edge path), while the zoom
    changes, the frames and edges, and the blocks, are one picture each per zoom step (2^(1/4) apart),
    drawn scaled at the zooms between: a zoom gesture within a step draws nothing anew, a step to the next
    draws one picture per item. Once the zoom stays, Qt's cache of the exact picture takes over (one
    repaint after the gesture), and a player step draws no picture."""
    from explorer.ui.graph import items

    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.resetTransform()
    view.zoom_by(0.06)
    view.viewport().grab()
    view.zoom_by(1.03)
    view.viewport().grab()
    overview = next(item for item in view.graph_scene.items() if isinstance(item, items.Overview))
    assert view.graph_scene.overview_mode and overview.quantised
    drawn = items.PICTURES_DRAWN[0]
    for factor in (1 / 1.03, 1.03, 1 / 1.03, 1.03):  # 0.06 and 0.0618: one zoom step
        view.zoom_by(factor)
        view.viewport().grab()
    assert items.PICTURES_DRAWN[0] == drawn
    view.zoom_by(1.5)
    view.viewport().grab()
    assert items.PICTURES_DRAWN[0] == drawn + 2  # the frames and edges, and the blocks
    assert overview.quantised
    view.viewport().grab()  # the same zoom again: the exact picture
    assert not overview.quantised
    view.set_step(view.step_count // 2)
    view.viewport().grab()
    assert items.PICTURES_DRAWN[0] == drawn + 2 and not overview.quantised


def test_the_legend_is_drawn_once_per_look_and_canvas_size_and_then_copied(qtbot, gpt_trace, monkeypatch):
    """Issue 21: repaint at every zoom. The colour legend (text in a translucent rounded box, ~1 ms) is
    drawn into a pixmap once per look and canvas size: a still repaint, a pan and a player step copy it;
    a resize or another theme draws it again, once."""
    from explorer.ui.common import theme as themes
    from explorer.ui.graph.view import GraphView

    drawn: list[int] = []
    real = GraphView._draw_legend
    monkeypatch.setattr(GraphView, "_draw_legend",
                        lambda self, painter: (drawn.append(1), real(self, painter)))
    view = _shown(qtbot, gpt_trace, all_expanded(gpt_trace))
    view.viewport().grab()
    assert len(drawn) == 1
    view.zoom_by(2.0)
    view.viewport().grab()
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 120)
    view.viewport().grab()
    view.set_step(view.step_count // 2)
    view.viewport().grab()
    assert len(drawn) == 1  # zoom, pan, step: copied
    view.resize(view.width() - 100, view.height())
    view.viewport().grab()
    view.viewport().grab()
    assert len(drawn) == 2
    other = "dark" if view.graph_scene.theme is not themes.get_theme("dark") else "light"
    view.set_theme(themes.get_theme(other))
    view.viewport().grab()
    assert len(drawn) == 3
