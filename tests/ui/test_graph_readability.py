"""Readable at every size (issue 12): card text, elided names, module frames, find, minimap, SVG export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from explorer.core.autograd.trace import trace
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.program import parse
from explorer.ui.graph.render import build_scene, render_scene_file

SVG = "{http://www.w3.org/2000/svg}"


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
        module = next(d for d, i in scene.model.info.items() if i["kind"] == "module" and i["has_grad"])
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
