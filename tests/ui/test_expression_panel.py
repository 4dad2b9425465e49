"""The expression workspace, driven as a user would: typing, stepping, selecting, editing leaves."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton

from explorer.core.lang.examples import list_examples
from explorer.ui.expression.panel import ExpressionPanel
from explorer.ui.graph.inspector import Inspector
from explorer.ui.graph.view import GraphView

SEED_LINES = ["x = 1.1", "y = 1.0", "w = param(2.2)", "b = param(0.0)", "z = w * x + b", "a = sigmoid(z)",
              "L = bce(a, y)"]
WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


@pytest.fixture
def panel(qtbot):
    p = ExpressionPanel(source="")
    qtbot.addWidget(p)
    p.resize(1400, 800)
    p.show()
    yield p
    p.shutdown()


def _run(qtbot, panel, action):
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        action()
    return panel


def _type_program(qtbot, panel, lines):
    editor = panel.findChild(QPlainTextEdit, "programEditor")
    editor.clear()
    editor.setFocus()
    for i, line in enumerate(lines):
        qtbot.keyClicks(editor, line)
        if i < len(lines) - 1:
            qtbot.keyClick(editor, Qt.Key_Return)
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT) as blocker:
        qtbot.keyClick(editor, Qt.Key_Return, Qt.ControlModifier)
    return blocker.args[0]


def _node(panel, name):
    return next(n.id for n in panel.result.trace.nodes.values() if n.name == name)


def test_object_names_are_present(panel):
    for cls, name in [(QPlainTextEdit, "programEditor"), (QLabel, "errorLabel"), (GraphView, "graphView"),
                      (Inspector, "inspector"), (QPushButton, "resetButton"),
                      (QPushButton, "stepBackButton"), (QPushButton, "stepButton"),
                      (QPushButton, "playButton"), (QLabel, "stepStatus")]:
        assert panel.findChild(cls, name) is not None, name
    assert panel.findChild(object, "speedSlider") is not None


def test_type_seed_step_to_end_and_read_the_gradients(qtbot, panel):
    result = _type_program(qtbot, panel, SEED_LINES)
    assert result.ok, result.error
    step = panel.findChild(QPushButton, "stepButton")
    reset = panel.findChild(QPushButton, "resetButton")
    status = panel.findChild(QLabel, "stepStatus")
    qtbot.mouseClick(reset, Qt.LeftButton)
    assert panel.player.step == 0
    texts = []
    while panel.player.step < panel.player.length:
        qtbot.mouseClick(step, Qt.LeftButton)
        texts.append(status.text())
    assert panel.player.step == 13  # x and y are plain numbers: 7 forward events, 6 backward
    joined = "\n".join(texts)
    assert "SigmoidBackward0" in joined and "dL/dz" in joined
    assert "dL/dw" in joined and "-0.0898" in joined
    assert "dL/db" in joined and "-0.0817" in joined
    inspector = panel.findChild(Inspector, "inspector")
    panel.graph.select(_node(panel, "w"))
    assert "dL/dw = -0.0898" in inspector.grad_label.text()
    assert "-0.0898" in inspector.chain_label.text()
    panel.graph.select(_node(panel, "b"))
    assert "dL/db = -0.0817" in inspector.grad_label.text()
    # the leaf's gradient check: autograd, finite differences and the manual formula agree
    table = inspector.check_table
    methods = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert methods[:2] == ["autograd", "finite differences"]
    assert all(table.item(r, 1).text() == "-0.0817" for r in range(table.rowCount()))


def test_stepping_back_and_forth_gives_the_same_states(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    panel.player.reset()
    seen = []
    for _ in range(panel.player.length):
        panel.player.step_forward()
        cards = {d: (c.show_value, c.show_grad, c.current) for d, c in panel.graph.graph_scene.cards.items()}
        seen.append((panel.player.step, panel.status.text(), cards))
    for step, text, cards in reversed(seen):
        assert panel.player.step == step
        assert panel.status.text() == text
        assert {d: (c.show_value, c.show_grad, c.current)
                for d, c in panel.graph.graph_scene.cards.items()} == cards
        panel.player.step_back()
    assert panel.player.step == 0


def test_player_keys_on_the_graph(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    panel.graph.setFocus()
    qtbot.keyClick(panel.graph, Qt.Key_Home)
    assert panel.player.step == 0
    qtbot.keyClick(panel.graph, Qt.Key_Right)
    qtbot.keyClick(panel.graph, Qt.Key_Right)
    assert panel.player.step == 2
    qtbot.keyClick(panel.graph, Qt.Key_Left)
    assert panel.player.step == 1
    qtbot.keyClick(panel.graph, Qt.Key_Space)
    assert panel.player.is_playing()
    qtbot.waitUntil(lambda: panel.player.step >= 2, timeout=WAIT)
    qtbot.keyClick(panel.graph, Qt.Key_Space)
    assert not panel.player.is_playing()


def test_invalid_program_shows_the_error_and_keeps_the_graph(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    trace_before = panel.result.trace
    cards_before = set(panel.graph.graph_scene.cards)
    result = _type_program(qtbot, panel, [*SEED_LINES[:-1], "L = bce(a, y"])
    assert not result.ok
    error = panel.findChild(QLabel, "errorLabel")
    assert error.isVisible() and "line 7" in error.text()
    assert panel.editor.error_position()[0] == 7
    assert panel.result.trace is trace_before
    assert set(panel.graph.graph_scene.cards) == cards_before
    # fixing it clears the error
    result = _type_program(qtbot, panel, SEED_LINES)
    assert result.ok and not error.isVisible() and panel.editor.error_position() is None


def test_unknown_name_error_is_underlined_at_its_column(qtbot, panel):
    result = _type_program(qtbot, panel, ["x = 1.0", "y = foo(x)"])
    assert not result.ok
    line, col = panel.editor.error_position()
    assert line == 2 and col >= 5


@pytest.mark.parametrize("name", [n for n, _ in list_examples()])
def test_every_example_loads_and_steps_to_the_end(qtbot, panel, name):
    _run(qtbot, panel, lambda: panel.load_example(name))
    if name.startswith("error_"):
        # the examples of autograd's errors stop on their line, with what autograd needed
        assert "line " in panel.error_label.text() and panel.editor.error_position()[0] > 1
        return
    assert panel.result is not None and panel.result.ok, panel.error_label.text()
    panel.player.reset()
    while panel.player.step < panel.player.length:
        panel.player.step_forward()
    assert panel.status.text()
    assert not panel.error_label.isVisible()


def test_changing_a_leaf_recomputes_forward_and_backward(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    spin = panel.findChild(object, "spin_w")
    _run(qtbot, panel, lambda: spin.setValue(0.0))
    tr = panel.result.trace
    z = tr.nodes[_node(panel, "z")]
    assert z.value.item() == pytest.approx(0.0)
    w = tr.nodes[_node(panel, "w")]
    assert w.grad.item() == pytest.approx(1.1 * (0.5 - 1.0), abs=1e-4)


def test_gradient_descent_lowers_the_loss(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    button = panel.findChild(QPushButton, "descentButton")
    for _ in range(3):
        _run(qtbot, panel, lambda: qtbot.mouseClick(button, Qt.LeftButton))
    losses = panel.learning.losses
    assert len(losses) == 4
    assert losses[0] == pytest.approx(0.0852, abs=1e-4)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert panel.overrides["w"] > 2.2


def test_backward_again_accumulates_grad(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    qtbot.mouseClick(panel.findChild(QPushButton, "backwardAgainButton"), Qt.LeftButton)
    text = panel.learning.accum_label.text()
    assert "w.grad: -0.0898 → -0.1797" in text


def test_state_round_trip(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    panel.player.set_step(5)
    state = panel.workspace.to_json()
    assert state["step"] == 5
    other = ExpressionPanel(source="x = 1.0")
    qtbot.addWidget(other)
    other.wait_computed()
    other.workspace.load(other.workspace.validate(state))
    qtbot.waitUntil(lambda: other.result is not None and other.result.source == state["source"],
                    timeout=WAIT)
    assert other.player.step == 5
    assert other.workspace.to_json() == state
    other.shutdown()


def test_shutdown_leaves_no_worker_thread(qtbot):
    p = ExpressionPanel()
    qtbot.addWidget(p)
    qtbot.waitUntil(lambda: p.result is not None, timeout=WAIT)
    p.shutdown()
    assert not p._worker.is_busy()


def test_hover_help_for_functions_names_the_local_derivative():
    from explorer.ui.expression.editor import op_help

    assert "σ(z)(1 − σ(z))" in op_help("sigmoid")
    assert op_help("no_such_function") == ""
    assert op_help("x + 1") == ""


def test_error_marks_are_drawn_in_the_editor(qtbot, panel):
    _type_program(qtbot, panel, ["x = 1.0", "y = x +"])
    assert len(panel.editor.extraSelections()) == 2  # the tinted line and the wavy underline
    _type_program(qtbot, panel, ["x = 1.0", "y = x + 1.0"])
    assert panel.editor.extraSelections() == []


def test_typing_recomputes_after_a_pause(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("x = param(1.0)\ny = x * 3.0"))
    panel.editor.moveCursor(QTextCursor.End)
    qtbot.keyClick(panel.editor, Qt.Key_Return)
    qtbot.keyClicks(panel.editor, "q = y * y")  # no Ctrl+Enter: the debounce timer runs it
    qtbot.waitUntil(lambda: "q" in {n.name for n in panel.result.trace.nodes.values()}, timeout=WAIT)


def test_inspector_shows_a_tensor_as_a_grid_with_its_metadata(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("A = [[1, 2, 3], [4, 5, 6]]\nG = A @ A.T"))
    assert not panel.error_label.isVisible()
    panel.graph.select(_node(panel, "G"))
    table = panel.inspector.value_view[1]
    assert [[table.item(r, c).text() for c in range(2)] for r in range(2)] == [["14", "32"], ["32", "77"]]
    assert panel.inspector.meta_labels["dtype"].text() == "int64"
    assert panel.inspector.meta_labels["shape"].text() == "(2, 2)"
    transposed = next(n for n in panel.result.trace.nodes.values() if n.op in ("T", "t", "transpose"))
    panel.graph.select(transposed.id)
    assert panel.inspector.meta_labels["contiguous"].text() == "False"
    assert panel.inspector.meta_labels["stride"].text() == "(1, 3)"


def test_inspector_follows_the_player_and_sums_up_param_gradients(qtbot, panel):
    _type_program(qtbot, panel, SEED_LINES)
    panel.graph.select(_node(panel, "w"))
    panel.graph.setFocus()
    qtbot.keyClick(panel.graph, Qt.Key_Escape)  # unpin: the inspector follows the player again
    assert panel.graph.selected() is None
    inspector = panel.findChild(Inspector, "inspector")
    panel.player.reset()
    assert "dL/dw = not yet" in inspector.summary.text() and "dL/db = not yet" in inspector.summary.text()
    for _ in range(9):  # up to SigmoidBackward0, which produces dL/dz
        qtbot.mouseClick(panel.findChild(QPushButton, "stepButton"), Qt.LeftButton)
    assert "dL/dz = -0.0817" in inspector.grad_label.text()
    assert inspector.follow_hint.isVisible()
    panel.player.go_end()
    assert "dL/dw = -0.0898" in inspector.summary.text()
    assert "dL/db = -0.0817" in inspector.summary.text()


def test_typing_in_the_editor_never_drives_the_player(qtbot, panel):
    from PySide6.QtGui import QAction, QKeySequence

    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    panel._debounce.setInterval(600_000)  # the edited program must not re-run (and move the player) here
    panel.player.set_step(3)
    # even a window-wide Space/Right shortcut (as another workspace might add) must not fire
    fired = []
    for key in ("Space", "Right", "Home"):
        action = QAction(key, panel)
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.WindowShortcut)
        action.triggered.connect(lambda _=False, k=key: fired.append(k))
        panel.addAction(action)
    panel.activateWindow()
    editor = panel.editor
    editor.setFocus()
    editor.moveCursor(QTextCursor.End)
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.keyClicks(editor, "q = a + a")
    for key in (Qt.Key_Space, Qt.Key_Left, Qt.Key_Right, Qt.Key_Home, Qt.Key_End):
        qtbot.keyClick(editor, key)
    assert editor.toPlainText().endswith("q = a + a ")
    assert panel.player.step == 3 and not panel.player.is_playing()
    assert fired == []
    spin = panel.learning.lr
    spin.setFocus()
    for key in (Qt.Key_Space, Qt.Key_Right, Qt.Key_Home):
        qtbot.keyClick(spin, key)
    assert panel.player.step == 3 and fired == []
    panel.graph.setFocus()
    qtbot.keyClick(panel.graph, Qt.Key_Space)  # on the canvas the shortcut is the user's intent
    assert fired == ["Space"]


def test_loss_line_follows_descent_steps_and_restarts_after_a_slider_move(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    label = panel.learning.loss_label
    assert label.text() == "loss 0.0852 before any descent step"
    _run(qtbot, panel, lambda: panel.descent_step(1.0))
    assert label.text().endswith("after 1 descent step") and len(panel.learning.losses) == 2
    _run(qtbot, panel, lambda: panel._on_leaf_changed("w", 0.0))  # what the w slider sends
    # L = bce(sigmoid(0 * 1.1 + b), 1) with b a little above 0 after the step
    assert label.text().endswith("before any descent step") and len(panel.learning.losses) == 1
    assert label.text() != "loss 0.0852 before any descent step"


def test_learning_buttons_are_disabled_without_params(qtbot, panel):
    _run(qtbot, panel, lambda: panel.set_source("a = [[1, 2], [3, 4]]\nb = a @ a"))
    assert not panel.learning.step_button.isEnabled()
    assert "no param(...)" in panel.learning.step_button.toolTip()
    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    assert panel.learning.step_button.isEnabled() and panel.learning.again_button.isEnabled()


def test_clicking_a_button_leaves_space_to_the_player(qtbot, panel):
    from PySide6.QtWidgets import QApplication

    _run(qtbot, panel, lambda: panel.set_source("\n".join(SEED_LINES)))
    panel.activateWindow()
    panel.graph.setFocus()
    _run(qtbot, panel, lambda: qtbot.mouseClick(panel.learning.step_button, Qt.LeftButton))
    assert QApplication.focusWidget() is not panel.learning.step_button
    assert panel.learning.step_button.focusPolicy() == Qt.TabFocus  # keyboard users still reach it


def test_a_loss_that_goes_up_suggests_a_smaller_learning_rate(qtbot, panel):
    panel.learning.show_losses([1.0, 0.5])
    assert "went up" not in panel.learning.loss_label.text()
    panel.learning.show_losses([1.0, 0.5, 4.0])
    assert "went up" in panel.learning.loss_label.text() and "smaller lr" in panel.learning.loss_label.text()


def test_an_example_sets_its_suggested_learning_rate_and_then_descends(qtbot, panel):
    from explorer.core.lang.examples import example_learning_rate

    assert example_learning_rate("# lr: 0.1   (why)\nx = 1.0") == 0.1
    assert example_learning_rate("# lr: fast\nx = 1.0") is None
    assert example_learning_rate("# lr: -1\nx = 1.0") is None
    assert example_learning_rate("x = 1.0") is None
    panel.learning.lr.setValue(1.0)
    _run(qtbot, panel, lambda: panel.load_example("linear_regression_mse"))
    assert panel.learning.lr.value() == pytest.approx(0.1)
    for _ in range(3):  # at the suggested rate the loss falls at every step (at 1.0 it explodes)
        _run(qtbot, panel, lambda: panel.descent_step(panel.learning.lr.value()))
    losses = panel.learning.losses
    assert len(losses) == 4 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


def test_a_panel_made_for_a_workspace_that_already_has_its_result_draws_it(qtbot):
    # A lesson step (or a restored session) can give the workspace its result before the panel exists;
    # the panel's own first run then brings an equal result, which must still be drawn, not skipped as
    # "already shown" (a lesson once waited forever for a player that stayed empty).
    from explorer.core.workspaces.expression import ExpressionWorkspace

    workspace = ExpressionWorkspace("w = param(2.0)\nL = w * w")
    workspace.compute_now()
    view = ExpressionPanel(workspace=workspace)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.sig_computed, timeout=WAIT):
        pass  # the run the panel starts itself
    assert view.player.length == workspace.timeline.length > 0
    assert view.graph.graph_scene.trace is workspace.result.trace
    view.shutdown()
