"""An expand or collapse changes the canvas step by step (reusing the earlier display model, its cards and
whatever an earlier build worked out); the drawing must be the one a build from scratch makes: the same
cards where they were, the same edges, ports, bends, frames and labels, filed in the same cells."""

from __future__ import annotations

import pytest

from explorer.core.graph.layout import clear_piece_cache
from explorer.ui.graph.view import GraphScene
from tests.graphs import all_expanded, gpt_step_trace


def _drawing(scene: GraphScene) -> dict:
    """Everything a build decides about the drawing, in comparable form (and the card and frame items made
    agree with it)."""
    m = scene.model
    rect = scene.sceneRect()
    drawing = {
        "cards": list(m.info), "edges": list(m.edges), "member_of": dict(m.member_of),
        "positions": list(m.positions.items()), "flat": [list(m.flat[0].items()), list(m.flat[1].items())],
        "bends": list(m.bends.items()), "ports": list(m.ports.items()), "order": list(m.order),
        "bands": m.bands, "row_h": m.row_h, "row_starts": list(m.row_starts),
        "frames": [(p, label, list(members)) for p, label, members in m.frames],
        "value_at": dict(m.value_at), "grad_at": dict(m.grad_at),
        "places": [(f.path, f.label, f.rect.getRect(), f.depth, f.label_offset) for f in scene.frames.places],
        "card_cells": {c: list(v) for c, v in scene._card_cells.items()},
        "edge_cells": {c: list(v) for c, v in scene._edge_cells.items()},
        "frame_cells": {c: list(v) for c, v in scene._frame_cells.items()},
        "scene_rect": (rect.x(), rect.y(), rect.width(), rect.height()),
        # every card object made so far sits where the model puts it, shows the step's state and is on the
        # scene as it should be (a lazy canvas keeps cards made earlier that are not near the view)
        "made_where_drawn": [did for did, card in scene.made_cards.items()
                             if abs(card.pos().x() - m.positions[did][0]) > 1e-6  # (Qt's == is fuzzy)
                             or abs(card.pos().y() - m.positions[did][1]) > 1e-6
                             or (card.show_value, card.show_grad, card.current) != scene.card_state(did)
                             or card.info is not m.info[did]],
        "all_made": None if scene.lazy else sorted(scene.made_cards) == sorted(m.info),
        # each frame is filed by its item's bounding rectangle, worked out before the item is made: the
        # item made agrees (`ModuleFrame.bounds`; the scene computes it for every frame in arrays)
        "frames_filed_by_their_bounds": [i for i, frame in enumerate(scene.frames)
                                         if frame.sceneBoundingRect() != scene._frame_bounds[i]],
        "step": scene.step,
    }
    assert drawing["made_where_drawn"] == [] and drawing["frames_filed_by_their_bounds"] == []
    return drawing


def _fresh(tr, expanded: set[str], aspect: float, lazy: bool) -> dict:
    scene = GraphScene()
    scene.lazy, scene.aspect = lazy, aspect
    scene.expanded = set(expanded)
    scene.set_trace(tr)
    return _drawing(scene)


@pytest.mark.parametrize(("blocks", "aspect"), [(3, 1.43), (8, 1.43), (8, 0.4), (14, 1.43)])
def test_expanding_and_collapsing_step_by_step_draws_what_a_build_from_scratch_draws(qtbot, blocks, aspect):
    tr = gpt_step_trace(blocks)
    every = all_expanded(tr)
    mid = f"blocks.{blocks // 2}"
    but_mid = {p for p in every if p != mid and not p.startswith(mid + ".")}
    scene = GraphScene()
    scene.lazy, scene.aspect = blocks >= 8, aspect  # (8 and 14 blocks: more than LAZY_CARDS is not needed)
    scene.expanded = set(but_mid)
    scene.set_trace(tr)
    for did in list(scene.model.info)[:40]:  # some card objects made, as a view makes those it shows
        scene.card(did)
    compared = 0
    # expand the folded block, then its children one by one, as a user double-clicks them
    while True:
        folded = [d for d, info in scene.model.info.items()
                  if info["kind"] == "module" and (info["path"] == mid or info["path"].startswith(mid + "."))]
        if not folded:
            break
        assert scene.toggle_module(folded[0])
        clear_piece_cache()  # the build from scratch lays every piece out anew
        assert _drawing(scene) == _fresh(tr, scene.expanded, aspect, scene.lazy), (blocks, scene.expanded)
        compared += 1
    assert compared >= 2 and scene.expanded >= every - {p for p in every if "-" in p.rpartition(".")[2]}
    scene.collapse_all()
    assert _drawing(scene) == _fresh(tr, set(), aspect, scene.lazy)
    first = next(d for d, info in scene.model.info.items() if info["kind"] == "module")
    assert scene.toggle_module(first)
    assert _drawing(scene) == _fresh(tr, scene.expanded, aspect, scene.lazy)


def _python_steps_of_an_expand(blocks: int) -> tuple[int, int]:
    """(cards, Python calls and C calls from Python made) of expanding the middle block of a GPT whose
    other modules are all expanded, on a lazy canvas showing the block's neighbourhood."""
    import sys

    from PySide6.QtCore import QRectF

    from explorer.ui.graph import view as view_module

    tr = gpt_step_trace(blocks)
    every = all_expanded(tr)
    mid = f"blocks.{blocks // 2}"
    scene = GraphScene()
    scene.lazy, scene.aspect = True, 1.43
    scene.expanded = {p for p in every if p != mid and not p.startswith(mid + ".")}
    was = view_module.LAZY_CARDS
    view_module.LAZY_CARDS = 50
    try:
        scene.set_trace(tr)
        card = next(d for d, info in scene.model.info.items() if info.get("path") == mid)
        x, y = scene.model.positions[card]
        scene.show_region(QRectF(x - 500, y - 350, 1000, 700))
        steps = [0]

        def count(_frame, _event, _arg):
            steps[0] += 1

        sys.setprofile(count)
        try:
            scene.toggle_module(card)
        finally:
            sys.setprofile(None)
    finally:
        view_module.LAZY_CARDS = was
    return len(scene.model.info), steps[0]


def test_an_expand_costs_few_python_steps_per_card_of_the_graph(qtbot):
    """An expand's time on a big graph is Python work over every card (the layout of the rest moves); what
    each card costs is counted here (calls, not a clock): per card added to the graph it stays under
    200 (it was ~232 before the layout, the collapse, the frames and the filing went to array passes;
    ~138 now), so a step that visits each card in Python once more, or each pair of them, fails here."""
    small = _python_steps_of_an_expand(16)
    big = _python_steps_of_an_expand(40)
    assert big[0] > 2 * small[0]
    per_card = (big[1] - small[1]) / (big[0] - small[0])
    assert 0 < per_card < 200, (small, big, per_card)
