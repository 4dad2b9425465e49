"""The graph canvas: cards per node, step states, selection, keyboard, modules, level of detail, export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage, QPainter

from explorer.core.autograd.timeline import Timeline
from explorer.core.autograd.trace import trace
from explorer.core.graph.display import build_display
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.program import parse
from explorer.ui.graph.items import NodeCard, fmt_number
from explorer.ui.graph.render import build_scene, render_trace_file
from explorer.ui.graph.view import GraphScene, GraphView

SEED = SEED_SOURCE


@pytest.fixture(scope="module")
def seed_trace():
    return trace(parse(SEED).callable())


@pytest.fixture
def view(qtbot, seed_trace):
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(900, 500)
    v.show()
    v.set_trace(seed_trace, step=0)
    return v


def _states(scene: GraphScene):
    return {d: (c.show_value, c.show_grad, c.current) for d, c in scene.cards.items()}


def _by_name(tr, name):
    return next(n.id for n in tr.nodes.values() if n.name == name)


def test_one_card_per_node_and_nothing_known_at_step_zero(view, seed_trace):
    scene = view.graph_scene
    assert set(scene.cards) == set(seed_trace.nodes)
    assert view.step_count == len(seed_trace.forward_order) + len(seed_trace.backward_order) == 13
    assert not any(c.show_value or c.show_grad for c in scene.cards.values())


def test_values_then_gradients_fill_in_along_the_timeline(view, seed_trace):
    scene = view.graph_scene
    n_fwd = len(seed_trace.forward_order)
    view.set_step(n_fwd)
    assert all(c.show_value for c in scene.cards.values())
    assert not any(c.show_grad for c in scene.cards.values())
    view.set_step(view.step_count)
    with_grad = {d for d, c in scene.cards.items() if c.show_grad}
    assert with_grad == {n.id for n in seed_trace.nodes.values() if n.grad is not None}
    # inputs that need no gradient (bce's target, 1.0) never show one
    target = next(n.id for n in seed_trace.nodes.values() if n.kind == "leaf")
    assert target not in with_grad


def test_gradient_appears_when_the_consumer_has_sent_it(view, seed_trace):
    timeline = Timeline(seed_trace)
    z, a = _by_name(seed_trace, "z"), _by_name(seed_trace, "a")
    # dL/dz is produced by SigmoidBackward0, the event of node a
    assert timeline.grad_at[z] == timeline.step_of("backward", a)
    view.set_step(timeline.grad_at[z] - 1)
    assert not view.graph_scene.cards[z].show_grad
    view.set_step(timeline.grad_at[z])
    assert view.graph_scene.cards[z].show_grad
    assert view.timeline.grad_at == timeline.grad_at


def test_stepping_back_and_forth_gives_the_same_states(view):
    forward = []
    for k in range(view.step_count + 1):
        view.set_step(k)
        forward.append(_states(view.graph_scene))
    for k in range(view.step_count, -1, -1):
        view.set_step(k)
        assert _states(view.graph_scene) == forward[k]


def test_current_node_and_flow_edges_follow_the_player(view, seed_trace):
    scene = view.graph_scene
    n_fwd = len(seed_trace.forward_order)
    view.set_step(n_fwd + 2)  # SigmoidBackward0 sends dL/dz back to z
    event = scene.current_event()
    assert event == ("backward", _by_name(seed_trace, "a"))
    assert scene.cards[event[1]].current == "backward"
    assert [e.direction for e in scene._flow] == ["backward"]
    view.set_step(n_fwd)  # forward of L reads a and y
    assert sorted(e.direction for e in scene._flow) == ["forward", "forward"]
    view.set_step(0)
    assert scene._flow == [] and not any(c.current for c in scene.cards.values())


def test_click_selects_and_emits(qtbot, view, seed_trace):
    w = _by_name(seed_trace, "w")
    card = view.graph_scene.cards[w]
    pos = view.mapFromScene(card.scenePos())
    with qtbot.waitSignal(view.sig_node_selected) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    assert blocker.args == [w]
    assert card.selected and view.selected() == w


def test_keyboard_walks_nodes_and_leaves_player_keys_to_the_parent(qtbot, view):
    view.setFocus()
    qtbot.keyClick(view, Qt.Key_Tab)
    first = view.selected()
    assert first is not None
    qtbot.keyClick(view, Qt.Key_Tab)
    assert view.selected() != first
    qtbot.keyClick(view, Qt.Key_Backtab)
    assert view.selected() == first
    for key in (Qt.Key_Right, Qt.Key_Left, Qt.Key_Space, Qt.Key_Home):
        qtbot.keyClick(view, key)
        assert view.step == 0  # the view itself does not step; the panel handles these keys


def test_zoom_and_fit(view):
    before = view.transform().m11()
    view.zoom_by(2.0)
    assert view.transform().m11() == pytest.approx(before * 2.0)
    view.fit()
    assert view.transform().m11() == pytest.approx(before)


def test_collapsed_modules_expand_on_double_click(qtbot):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(2, 3)
    tr = trace(lambda: net(x).pow(2).mean())
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(900, 500)
    v.show()
    v.set_trace(tr)
    modules = [d for d, c in v.graph_scene.cards.items() if c.info["kind"] == "module"]
    assert modules, "module paths should fold into module cards"
    n_before = len(v.graph_scene.cards)
    card = v.graph_scene.cards[modules[0]]
    with qtbot.waitSignal(v.sig_graph_changed):
        qtbot.mouseDClick(v.viewport(), Qt.LeftButton, pos=v.mapFromScene(card.scenePos()))
    assert len(v.graph_scene.cards) > n_before
    v.collapse_all()
    assert len(v.graph_scene.cards) == n_before
    # every trace node is on some card, and stepping to the end shows every card's value
    assert set(build_display(tr).member_of) == set(tr.nodes)


def test_big_graph_draws_with_low_detail_when_zoomed_out(qtbot):
    def chain():
        p = torch.randn(4, requires_grad=True)
        h = p
        for _ in range(1000):
            h = torch.tanh(h) * 1.01
        return h.sum()

    tr = trace(chain)
    scene = build_scene(tr)
    assert len(scene.cards) == len(tr.nodes) > 2000
    image = QImage(400, 200, QImage.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    scene.render(painter)  # far zoomed out: cards paint as blocks without text
    painter.end()
    assert image.pixelColor(QPoint(200, 100)).alpha() >= 0  # rendered without error
    scene.set_step(len(tr.forward_order) // 2)
    assert sum(c.show_value for c in scene.cards.values()) < len(scene.cards)


def test_render_png_and_svg_files(tmp_path, seed_trace):
    png = render_trace_file(seed_trace, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert QImage(str(png)).width() > 100
    svg = render_trace_file(seed_trace, tmp_path / "g.svg", "svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "sigmoid" in svg.read_text()
    with pytest.raises(ValueError):
        render_trace_file(seed_trace, tmp_path / "g.gif")


def test_number_format():
    assert fmt_number(-0.08166026) == "-0.0817"
    assert fmt_number(2.42000007) == "2.42"
    assert fmt_number(0.0) == "0"
    assert fmt_number(12345678.0) == "1.235e+07"
    assert fmt_number(3, integer=True) == "3"


def test_card_tooltip_names_the_autograd_node(view, seed_trace):
    a = _by_name(seed_trace, "a")
    card = view.graph_scene.cards[a]
    assert isinstance(card, NodeCard)
    assert "SigmoidBackward0" in card.toolTip()


def test_incremental_steps_match_a_full_recompute(view):
    import random

    rng = random.Random(1)
    scene = view.graph_scene
    for _ in range(30):
        view.set_step(rng.randrange(view.step_count + 1))
        incremental = _states(scene)
        scene.set_step(scene.step, full=True)
        assert _states(scene) == incremental


def test_far_zoom_switches_to_the_batched_overview(view):
    scene = view.graph_scene
    view.zoom_by(0.05)
    assert scene.overview_mode
    assert not any(c.isVisible() for c in scene.cards.values())
    view.grab()  # paints the overview without error
    view.fit()
    assert not scene.overview_mode and all(c.isVisible() for c in scene.cards.values())


def test_card_text_grows_when_zoomed_out_but_never_cuts_a_number():
    from PySide6.QtGui import QFontMetricsF

    from explorer.ui.graph.items import VALUE_FONT, fit_text

    font, shown = fit_text("2.42", VALUE_FONT, 1.5, 130)
    assert shown == "2.42" and font.pointSizeF() > VALUE_FONT.pointSizeF()
    text = "∇ max 0.117736"
    narrow = QFontMetricsF(VALUE_FONT).horizontalAdvance(text) * 0.7
    font, shown = fit_text(text, VALUE_FONT, 1.5, narrow)
    assert font.pointSizeF() == VALUE_FONT.pointSizeF()
    assert shown.endswith("…") and QFontMetricsF(font).horizontalAdvance(shown) <= narrow


def _module_net_trace():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(2, 3)
    return trace(lambda: net(x).pow(2).mean())


def _shown_view(qtbot) -> tuple[GraphView, object]:
    """A shown 900 x 500 GraphView of the small module net's trace, and that trace."""
    tr = _module_net_trace()
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(900, 500)
    v.show()
    v.set_trace(tr)
    return v, tr


def test_a_big_graphs_expand_builds_its_model_on_a_worker_and_shows_what_a_direct_expand_shows(
        qtbot, monkeypatch):
    import threading

    import explorer.ui.graph.view as view_module

    monkeypatch.setattr(view_module, "ASYNC_EXPAND_CARDS", 0)  # every graph counts as big here
    threads = []
    real = view_module.build_display

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(view_module, "build_display", recording)
    v, tr = _shown_view(qtbot)
    scene = v.graph_scene
    modules = [d for d, c in scene.cards.items() if c.info["kind"] == "module"]
    assert len(modules) >= 2
    before = dict(scene.model.positions)
    threads.clear()
    with qtbot.waitSignal(v.sig_graph_changed):
        # two expands asked for before the first is shown: the canvas still shows the graph as it was
        assert v.expand(modules[0]) and v.expand(modules[1])
        assert v.expanding() and scene.model.positions == before
        assert not v.expand("no such card")
    assert not v.expanding()
    assert threads and all(t is not threading.main_thread() for t in threads)  # built off the GUI thread
    direct = GraphScene()
    direct.set_trace(tr)
    direct.toggle_module(modules[0])
    direct.toggle_module(modules[1])
    assert scene.expanded == direct.expanded and len(scene.expanded) == 2
    assert scene.model.positions == direct.model.positions and set(scene.cards) == set(direct.cards)
    assert scene.step == scene.step_count  # the step shown before the expand is kept


def test_a_new_trace_drops_an_expand_still_being_built(qtbot, monkeypatch):
    import explorer.ui.graph.view as view_module

    monkeypatch.setattr(view_module, "ASYNC_EXPAND_CARDS", 0)
    tr = _module_net_trace()
    v = GraphView()
    qtbot.addWidget(v)
    v.set_trace(tr)
    module = next(d for d, c in v.graph_scene.cards.items() if c.info["kind"] == "module")
    assert v.expand(module)
    other = _module_net_trace()
    v.set_trace(other)  # shown while the expand builds: the expand of the earlier trace is dropped
    assert not v.expanding()  # (and the Worker never delivers a cancelled job's result)
    assert v.graph_scene.trace is other and v.graph_scene.expanded == set()


def test_a_big_graphs_expand_works_its_frame_boxes_and_edge_lines_out_on_the_worker(qtbot, monkeypatch):
    """What the canvas reads from a model without Qt (each frame part's box, each edge's points) is worked
    out by the Worker that builds the model: the GUI thread takes it over and works out neither again;
    a rewrap (new positions) works both out anew, as a build from scratch does."""
    import threading

    import explorer.ui.graph.view as view_module

    monkeypatch.setattr(view_module, "ASYNC_EXPAND_CARDS", 0)  # every graph counts as big here
    where: list[tuple[str, threading.Thread]] = []
    for name in ("_frame_boxes", "_edge_lines"):
        real = getattr(view_module, name)

        def recording(model, _real=real, _name=name):
            where.append((_name, threading.current_thread()))
            return _real(model)

        monkeypatch.setattr(view_module, name, recording)
    v, tr = _shown_view(qtbot)
    scene = v.graph_scene
    module = next(d for d, c in scene.cards.items() if c.info["kind"] == "module")
    where.clear()
    with qtbot.waitSignal(v.sig_graph_changed):
        assert v.expand(module)
    assert sorted(name for name, _t in where) == ["_edge_lines", "_frame_boxes"], where
    assert all(t is not threading.main_thread() for _name, t in where), where
    assert scene.model.frames  # (the expanded module's frame was boxed)
    direct = GraphScene()
    direct.set_trace(tr)
    direct.toggle_module(module)
    assert [(f.path, f.rect.getRect()) for f in scene.frames.places] == \
        [(f.path, f.rect.getRect()) for f in direct.frames.places]
    assert scene._edge_cells == direct._edge_cells  # noqa: SLF001
    where.clear()
    bands = scene.model.bands
    assert scene.rewrap(scene.aspect, bands + 1)
    assert sorted(name for name, _t in where) == ["_edge_lines", "_frame_boxes"], where
    direct.rewrap(direct.aspect, bands + 1)
    assert [f.rect.getRect() for f in scene.frames.places] == [f.rect.getRect() for f in direct.frames.places]


def test_an_expand_that_fails_on_the_worker_leaves_the_graph_as_it_was(qtbot, monkeypatch):
    import explorer.ui.graph.view as view_module

    monkeypatch.setattr(view_module, "ASYNC_EXPAND_CARDS", 0)

    def broken(*args, **kwargs):
        raise MemoryError("no room for the layout")

    tr = _module_net_trace()
    v = GraphView()
    qtbot.addWidget(v)
    v.set_trace(tr)
    scene = v.graph_scene
    before = dict(scene.model.positions)
    module = next(d for d, c in scene.cards.items() if c.info["kind"] == "module")
    monkeypatch.setattr(view_module, "build_display", broken)
    with qtbot.assertNotEmitted(v.sig_graph_changed, wait=0):
        assert v.expand(module)
        qtbot.waitUntil(lambda: not v.expanding())
    assert scene.expanded == set() and scene.model.positions == before
    monkeypatch.setattr(view_module, "build_display", build_display)
    with qtbot.waitSignal(v.sig_graph_changed):  # and the next expand works
        assert v.expand(module)
    assert len(scene.expanded) == 1 and len(scene.model.positions) > len(before)
