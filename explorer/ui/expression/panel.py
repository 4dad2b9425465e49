"""The expression workspace: type a program, watch its graph compute forward and backward, node by node.

Run on its own with `python -m explorer.ui.expression.panel`.
"""

from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.autograd import explain as ec  # torch-free at import (torch where it computes)
from explorer.core.workspaces import expression as ew
from explorer.core.workspaces.expression import ComputeResult, ExpressionWorkspace
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel, keep_space_when_hidden
from explorer.ui.common.loading import TorchWait
from explorer.ui.common.worker import Worker
from explorer.ui.expression.editor import ProgramEditor
from explorer.ui.expression.iterations import IterationBar
from explorer.ui.expression.leaf_editor import LeafEditor
from explorer.ui.expression.learning_box import LearningBox
from explorer.ui.expression.predict import PredictBar
from explorer.ui.graph.inspector import INSPECTOR_MIN_W, Inspector
from explorer.ui.graph.player import PLAYER_KEYS, Player, buttons_keep_player_keys
from explorer.ui.graph.view import GraphView

INSPECTOR_W = 290  # the inspector column's width where the window has room for it
CANVAS_ROOM = 560  # ... and the canvas width it narrows for, down to INSPECTOR_MIN_W

DEBOUNCE_MS = 450
OUTPUT_MAX_LINES = 2000  # the output pane keeps the last lines of what a program printed


class _Splitter(QSplitter):
    """A splitter that calls `resized` once it has laid its columns out at a new width."""

    resized = None

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.resized is not None:
            self.resized()


class ExpressionPanel(QWidget):
    """Program editor, graph canvas with player, inspector, parameter editors and learning tools."""

    sig_computed = Signal(object)
    """A computation finished and was shown (a ComputeResult, ok or with an error)."""

    def __init__(self, parent=None, source: str | None = None,
                 workspace: ExpressionWorkspace | None = None):
        super().__init__(parent)
        self.setObjectName("expressionPanel")
        self.workspace = workspace or ExpressionWorkspace(source)
        self._reason = "program"
        self._checks: dict[str, dict] | None = None
        self._offered_checks: tuple[ComputeResult, dict] | None = None  # see offer_checks
        self._shown_source: str | None = None  # the program of the graph on screen
        self._drawn: ComputeResult | None = None  # the valid result the widgets show (see _on_done)
        self._inspector_held = 0  # inside held_inspector(): refreshes wait for its end, then run once
        self._inspector_stale = False
        self._view_held = 0  # inside held_view(): results, steps and losses wait for its end (_held)
        self._held: dict[str, object] = {}
        self._syncing = False  # the view is writing a model field itself: do not echo it back
        self._worker = Worker(self)
        self._worker.sig_done.connect(self._on_done)
        self._worker.sig_failed.connect(self._on_failed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_program)
        self._build()
        self._subscribe()
        self._show_source(self.workspace.state.source)
        self.learning.lr.setValue(self.workspace.state.lr)
        self.run_program()

    # -- public API ------------------------------------------------------------------------

    @property
    def result(self) -> ComputeResult | None:
        """The last valid run, the one on screen (the workspace's)."""
        return self.workspace.result

    @property
    def overrides(self) -> dict[str, object]:
        """Param values changed from the program's own (the workspace's)."""
        return self.workspace.state.overrides

    def source(self) -> str:
        """The program text in the editor."""
        return self.editor.toPlainText()

    def set_source(self, text: str) -> None:
        """Replace the program (new parameters start from the program's own values)."""
        self.workspace.set_source(text)
        self._debounce.stop()

    def load_example(self, name: str) -> None:
        """Load example `name` (a file stem in assets/examples) and run it, with its suggested lr."""
        self.workspace.load_example(name)

    def run_program(self) -> None:
        """Parse and trace the editor's program off the GUI thread (Ctrl+Enter)."""
        self._debounce.stop()
        self._syncing = True
        try:
            self.workspace.state.source = self.source()
        finally:
            self._syncing = False
        self._submit("program")

    def compute_now(self) -> ComputeResult:
        """Compute in the calling thread and show the result (used for screenshots and scripts)."""
        self._worker.cancel()
        self._syncing = True
        try:
            self.workspace.state.source = self.source()
        finally:
            self._syncing = False
        return self.workspace.compute_now(self._reason)

    def wait_computed(self, timeout: float = 30.0) -> bool:
        """Process events until the computation in flight is shown (tests, lessons); True when idle."""
        return self._worker.wait(timeout)

    def prepare_screenshot(self, preset=None, example=None, step=None) -> None:
        """Load `example`, compute synchronously and put the player at `step` (default: the end)."""
        if example:
            self.workspace.load_example(example)
        self._debounce.stop()
        self.compute_now()  # the first run pays for torch's lazy start-up; show a warm timing
        result = self.compute_now()
        if not result.ok:
            return
        n = self.player.length
        self.workspace.set_step(n if step is None else max(0, min(int(step), n)))
        timeline = self.workspace.timeline
        self.workspace.state.selected = timeline.focus(self.workspace.step) or next(iter(result.trace.nodes))

    def menu_actions(self) -> list[QAction]:
        """Actions for the main window's Expression menu (keys and texts from the one table)."""
        if getattr(self, "_menu_actions", None) is None:
            self._menu_actions = actions.build(self, {
                "expression.run": self.run_program,
                "player.rewind": self.player.reset,
                "expression.descent_step": lambda: self.descent_step(),
                "expression.backward_again": self.backward_again,
                "expression.predict": lambda: self.predict.set_on(self._predict_action().isChecked()),
            })
            predict = self._predict_action()
            predict.setCheckable(True)
            predict.setChecked(self.predict.is_on())
            self.predict.sig_toggled.connect(predict.setChecked)
        return list(self._menu_actions)

    def descent_step(self, lr: float | None = None) -> None:
        """One gradient descent step on every param, then recompute (the loss goes into the plot)."""
        if lr is not None:
            self.workspace.state.lr = lr
        self._reason = "descent"
        if not self.workspace.descent_step():
            self._reason = "program"

    def backward_again(self) -> None:
        """Call backward once more without zeroing: show each param's .grad after every call."""
        try:
            self.workspace.backward_again()
        except Exception as exc:  # noqa: BLE001 - show the problem; never leave a traceback to the user
            self.learning.accum_label.setText(f"could not run backward again: {exc}")

    def select_line(self, line: int) -> None:
        """Pin the last node that program line `line` made (nothing when the line made none)."""
        if self.result is None or not self.result.ok:
            return
        trace = self.result.trace
        made = [nid for nid in trace.forward_order if getattr(trace.nodes[nid], "line", None) == line]
        if made:
            self.workspace.state.selected = made[-1]
            self.editor.highlight_line(line)

    def show_output(self, text: str) -> None:
        """Replace the output pane's text with what the program printed (scrolled to the end)."""
        lines = text.splitlines()
        if len(lines) > OUTPUT_MAX_LINES:
            lines = [f"… {len(lines) - OUTPUT_MAX_LINES} earlier lines not shown"] + lines[-OUTPUT_MAX_LINES:]
        self.output.setPlainText("\n".join(lines))
        self.output.moveCursor(QTextCursor.End)

    def shutdown(self) -> None:
        """Stop timers and the worker thread (the window is closing)."""
        self._debounce.stop()
        self.player.pause()
        self._worker.shutdown()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the canvas and the editor."""
        self.graph.set_theme(theme)
        self.editor.set_theme(theme)
        self.learning.set_theme(theme)
        self.iterations.set_theme(theme)
        QTimer.singleShot(0, self._fit_left_column)  # once the new style sheet has sized the widgets

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._fit_left_column()

    def _fit_left_column(self) -> None:
        """The program column as wide as its widest row (the learning box's "lr [0.100] [Gradient descent
        step]") and the scroll bar beside it: narrower, it scrolls sideways and cuts the spin boxes' arrows.
        The style sheet of a theme changes that width."""
        scroll = self._left_scroll
        scroll.widget().ensurePolished()
        need = scroll.widget().minimumSizeHint().width() + 2 * scroll.frameWidth()
        scroll.setMinimumWidth(max(270, need + scroll.verticalScrollBar().sizeHint().width()))

    def _on_splitter_moved(self, _pos: int, _index: int) -> None:
        self._auto_widths = False  # the user chose the widths: keep them
        self._split.setProperty("autoWidths", False)

    def _share_width(self) -> None:
        """In a small window the inspector gives the canvas room, down to INSPECTOR_MIN_W, until the canvas
        is CANVAS_ROOM wide (at 1280x800 with the Learn dock open a 290 px inspector left the canvas 420 px,
        and graphs three cards tall drew below the zoom where cards show their values). Widths the user
        dragged or a saved session restored stay as they are."""
        sizes = self._split.sizes()
        if not self._auto_widths or self._split.property("restored"):
            return
        if len(sizes) != 3 or not sizes[2]:
            return  # the inspector folded away
        free = sizes[1] + sizes[2]
        want = max(INSPECTOR_MIN_W, min(INSPECTOR_W, free - CANVAS_ROOM))
        if want != sizes[2]:
            self._split.setSizes([sizes[0], free - want, want])

    # -- Qt events -----------------------------------------------------------------------------

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Player keys (Space, Right, Left, Home, End) when no text field has them."""
        if event.key() in PLAYER_KEYS and self.player.handle_key(event.key()):
            event.accept()
            return
        super().keyPressEvent(event)

    # -- private -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.editor = ProgramEditor()
        self.editor.textChanged.connect(self._debounce.start)
        self.editor.sig_run_requested.connect(self.run_program)
        self.editor.sig_line_clicked.connect(self.select_line)
        # fixed heights, and the error line keeps its place while hidden: nothing moves the Run button
        self.error_label = keep_space_when_hidden(ElidedLabel("", lines=4))  # the message and the hint
        self.error_label.setObjectName("errorLabel")
        self.error_label.setStyleSheet(themes.label_style("errorLabel", themes.get_theme()))
        self.error_label.setVisible(False)
        self.run_button = QPushButton(f"Run  ({actions.key_text('expression.run')})")
        self.run_button.setObjectName("runButton")
        actions.describe_button(self.run_button, "expression.run")
        self.run_button.clicked.connect(self.run_program)
        # under the Run button, the column's full width: "traced in 13 ms · forward only: nothing here
        # requires a gradient" is whole in two lines (beside the button it was cut)
        self.timing_label = ElidedLabel("", lines=2)
        self.timing_label.setObjectName("timingLabel")
        self.output = QPlainTextEdit()
        self.output.setObjectName("outputPane")
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(OUTPUT_MAX_LINES)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.output.setPlaceholderText("print(...) output appears here")
        self.output.setMinimumHeight(60)
        self.output.setMaximumHeight(110)
        self.output.setMinimumWidth(80)  # the program column may narrow: the canvas gets the space
        self.output.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.output.setToolTip(
            "What the program printed: print(...) calls and bare expression lines, as a notebook shows\n"
            "them. Replaced on every run; the last lines are kept. Errors appear in the line above.")
        self.leaves = LeafEditor()
        self.leaves.sig_value_changed.connect(self._on_leaf_changed)
        self.learning = LearningBox()
        self.learning.sig_descent_requested.connect(self.descent_step)
        self.learning.lr.valueChanged.connect(self._on_lr_edited)
        self.learning.sig_backward_again.connect(self.backward_again)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(6, 6, 6, 6)
        title = QLabel("<b>Program</b>")
        lv.addWidget(title)
        lv.addWidget(self.editor, 3)
        lv.addWidget(self.error_label)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addStretch(1)
        lv.addLayout(row)
        lv.addWidget(self.timing_label)
        lv.addWidget(self.output)
        lv.addWidget(self.leaves)
        lv.addWidget(self.learning)
        lv.addStretch(0)
        left_scroll = QScrollArea()
        left_scroll.setWidgetResizable(True)
        left_scroll.setWidget(left)
        self._left_scroll = left_scroll
        self._fit_left_column()

        self.graph = GraphView()
        self.graph.sig_node_selected.connect(self._on_selected)
        self.graph.sig_graph_changed.connect(self._refresh_inspector)
        self.player = Player()
        self.player.sig_step_changed.connect(self._on_step)
        # three lines: a step that sends the gradient to two inputs names both chain rules (monospace 11pt)
        self.status = ElidedLabel("", lines=3)
        self.status.setObjectName("stepStatus")
        self.status.setStyleSheet(themes.label_style("stepStatus", themes.get_theme()))
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setToolTip("What the current step does, in words and numbers")
        center = QWidget()
        cv = QVBoxLayout(center)
        cv.setContentsMargins(0, 6, 0, 6)
        self.iterations = IterationBar()
        self.iterations.sig_iteration.connect(self.workspace.set_iteration)
        # before torch is in (the first start), a note in the graph's place; the editor takes input meanwhile
        self.graph_wait = TorchWait(
            self.graph, "The graph, the player and the inspector appear once it is in.",
            "You can write the program meanwhile: it runs as soon as PyTorch is ready.", "graphLoadingNote")
        cv.addWidget(self.graph_wait, 1)
        cv.addWidget(self.iterations)
        cv.addWidget(self.player)
        cv.addWidget(self.status)
        self.predict = PredictBar()
        self.predict.sig_reveal.connect(self._on_reveal)
        self.predict.sig_toggled.connect(self._on_predict_toggled)
        cv.addWidget(self.predict)

        self.inspector = Inspector()
        split = _Splitter(Qt.Horizontal)
        split.resized = self._share_width
        split.setObjectName("expressionSplitter")  # its sizes are saved with the window (main_window)
        split.addWidget(left_scroll)
        split.addWidget(center)
        split.addWidget(self.inspector)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setCollapsible(1, False)  # the canvas never folds away; the side columns may
        split.setSizes([280, 900, INSPECTOR_W])
        self._split = split
        self._auto_widths = True  # until the user drags the splitter
        split.setProperty("autoWidths", True)  # saved with the window: restored auto widths stay auto
        split.splitterMoved.connect(self._on_splitter_moved)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        buttons_keep_player_keys(self)

    def _subscribe(self) -> None:
        """The workspace's events drive the widgets (a lesson, a test or a session sets a field)."""
        ev = self.workspace.state.events
        ev.source.connect(self._on_source)
        ev.overrides.connect(lambda _v: self._submit(self._reason if self._reason == "descent" else "leaf"))
        ev.step.connect(lambda _v: self._on_model_step())
        ev.selected.connect(self._on_model_selected)
        ev.lr.connect(self._on_model_lr)
        ev.losses.connect(self._on_losses)
        self.workspace.events.computed.connect(self._on_computed)
        self.workspace.events.accumulated.connect(self.learning.show_accumulation)

    def _submit(self, reason: str) -> None:
        source, overrides = self.workspace.state.source, dict(self.workspace.state.overrides)
        iteration = self.workspace.state.iteration
        self._reason = reason
        self._worker.submit(lambda job: ew.compute(source, overrides, iteration=iteration,
                                                   cancelled=lambda: job.cancelled))

    def _on_done(self, result: ComputeResult) -> None:
        reason, self._reason = self._reason, "program"
        current = self.workspace.result
        if (result.ok and current is not None and current is self._drawn and self.workspace.last is current
                and (result.source, result.overrides, result.iteration)
                == (current.source, current.overrides, current.iteration)):
            return  # already the workspace's result, and on screen (a lesson computed it meanwhile)
        self.workspace.apply(result, reason)

    def _on_failed(self, message: str) -> None:
        self._on_done(ComputeResult(source=self.workspace.state.source, error=f"internal error: {message}"))

    def _on_source(self, text: str) -> None:
        if self._syncing:
            return
        self._show_source(text)
        self._debounce.stop()
        self._submit("program")

    def _show_source(self, text: str) -> None:
        if self.editor.toPlainText() != text:
            self.editor.blockSignals(True)
            self.editor.setPlainText(text)
            self.editor.blockSignals(False)

    def _on_model_lr(self, lr: float) -> None:
        if abs(self.learning.lr.value() - lr) > 1e-12:
            self.learning.lr.blockSignals(True)
            self.learning.lr.setValue(lr)
            self.learning.lr.blockSignals(False)

    def _on_lr_edited(self, value: float) -> None:
        if value > 0:
            self.workspace.state.lr = value

    def _on_computed(self, result: ComputeResult) -> None:
        if not self._view_held:
            self._apply(result)
            return
        if result.ok:  # a later failure shows over the last program that traced (as without the hold)
            self._held.pop("result", None)
            self._held["ok"] = result
        else:
            self._held["result"] = result

    def _on_model_step(self) -> None:
        if self._view_held:
            self._held["step"] = True
        else:
            self._show_step()

    def _on_losses(self, losses) -> None:
        if self._view_held:
            self._held["losses"] = True
        else:
            self.learning.show_losses(losses)

    @contextmanager
    def held_view(self):
        """Show the workspace once, at the end of the block, not after each change inside it.

        A lesson step's actions compute one to three programs, move the player and reset the losses; each
        result was drawn in turn (the graph rebuilt, the player, the leaves, the loss plot) in the one
        GUI-thread turn of the step. Inside the block the results, steps, selections and losses are only
        noted; at its end the last program that traced is shown (then a later failure over it, as
        without the hold), then the step, with the inspector refreshed once (`held_inspector`).
        """
        self._view_held += 1
        with self.held_inspector():
            try:
                yield
            finally:
                self._view_held -= 1
                if not self._view_held:
                    self._show_held()

    def _show_held(self) -> None:
        held, self._held = self._held, {}
        for key in ("ok", "result"):
            if key in held:
                self._apply(held[key])
        if "losses" in held and not ({"ok", "result"} & held.keys()):
            self.learning.show_losses(self.workspace.state.losses)  # _apply shows them with a result
        if "step" in held:
            self._show_step()
        if "selected" in held:
            self._on_model_selected(self.workspace.state.selected)

    def _on_model_selected(self, node_id: str | None) -> None:
        if self._view_held:
            self._held["selected"] = True
            return
        if (self.graph.selected() or None) != node_id:
            self.graph.select(node_id)
        self._refresh_inspector()
        self._highlight_focus_line()

    def _apply(self, result: ComputeResult) -> None:
        self.graph_wait.done()
        if not result.ok:
            self.error_label.setText(f"⚠ {result.error}\nThe graph shows the last valid program.")
            self.error_label.setVisible(True)
            if result.error_pos:
                self.editor.mark_error(*result.error_pos)
            self.sig_computed.emit(result)
            return
        self.error_label.setText("")
        self.error_label.setVisible(False)
        self.editor.clear_error()
        self._drawn = result
        self.show_output(result.printed)
        previous = self.graph.graph_scene.trace
        same_program = previous is not None and self._shown_source == result.source
        self._shown_source = result.source
        self._checks = None
        self.learning.accum_label.setText("")
        # the note's parenthetical how-to goes to the tooltip: the line stays whole in two lines
        head, _, how = (result.note or "").partition(" (")
        self.timing_label.setText(f"traced in {result.elapsed_ms:.0f} ms" + (f" · {head}" if head else ""))
        self.timing_label.setToolTip(f"{result.note}" if how else "")
        timeline = self.workspace.timeline
        step = self.workspace.step
        self.iterations.set_iterations(self.workspace.iteration_losses(), result.iteration)
        self.predict.set_timeline(timeline)
        with self.held_inspector():  # the steps and the selection below refresh it once, at the end
            self.graph.set_trace(result.trace, step=step, keep_view=same_program)
            self.player.set_length(timeline.length, step)
            values = ew.param_values(result)
            self.leaves.set_params(values)
            self.learning.set_available(bool(result.trace.backward_order) and bool(values))
            self.learning.show_losses(self.workspace.state.losses)
            selected = self.workspace.state.selected
            if selected and selected in result.trace.nodes:
                self.graph.select(selected)
            self._refresh_inspector()
        self._highlight_focus_line(fresh=True)
        self.sig_computed.emit(result)

    def _on_leaf_changed(self, name: str, value) -> None:
        if self.workspace.result is None:
            return
        self.workspace.set_param(name, value)

    def _on_step(self, k: int) -> None:
        timeline = self.workspace.timeline
        if timeline is None:
            return
        allowed = self.predict.stop_before(self.workspace.step, k)
        if allowed != k:  # predict mode: the player stops before the gradient it would reveal
            self.player.pause()
            self.player.set_step(allowed)
            return
        with self.held_inspector():  # the model's step event shows the step too: one refresh for both
            self.workspace.set_step(k if k < timeline.length else timeline.length)
            if k >= timeline.length:
                self.workspace.state.step = None  # at the end: stay at the end when the program changes
            self._show_step()

    def _predict_action(self) -> QAction:
        return next(a for a in self._menu_actions if a.property(actions.ACTION_ID) == "expression.predict")

    def _on_predict_toggled(self, on: bool) -> None:
        timeline = self.workspace.timeline
        if on and timeline is not None and self.workspace.step > timeline.forward_length:
            self.workspace.set_step(timeline.forward_length)  # back to where the first gradient is asked

    def _on_reveal(self, k: int) -> None:
        self.workspace.set_step(k)
        self.graph.setFocus(Qt.OtherFocusReason)  # the player keys work again

    def _show_step(self) -> None:
        timeline = self.workspace.timeline
        if timeline is None:
            return
        k = self.workspace.step
        if self.player.step != k:
            self.player.set_step(k)
        self.graph.set_step(k)
        self.status.setText(timeline.status(k))
        self._refresh_inspector()
        self._highlight_focus_line()

    def _highlight_focus_line(self, fresh: bool = False) -> None:
        """Tint the editor line that made the node in focus (the pinned one, else the player's); a `fresh`
        run left at the end of its timeline with nothing pinned tints nothing."""
        state = self.workspace.state
        idle = fresh and state.step is None and state.selected is None
        focus = None if idle else self.workspace.focus()
        trace = self.result.trace if self.result is not None and self.result.ok else None
        node = trace.nodes.get(focus) if trace is not None and focus is not None else None
        line = getattr(node, "line", None) if node is not None else None
        if self.result is not None and self._shown_source == self.editor.toPlainText():
            self.editor.highlight_line(line)
        else:  # the text changed since: the line numbers may be stale
            self.editor.highlight_line(None)

    def _on_selected(self, node_id: str) -> None:
        self.workspace.state.selected = node_id or None
        self._refresh_inspector()

    @contextmanager
    def held_inspector(self):
        """Refresh the inspector once at the end of the block, not at each change inside it.

        A new result, a step and a selection each refresh it (the chain rule, the gradient check): a
        lesson step or one computed program made it draw three to ten times in a row on the GUI thread.
        """
        self._inspector_held += 1
        try:
            yield
        finally:
            self._inspector_held -= 1
            if not self._inspector_held and self._inspector_stale:
                self._refresh_inspector()

    def offer_checks(self, result: ComputeResult, checks: dict[str, dict]) -> None:
        """The gradient check of `result` (`leaf_comparison`: finite differences, i.e. the program run again
        per param), made off the GUI thread: the inspector uses it when `result` is the one on screen
        instead of computing it here (a lesson step makes it on the Worker with its programs)."""
        self._offered_checks = (result, checks)

    def _refresh_inspector(self) -> None:
        if self._inspector_held:
            self._inspector_stale = True
            return
        self._inspector_stale = False
        if self.result is None or not self.result.ok:
            self.inspector.clear()
            return
        trace = self.result.trace
        self.inspector.set_summary(self._grad_summary())
        did = self.workspace.state.selected
        following = did is None or did not in trace.nodes
        if following:  # nothing selected: follow the node the player is on
            did = self.workspace.timeline.focus(self.workspace.step)
        if did is None:
            self.inspector.clear("Step the player or click a node in the graph to inspect it.")
            return
        node = trace.nodes[did]
        show_grad = self.workspace.timeline.grad_known(did, self.workspace.step)
        chain = ec.chain_rule_text(trace, did) if show_grad else ""
        check = None
        if node.kind == "param" and node.name and show_grad:
            offered = self._offered_checks
            if self._checks is None and offered is not None and offered[0] is self.result:
                self._checks = offered[1]
            if self._checks is None:
                try:
                    self._checks = ew.leaf_comparison(self.result)
                except Exception:  # a failed check must not hide the rest of the inspector
                    self._checks = {}
            check = self._checks.get(node.name)
        self.inspector.show_node(node, title=ec.node_text(trace, did), chain=chain, check=check,
                                 show_grad=show_grad, trace=trace)
        if following:
            self.inspector.follow_hint.setVisible(True)

    def _grad_summary(self) -> str:
        """dL/dp of every param, once the backward pass has produced it (else "not yet")."""
        trace = self.result.trace
        timeline, k = self.workspace.timeline, self.workspace.step
        parts = []
        for nid, node in trace.nodes.items():
            if node.kind != "param" or not node.name:
                continue
            known = timeline.grad_known(nid, k) and node.grad is not None
            value = ec.snapshot_summary(node.grad) if known else "not yet"
            if known and node.grad.numel > 1:
                value = f"tensor {tuple(node.grad.shape)}, max |·| {ec.max_abs_text(node.grad)}"
            parts.append(f"{ec.d_of(trace, nid)} = {value}")
        return "   ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Open the expression workspace alone in a window."""
    from explorer.ui.common.standalone import run_standalone

    return run_standalone(ExpressionPanel, "Autograd Explorer: expression", (1400, 820), argv)


if __name__ == "__main__":
    raise SystemExit(main())
