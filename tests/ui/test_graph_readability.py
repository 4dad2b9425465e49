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
