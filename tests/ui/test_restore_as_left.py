"""After a restart the workspaces look as they were left (issue 20, item 7): the last status lines, the
pretraining samples, the toy decision boundary, the lesson position, the selection with its inspector."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.ui import main_window as mw
from tests.trained import trained_run

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


def _window(qtbot, tmp_path, name="settings.ini"):
    window = mw.MainWindow(settings=QSettings(str(tmp_path / name), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.resize(1440, 860)
    window.show()
    return window


def _restart(qtbot, tmp_path, first):
    """Close `first` (it saves its session), open a window on the same settings."""
    first.close()
    first.settings.sync()
    return _window(qtbot, tmp_path)


def test_a_toy_run_comes_back_with_its_boundary_and_status_line(qtbot, tmp_path):
    first = _window(qtbot, tmp_path)
    ws = first.workspaces.network
    ws.set_preset("toy-2d")
    ws.start_run(40)
    steps = [{"type": "step", "step": s, "train_loss": 0.6 - s / 100, "test_loss": 0.7 - s / 100,
              "train_acc": 0.5 + s / 100, "test_acc": 0.4 + s / 100} for s in (10, 20, 40)]
    grid = np.linspace(0.0, 1.0, 96 * 96).reshape(96, 96)
    ws.add_records([*steps, {"type": "boundary", "step": 40, "grid": grid}])
    ws.finish_run("done")
    first.show_workspace("network")
    second = _restart(qtbot, tmp_path, first)
    qtbot.waitUntil(lambda: "network" in second.panels, timeout=WAIT)
    train = second.panels["network"].train
    assert train.boundary_grid is not None
    np.testing.assert_allclose(train.boundary_grid, grid, atol=1e-3)
    assert "step 40" in train.status.text() and "finished" in train.status.text()
    second.close()


def test_a_pretraining_run_comes_back_with_its_samples_and_finished_line(qtbot, tmp_path):
    first = _window(qtbot, tmp_path)
    run = trained_run(first.workspaces.pretrain, steps=4, sample_every=2)
    assert run.samples, "the tiny run wrote samples"
    first.show_workspace("pretrain")
    second = _restart(qtbot, tmp_path, first)
    qtbot.waitUntil(lambda: "pretrain" in second.panels, timeout=WAIT)
    panel = second.panels["pretrain"]
    assert panel.progress_label.text().startswith("Finished: Run 1")
    shown = panel.samples.toPlainText()
    assert "Run 1" in shown and run.samples[-1][1].strip()[:10] in shown
    second.close()


def test_the_session_keeps_the_boundary_small_and_valid(qtbot, tmp_path):
    from explorer.core.workspaces.network import NetworkWorkspace

    ws = NetworkWorkspace()
    ws.start_run(10)
    ws.add_records([{"type": "boundary", "step": 1, "grid": np.full((96, 96), 0.123456)}])
    data = ws.to_json()
    assert data["runs"][-1]["boundary"][0][0] == 0.123  # 3 decimals
    assert len(json.dumps(data)) < 200_000
    data["runs"][-1]["boundary"][0][0] = 7.0
    try:
        NetworkWorkspace.validate(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        assert "probabilities" in str(exc)
    else:
        raise AssertionError("a boundary value outside 0..1 was accepted")


@pytest.mark.parametrize("click", [False, True], ids=["player", "click"])
def test_the_network_selection_comes_back_with_its_inspector(qtbot, tmp_path, click):
    first = _window(qtbot, tmp_path)
    first.show_workspace("network")
    qtbot.waitUntil(lambda: "network" in first.panels, timeout=WAIT)
    iteration = first.panels["network"].iteration
    iteration.wait_recorded()
    iteration.player.set_step(9)
    view = iteration.graph
    if click:  # a card the user clicked, not the one the player's step selected
        other = next(did for did in view.graph_scene.cards if did != view.selected())
        view.select(other)
    selected = view.selected()
    assert selected, "the player's step selects the card of its node"
    title = iteration.inspector.title.text()
    assert title
    second = _restart(qtbot, tmp_path, first)
    qtbot.waitUntil(lambda: "network" in second.panels, timeout=WAIT)
    again = second.panels["network"].iteration
    again.wait_recorded()
    qtbot.waitUntil(lambda: again.graph.selected() == selected, timeout=WAIT)
    assert again.inspector.title.text() == title
    assert "Click a node" not in again.inspector.title.text()
    second.close()


def test_the_expression_selection_comes_back_with_its_inspector(qtbot, tmp_path):
    first = _window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: "expression" in first.panels, timeout=WAIT)
    panel = first.panels["expression"]
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT)
    node = next(nid for nid, n in panel.result.trace.nodes.items() if n.name == "w")
    panel.graph.select(node)
    title = panel.inspector.title.text()
    assert ">w</b>" in title
    second = _restart(qtbot, tmp_path, first)
    qtbot.waitUntil(lambda: "expression" in second.panels, timeout=WAIT)
    again = second.panels["expression"]
    qtbot.waitUntil(lambda: again.result is not None and bool(again.graph.selected()), timeout=WAIT)
    assert again.inspector.title.text() == title
    second.close()


def test_the_lesson_position_comes_back_without_rerunning_its_step(qtbot, tmp_path):
    first = _window(qtbot, tmp_path)
    dock = first.learn
    dock.show()
    dock.ensure_built()
    lessons = dock.catalog.lessons
    index = next(i for i, lesson in enumerate(lessons) if lesson.id == "gradients-three-ways")
    with qtbot.waitSignal(dock.sig_step_shown, timeout=WAIT):
        dock.open_step(index, 2)
    position = dock.position()
    assert position == f"gradients-three-ways/{lessons[index].steps[2].id}"
    first.workspaces.expression.set_source("q = param(0.25)\nL = q * q")  # edited after the step opened
    second = _restart(qtbot, tmp_path, first)
    again = second.learn
    qtbot.waitUntil(lambda: again.position() == position, timeout=WAIT)
    assert again.lesson_index == index and again.step_index == 2
    # the step's actions did not run again over the restored session
    qtbot.waitUntil(lambda: "expression" in second.panels, timeout=WAIT)
    assert second.workspaces.expression.state.source.startswith("q = param(0.25)")
    second.close()
