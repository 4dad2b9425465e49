"""Acceptance tests: the user journeys of DESIGN.md ("What the user does" 1-5), walked through the real
main window, offscreen, by the objectNames the issues promise to scripted tests.

Each test drives the window the way a student would (typing, clicking buttons, picking presets, moving
a slider) and checks what is on screen against numbers computed here with plain torch, or against the
reference numbers of DESIGN.md.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QSlider,
    QSpinBox,
    QTableWidget,
    QWidget,
)

from explorer.ui.main_window import MainWindow

WAIT = 60_000  # ms: a generous bound for a signal, never a timing assertion

SEED_LINES = ["x = 1.1", "y = 1.0", "w = param(2.2)", "b = param(0.0)", "z = w * x + b", "a = sigmoid(z)",
              "L = bce(a, y)"]

EXPRESSION_NAMES = ["programEditor", "errorLabel", "graphView", "inspector", "resetButton", "stepBackButton",
                    "stepButton", "playButton", "speedSlider", "stepStatus"]
NETWORK_NAMES = ["networkPreset", "networkTrainButton", "datasetCombo", "networkLossPlot", "boundaryPlot",
                 "paramTable"]
PRETRAIN_NAMES = ["pretrainPreset", "pretrainTrainButton", "pretrainStopButton", "pretrainLossPlot",
                  "samplesView", "paramCount"]


# -- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown_panels()


def open_workspace(qtbot, window: MainWindow, key: str) -> QWidget:
    """Click the workspace's tab the way a user would and wait until its panel is built."""
    if key not in window.panels:
        with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT,
                              check_params_cb=lambda k: k == key):
            if window.current_key() == key:
                window.ensure_current_panel()
            else:
                window.show_workspace(key)
    else:
        window.show_workspace(key)
    assert window.current_key() == key
    panel = window.panels.get(key)
    assert panel is not None, window.errors.get(key)
    return panel


def one(parent: QWidget, name: str, cls=QWidget) -> QWidget:
    """The one widget called `name` under `parent` (the scripted-test contract: names are stable)."""
    found = [w for w in parent.findChildren(cls, name) if w.objectName() == name]
    assert len(found) == 1, f"{len(found)} widgets named {name!r}"
    return found[0]


def visible_text(widget: QWidget) -> str:
    """All the text a label or any labels inside a widget show, tags removed."""
    labels = [widget] if isinstance(widget, QLabel) else widget.findChildren(QLabel)
    texts = [lbl.text() for lbl in labels if lbl.isVisibleTo(widget.window())]
    return re.sub(r"<[^>]+>", "", "\n".join(texts)).replace("&nbsp;", " ")


def click(qtbot, button: QAbstractButton) -> None:
    assert button.isEnabled(), f"{button.objectName()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def wait_computed(qtbot, panel, action, source: str | None = None):
    """Do `action` and wait for the expression panel to show the run it causes (of `source` if given)."""
    def matches(result) -> bool:
        return source is None or result.source == source

    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT, check_params_cb=matches) as blocker:
        action()
    return blocker.args[0]


def seed_reference(w: float = 2.2, b: float = 0.0) -> dict[str, float]:
    """The seed example computed here with plain torch (L, dL/dw, dL/db)."""
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    a = torch.sigmoid(wt * 1.1 + bt)
    loss = torch.nn.functional.binary_cross_entropy(a, torch.tensor(1.0))
    loss.backward()
    return {"L": float(loss.detach()), "w": float(wt.grad), "b": float(bt.grad)}


def type_program(qtbot, panel, lines: list[str]):
    """Select all, delete, type the program line by line, then press Ctrl+Enter; returns the result."""
    editor = one(panel, "programEditor", QPlainTextEdit)
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClick(editor, Qt.Key_Delete)
    assert editor.toPlainText() == ""
    for line in lines:
        qtbot.keyClicks(editor, line)
        qtbot.keyClick(editor, Qt.Key_Return)
    source = editor.toPlainText()
    assert [ln.strip() for ln in source.splitlines()] == lines
    return wait_computed(qtbot, panel, lambda: qtbot.keyClick(editor, Qt.Key_Return, Qt.ControlModifier),
                         source)


def node_id(result, name: str) -> str:
    return next(nid for nid, n in result.trace.nodes.items() if n.name == name)


def click_node(qtbot, panel, nid: str) -> None:
    """Click a node's card in the graph canvas with the mouse."""
    view = one(panel, "graphView")
    view.fit()
    card = view.graph_scene.cards[nid]
    pos: QPoint = view.mapFromScene(card.sceneBoundingRect().center())
    assert view.viewport().rect().contains(pos)
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    assert view.selected() == nid


# -- 1. launch ---------------------------------------------------------------------------------------


def test_every_workspace_opens_with_its_named_controls(qtbot, window):
    tabs = window.tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Expression", "Network", "Pretraining"]
    for key, names in (("expression", EXPRESSION_NAMES), ("network", NETWORK_NAMES),
                       ("pretrain", PRETRAIN_NAMES)):
        panel = open_workspace(qtbot, window, key)
        for name in names:
            one(panel, name)


def test_param_count_name_is_unique_in_the_window(qtbot, window):
    for key in ("network", "pretrain"):
        open_workspace(qtbot, window, key)
    one(window, "paramCount")


# -- 2. expression workspace -------------------------------------------------------------------------


def test_typing_the_seed_program_and_stepping_to_the_end_shows_its_gradients(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, SEED_LINES)
    assert result.ok, result.error
    assert not one(panel, "errorLabel").isVisible()
    status = one(panel, "stepStatus", QLabel)
    inspector = one(panel, "inspector")
    step = one(panel, "stepButton", QAbstractButton)
    back = one(panel, "stepBackButton", QAbstractButton)

    click(qtbot, one(panel, "resetButton", QAbstractButton))
    assert status.text().startswith("Ready")
    assert "-0.0898" not in visible_text(inspector)
    n_forward, n_backward = len(result.trace.forward_order), len(result.trace.backward_order)
    seen = []
    while step.isEnabled():
        click(qtbot, step)
        seen.append(status.text())
    assert len(seen) == n_forward + n_backward
    assert all(s.startswith("forward") for s in seen[:n_forward])
    assert all(s.startswith("backward") for s in seen[n_forward:])
    # the backward pass: the engine runs the sigmoid's and BCE's grad_fns, and fills both params
    backward_text = "\n".join(seen[n_forward:])
    assert "SigmoidBackward0" in backward_text and "AccumulateGrad" in backward_text
    ref = seed_reference()
    assert ref["w"] == pytest.approx(-0.0898263, abs=1e-6) and ref["b"] == pytest.approx(-0.0816603, abs=1e-6)
    shown = visible_text(inspector) + "\n" + status.text() + "\n" + "\n".join(seen)
    assert "dL/dw = -0.0898" in shown, shown
    assert "dL/db = -0.0817" in shown, shown
    summary = one(panel, "gradSummary", QLabel).text()
    assert "dL/dw = -0.0898" in summary and "dL/db = -0.0817" in summary, summary

    # stepping back and forth gives the same states
    click(qtbot, back)
    before_last = status.text()
    assert before_last == seen[-2]
    click(qtbot, step)
    assert status.text() == seen[-1]


@pytest.mark.parametrize("example", ["seed_sigmoid_bce", "one_hidden_layer", "softmax_cross_entropy"])
def test_graph_reads_left_to_right_with_no_overlapping_cards(qtbot, window, example):
    panel = open_workspace(qtbot, window, "expression")
    menu = window.findChild(QMenu, "examplesMenu")
    action = next(a for a in menu.actions() if a.data() == example)
    result = wait_computed(qtbot, panel, action.trigger)
    scene = one(panel, "graphView").graph_scene
    cards = scene.cards
    assert set(cards) == set(result.trace.nodes)
    rects = {nid: card.sceneBoundingRect() for nid, card in cards.items()}
    ids = list(rects)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            assert not rects[a].intersects(rects[b]), (example, a, b)
    row = scene.model.row_of  # a graph wrapped into rows (to draw its values) reads row by row
    for u, v in result.trace.graph.edges:
        assert row(u) < row(v) or (row(u) == row(v) and rects[u].center().x() < rects[v].center().x()), \
            (example, u, v)


def test_play_at_full_speed_runs_forward_then_backward_to_the_end(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, SEED_LINES)
    speed = one(panel, "speedSlider", QSlider)
    speed.setValue(speed.maximum())
    click(qtbot, one(panel, "resetButton", QAbstractButton))
    player = panel.player
    steps: list[int] = []
    player.sig_step_changed.connect(steps.append)
    with qtbot.waitSignal(player.sig_playing_changed, timeout=WAIT,
                          check_params_cb=lambda playing: not playing):
        click(qtbot, one(panel, "playButton", QAbstractButton))
    total = len(result.trace.forward_order) + len(result.trace.backward_order)
    assert steps == list(range(1, total + 1))
    assert one(panel, "stepStatus", QLabel).text().endswith("backward done")
    assert not one(panel, "stepButton", QAbstractButton).isEnabled()


def test_player_keys_step_the_graph_once_it_has_the_focus(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, SEED_LINES)
    view = one(panel, "graphView")
    status = one(panel, "stepStatus", QLabel)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key_Home)
    assert panel.player.step == 0 and status.text().startswith("Ready")
    qtbot.keyClick(view, Qt.Key_Right)
    qtbot.keyClick(view, Qt.Key_Right)
    assert panel.player.step == 2 and status.text().startswith("forward 2/")
    qtbot.keyClick(view, Qt.Key_Left)
    assert panel.player.step == 1 and status.text().startswith("forward 1/")
    qtbot.keyClick(view, Qt.Key_End)
    total = len(result.trace.forward_order) + len(result.trace.backward_order)
    assert panel.player.step == total and status.text().endswith("backward done")


def test_clicking_a_node_shows_its_chain_rule_with_numbers(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, SEED_LINES)
    z = node_id(result, "z")
    click_node(qtbot, panel, z)
    text = one(panel, "chainRule", QLabel).text()
    # upstream dL/da × local σ(z)(1 − σ(z)) = dL/dz, with the numbers
    a = 1 / (1 + math.exp(-2.42))
    dl_da = -1 / a
    line = next((ln for ln in text.splitlines() if ln.startswith("dL/dz = dL/da")), None)
    assert line is not None, text
    assert "σ(z)" in line or "a(1" in line, line
    assert f"{dl_da:.4f}" in line.replace("−", "-") or f"{dl_da:.3f}" in line.replace("−", "-"), line
    assert line.replace("−", "-").rstrip().endswith("-0.0817"), line
    # the leaf w: autograd beside finite differences
    click_node(qtbot, panel, node_id(result, "w"))
    table = one(panel, "gradCheckTable", QTableWidget)
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows.get("autograd") == "-0.0898" and rows.get("finite differences") == "-0.0898", rows


def test_moving_the_w_slider_recomputes_the_loss(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, SEED_LINES)
    loss_before = result.trace.nodes[result.trace.output_id].value.item()
    assert loss_before == pytest.approx(0.0852, abs=5e-5)
    slider = one(panel, "slider_w", QSlider)
    spin = panel.findChild(QWidget, "spin_w")
    slider.setFocus()
    result = wait_computed(qtbot, panel, lambda: qtbot.keyClick(slider, Qt.Key_PageDown))
    w_new = spin.value()
    assert w_new < 2.2
    loss_after = result.trace.nodes[result.trace.output_id].value.item()
    ref = seed_reference(w=w_new)
    assert loss_after == pytest.approx(ref["L"], rel=1e-4)
    assert loss_after > loss_before  # w moved against -dL/dw: the loss went up
    summary = one(panel, "gradSummary", QLabel).text()
    assert f"dL/dw = {ref['w']:.4f}" in summary, summary


def test_tensor_example_shows_shape_dtype_stride_and_the_matmul(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    menu = window.findChild(QMenu, "examplesMenu")
    action = next(a for a in menu.actions() if a.data() == "tensors_basics")
    result = wait_computed(qtbot, panel, action.trigger)
    assert result.ok, result.error
    meta = one(panel, "inspector").meta_labels

    click_node(qtbot, panel, node_id(result, "A"))
    assert (meta["shape"].text(), meta["dtype"].text()) == ("(2, 3)", "int64")
    click_node(qtbot, panel, node_id(result, "F"))
    assert meta["dtype"].text() == "float32"
    click_node(qtbot, panel, node_id(result, "T"))
    assert (meta["shape"].text(), meta["stride"].text(), meta["contiguous"].text()) == \
        ("(3, 2)", "(1, 3)", "False")
    click_node(qtbot, panel, node_id(result, "G"))
    assert meta["shape"].text() == "(2, 2)"
    grid = next(t for t in one(panel, "inspector").findChildren(QTableWidget) if t.isVisibleTo(panel)
                and t.objectName() != "gradCheckTable")
    cells = [[grid.item(r, c).text() for c in range(grid.columnCount())] for r in range(grid.rowCount())]
    assert cells == [["14", "32"], ["32", "77"]]


@pytest.mark.slow
def test_every_example_of_the_menu_loads_and_steps_to_the_end(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    menu = window.findChild(QMenu, "examplesMenu")
    names = [a.data() for a in menu.actions()]
    assert {"seed_sigmoid_bce", "tensors_basics", "one_hidden_layer", "softmax_cross_entropy"} <= set(names)
    for action in menu.actions():
        result = wait_computed(qtbot, panel, action.trigger)
        if str(action.data()).startswith("error_"):  # the examples of autograd's errors stop on their line
            assert not result.ok and one(panel, "errorLabel").isVisible(), action.data()
            continue
        assert result.ok, (action.data(), result.error)
        assert not one(panel, "errorLabel").isVisible()
        click(qtbot, one(panel, "resetButton", QAbstractButton))
        texts = step_to_end(qtbot, panel)
        assert len(texts) == len(result.trace.forward_order) + len(result.trace.backward_order)
        assert texts[-1].startswith("backward") or not result.trace.backward_order, (action.data(), texts[-1])


def test_typed_int_and_float_literals_become_int64_and_float32(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    result = type_program(qtbot, panel, ["I = [[1, 2, 3], [4, 5, 6]]", "F = [[1.5, 2.0]]",
                                         "G = I @ I.T", "H = F.T"])
    assert result.ok, result.error
    meta = one(panel, "inspector").meta_labels
    for name, dtype in (("I", "int64"), ("F", "float32"), ("G", "int64")):
        click_node(qtbot, panel, node_id(result, name))
        assert meta["dtype"].text() == dtype, name
    g = result.trace.nodes[node_id(result, "G")].value
    assert np.asarray(g.data).tolist() == [[14, 32], [32, 77]]


def test_an_invalid_program_shows_its_error_and_keeps_the_graph(qtbot, window):
    panel = open_workspace(qtbot, window, "expression")
    good = type_program(qtbot, panel, SEED_LINES)
    view = one(panel, "graphView")
    cards = set(view.graph_scene.cards)
    editor = one(panel, "programEditor", QPlainTextEdit)
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor, "M = foo(L)")
    bad = wait_computed(qtbot, panel, lambda: qtbot.keyClick(editor, Qt.Key_Return, Qt.ControlModifier))
    assert not bad.ok
    error = one(panel, "errorLabel", QLabel)
    assert error.isVisible() and "line 8:" in error.text() and "foo" in error.text(), error.text()
    assert set(view.graph_scene.cards) == cards and panel.result is good


# -- 4. network workspace ----------------------------------------------------------------------------


def pick(qtbot, combo: QComboBox, text: str) -> None:
    """Choose an entry of a combo box by its text, as a user does from the drop-down."""
    index = combo.findText(text)
    items = [combo.itemText(i) for i in range(combo.count())]
    assert index >= 0, f"{combo.objectName()} has no {text!r}: {items}"
    combo.setFocus()
    combo.setCurrentIndex(index)
    qtbot.wait(0)


def step_to_end(qtbot, panel) -> list[str]:
    """Click the panel's Step button until it is disabled; the stepStatus text after each click."""
    step = one(panel, "stepButton", QAbstractButton)
    status = one(panel, "stepStatus", QLabel)
    texts = []
    while step.isEnabled():
        click(qtbot, step)
        texts.append(status.text())
    return texts


def seed_net_grads(values: dict[str, np.ndarray], x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """dL/dparam of the seed network (10 -> 5 ReLU -> 1 sigmoid, BCE) computed here with plain torch."""
    w1, b1, w2, b2 = (torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values.values())
    out = torch.sigmoid(torch.relu(x @ w1.T + b1) @ w2.T + b2)
    loss = torch.nn.functional.binary_cross_entropy(out, y)
    grads = torch.autograd.grad(loss, [w1, b1, w2, b2])
    return {name: g.numpy() for name, g in zip(values, grads, strict=True)}


def table_grads(table, names) -> dict[str, np.ndarray]:
    shown = {name: table.displayed_grad(name) for name in names}
    assert all(g is not None for g in shown.values()), shown
    return shown


def test_mlp_preset_shows_2213_parameters(qtbot, window):
    panel = open_workspace(qtbot, window, "network")
    pick(qtbot, one(panel, "networkPreset", QComboBox), "mlp-50-30-20-3")
    table = one(panel, "paramTable", QTableWidget)
    counts = [int(table.item(r, 2).text().replace(",", "")) for r in range(table.rowCount())]
    assert table.rowCount() == 6 and sum(counts) == 2213
    assert "2,213" in one(panel, "paramTotal", QLabel).text()


def test_seed_network_iteration_phase_by_phase_and_skipped_zero_grad(qtbot, window):
    panel = open_workspace(qtbot, window, "network")
    pick(qtbot, one(panel, "networkPreset", QComboBox), "mlp-50-30-20-3")
    pick(qtbot, one(panel, "networkPreset", QComboBox), "seed")
    table = one(panel, "paramTable", QTableWidget)
    view = panel.iteration
    assert table.rowCount() == 4
    names = [table.item(r, 0).text() for r in range(4)]
    x, y = view.session.x, view.session.y
    assert tuple(x.shape) == (1, 10) and y.reshape(-1).tolist() == [1.0]

    start = {n: s.value for n, s in view.states_at(0).items()}
    statuses = step_to_end(qtbot, panel)
    kinds = [p.kind for p in view.iteration.phases]
    assert len(statuses) == len(kinds)
    # zero_grad, the forward pass layer by layer, the loss, backward node by node, then step
    assert kinds[0] == "zero_grad" and kinds[-1] == "step"
    first = {k: kinds.index(k) for k in ("forward", "loss", "backward", "step")}
    assert first["forward"] < first["loss"] < first["backward"] < first["step"]
    assert kinds.count("forward") >= 4 and kinds.count("backward") >= 4
    assert "zero_grad" in statuses[0] and "step" in statuses[-1]
    g1 = table_grads(table, names)
    expected = seed_net_grads(start, x, y)
    for name in names:
        np.testing.assert_allclose(g1[name], expected[name], rtol=1e-5, atol=1e-7)
    after_step = {n: s.value for n, s in view.states_at(len(kinds)).items()}
    for name in names:  # SGD, lr 0.01, no momentum: w <- w - lr * grad
        np.testing.assert_allclose(after_step[name], start[name] - 0.01 * g1[name], rtol=1e-5, atol=1e-7)

    # skip zero_grad: the next iteration adds the new gradient to the one still in .grad
    skip = one(panel, "networkSkipZeroGrad", QCheckBox)
    skip.click()
    assert skip.isChecked()
    click(qtbot, one(panel, "networkNextIteration", QAbstractButton))
    assert view.iteration.index == 2 and view.iteration.skip_zero_grad
    start2 = {n: s.value for n, s in view.states_at(0).items()}
    statuses = step_to_end(qtbot, panel)
    assert "skipped" in statuses[0]
    g2 = table_grads(table, names)
    fresh = seed_net_grads(start2, x, y)
    for name in names:
        np.testing.assert_allclose(g2[name], g1[name] + fresh[name], rtol=1e-5, atol=1e-7)
        # the same batch and weights that barely moved: the gradient shown has doubled
        np.testing.assert_allclose(g2[name], 2 * g1[name], rtol=0.1, atol=1e-4)


@pytest.mark.slow
def test_training_on_toy_data_raises_accuracy(qtbot, window):
    panel = open_workspace(qtbot, window, "network")
    pick(qtbot, one(panel, "networkPreset", QComboBox), "toy-2d")
    panel.tabs.setCurrentIndex(1)
    pick(qtbot, one(panel, "datasetCombo", QComboBox), "Two moons")
    steps = one(panel, "networkSteps", QSpinBox)
    steps.setValue(300)
    pick(qtbot, one(panel, "networkSpeed", QComboBox), "max")
    train = panel.train
    untrained = np.array(train.boundary_grid, copy=True)
    with qtbot.waitSignal(train.sig_running_changed, timeout=WAIT * 3,
                          check_params_cb=lambda running: not running):
        click(qtbot, one(panel, "networkTrainButton", QAbstractButton))
    run = train.runs[-1]
    assert run.steps[-1] == 300
    acc = run.run.train_acc
    assert acc[-1] > acc[0] and acc[-1] >= 0.85, acc[-1]
    assert run.run.train_loss[-1] < run.run.train_loss[0]
    curve = one(panel, "networkLossPlot").plotItem.listDataItems()[0]
    assert len(curve.getData()[0]) == len(run.steps)
    assert np.abs(np.asarray(train.boundary_grid) - untrained).max() > 0.1
    assert "300" in panel.findChild(QLabel, "trainStatus").text()


# -- 5. pretraining workspace ------------------------------------------------------------------------


def test_gpt2_preset_shows_its_parameter_count_tied_and_untied(qtbot, window):
    panel = open_workspace(qtbot, window, "pretrain")
    pick(qtbot, one(panel, "pretrainPreset", QComboBox), "gpt2-124m")
    count = one(panel, "paramCount", QLabel)
    assert "163,009,536" in count.text(), count.text()
    tie = next(b for b in panel.findChildren(QCheckBox) if "tie" in b.text().lower())
    tie.click()
    assert tie.isChecked()
    assert "124,412,160" in count.text(), count.text()
    pick(qtbot, one(panel, "pretrainPreset", QComboBox), "tiny")
    assert "163,009,536" not in count.text() and "124,412,160" not in count.text()


def type_into(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    assert edit.text() == text


@pytest.mark.slow
def test_pretraining_trains_live_to_the_end_with_curve_and_samples(qtbot, window):
    panel = open_workspace(qtbot, window, "pretrain")
    pick(qtbot, one(panel, "pretrainPreset", QComboBox), "tiny")
    form = panel.form
    small = {"context_length": "16", "emb_dim": "32", "hidden_dim": "64", "n_layers": "1", "n_heads": "2",
             "steps": "12", "batch_size": "4", "eval_every": "6", "sample_every": "6"}
    for key, text in small.items():
        type_into(qtbot, form.edit(key), text)
    form.device.setCurrentText("cpu")
    assert form.is_valid(), form.messages()
    count = one(panel, "paramCount", QLabel).text()
    assert "parameters" in count and "163,009,536" not in count

    with qtbot.waitSignal(panel.sig_run_finished, timeout=WAIT * 3) as finished:
        click(qtbot, one(panel, "pretrainTrainButton", QAbstractButton))
    run_id, status = finished.args
    assert status == "done"
    run = panel.runs()[-1]
    assert run.steps["step"].tolist()[-1] == 12
    losses = run.steps["train_loss"].tolist()
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    panel.plots.flush()
    x, y = panel.plots.curves(run_id).train.getOriginalDataset()
    assert x is not None and len(x) == 12
    samples = one(panel, "samplesView").toPlainText()
    assert run.samples and run.samples[-1][1].strip()[:20] in samples
    # A second run stopped with Stop while under way, both runs' curves kept for comparison: the same
    # panel's test_train_stop_retrain_compare_and_close (tests/ui/test_pretrain_panel.py), which starts
    # its runs with the same buttons; each run is a spawned process importing torch (seconds).
