"""The expression workspace: type a program, watch its graph compute forward and backward, node by node.

Run on its own with `python -m explorer.ui.expression.panel`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.autograd import explain as ec
from explorer.core.lang.examples import SEED_SOURCE, example_learning_rate, load_example
from explorer.ui.common import actions
from explorer.ui.expression.editor import ProgramEditor
from explorer.ui.expression.leaf_editor import LeafEditor
from explorer.ui.expression.learning_box import LearningBox
from explorer.ui.graph.inspector import Inspector
from explorer.ui.graph.player import PLAYER_KEYS, Player, buttons_keep_player_keys
from explorer.ui.graph.view import GraphView

DEBOUNCE_MS = 450


class _Relay(QObject):
    """Carries results from the worker thread to the GUI thread (queued signal)."""

    sig_done = Signal(int, object)


class ExpressionPanel(QWidget):
    """Program editor, graph canvas with player, inspector, parameter editors and learning tools."""

    sig_computed = Signal(object)
    """A computation finished and was shown (a ComputeResult, ok or with an error)."""

    def __init__(self, parent=None, source: str | None = None):
        super().__init__(parent)
        self.setObjectName("expressionPanel")
        self.result: ec.ComputeResult | None = None   # the last valid run, the one on screen
        self.overrides: dict[str, object] = {}
        self._generation = 0
        self._pending_reason = ""
        self._accumulate = 1
        self._checks: dict[str, dict] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="expr-compute")
        self._relay = _Relay()
        self._relay.sig_done.connect(self._on_done)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_program)
        self._build()
        self.editor.setPlainText(source if source is not None else SEED_SOURCE)
        self._debounce.stop()
        self.run_program()

    # -- public API ------------------------------------------------------------------------

    def source(self) -> str:
        """The program text in the editor."""
        return self.editor.toPlainText()

    def set_source(self, text: str, run_now: bool = True) -> None:
        """Replace the program (new parameters start from the program's own values)."""
        self.overrides = {}
        self.editor.setPlainText(text)
        self._debounce.stop()
        if run_now:
            self.run_program()

    def load_example(self, name: str) -> None:
        """Load example `name` (a file stem of assets/examples) and run it, with its suggested lr if any."""
        source = load_example(name)
        lr = example_learning_rate(source)
        if lr is not None:
            self.learning.lr.setValue(lr)
        self.set_source(source)

    def run_program(self) -> None:
        """Parse and trace the editor's program off the GUI thread (Ctrl+Enter)."""
        self._debounce.stop()
        self._submit(self.source(), dict(self.overrides), "program")

    def compute_now(self) -> ec.ComputeResult:
        """Compute in the calling thread and show the result (used for screenshots and scripts)."""
        self._generation += 1
        result = ec.compute(self.source(), dict(self.overrides))
        self._apply(result, "program")
        return result

    def state(self) -> dict:
        """JSON-able state for the session file."""
        return {"source": self.source(), "overrides": self.overrides, "step": self.player.step,
                "lr": self.learning.lr.value(), "selected": self.graph.selected()}

    def restore_state(self, state: dict) -> None:
        """Restore a state saved by `state()`."""
        if not isinstance(state, dict):
            return
        self.learning.lr.setValue(float(state.get("lr", self.learning.lr.value())))
        self._restore_step = state.get("step")
        self._restore_selected = state.get("selected")
        self.editor.setPlainText(str(state.get("source", self.source())))
        self.overrides = dict(state.get("overrides") or {})
        self.run_program()

    def prepare_screenshot(self, preset=None, example=None, step=None) -> None:
        """Load `example`, compute synchronously and put the player at `step` (default: the end)."""
        if example:
            self.editor.setPlainText(load_example(example))
            self.overrides = {}
        self._debounce.stop()
        self.compute_now()  # the first run pays for torch's lazy start-up; show a warm timing
        result = self.compute_now()
        if not result.ok:
            return
        n = self.player.length
        k = n if step is None else max(0, min(int(step), n))
        self.player.set_step(k, force=True)
        event = self.graph.graph_scene.current_event()
        target = event[1] if event else next(iter(result.trace.nodes))
        if event and event[0] == "backward":
            # show the node whose gradient was just produced: the input of the op the player is on
            node = result.trace.nodes[event[1]]
            inputs = [i for i in node.inputs if result.trace.nodes[i].grad is not None]
            target = inputs[0] if inputs else event[1]
        self.graph.select(target)

    def menu_actions(self) -> list[QAction]:
        """Actions for the main window's Expression menu (keys and texts from the one table)."""
        if getattr(self, "_menu_actions", None) is None:
            self._menu_actions = actions.build(self, {
                "expression.run": self.run_program,
                "player.rewind": self.player.reset,
                "expression.descent_step": lambda: self.descent_step(self.learning.lr.value()),
                "expression.backward_again": self.backward_again,
            })
        return list(self._menu_actions)

    def descent_step(self, lr: float) -> None:
        """One gradient descent step on every param, then recompute (the loss goes into the plot)."""
        if self.result is None or not self.result.ok:
            return
        self.overrides = ec.descent_step(self.result, lr)
        self._submit(self.result.source, dict(self.overrides), "descent")

    def backward_again(self) -> None:
        """Call backward once more without zeroing: show each param's .grad after every call."""
        if self.result is None or not self.result.ok:
            return
        self._accumulate += 1
        try:
            history = ec.accumulated_grads(self.result, self._accumulate)
        except Exception as exc:  # show the problem; never leave a traceback to the user
            self.learning.accum_label.setText(f"could not run backward again: {exc}")
            return
        self.learning.show_accumulation(history)

    def shutdown(self) -> None:
        """Stop timers and the worker thread (the window is closing)."""
        self._debounce.stop()
        self.player.pause()
        self._generation += 1
        self._executor.shutdown(wait=True, cancel_futures=True)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the canvas and the editor."""
        self.graph.set_theme(theme)
        self.editor.set_theme(theme)
        self.learning.set_theme(theme)

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
        self.error_label = QLabel("")
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        self.run_button = QPushButton(f"Run  ({actions.key_text('expression.run')})")
        self.run_button.setObjectName("runButton")
        actions.describe_button(self.run_button, "expression.run")
        self.run_button.clicked.connect(self.run_program)
        self.timing_label = QLabel("")
        self.timing_label.setObjectName("timingLabel")
        self.leaves = LeafEditor()
        self.leaves.sig_value_changed.connect(self._on_leaf_changed)
        self.learning = LearningBox()
        self.learning.sig_descent_requested.connect(self.descent_step)
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
        row.addWidget(self.timing_label, 1)
        lv.addLayout(row)
        lv.addWidget(self.leaves)
        lv.addWidget(self.learning)
        lv.addStretch(0)
        left_scroll = QScrollArea()
        left_scroll.setWidgetResizable(True)
        left_scroll.setWidget(left)
        left_scroll.setMinimumWidth(300)

        self.graph = GraphView()
        self.graph.sig_node_selected.connect(self._on_selected)
        self.graph.sig_graph_changed.connect(self._refresh_inspector)
        self.player = Player()
        self.player.sig_step_changed.connect(self._on_step)
        self.status = QLabel("")
        self.status.setObjectName("stepStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setToolTip("What the current step does, in words and numbers")
        center = QWidget()
        cv = QVBoxLayout(center)
        cv.setContentsMargins(0, 6, 0, 6)
        cv.addWidget(self.graph, 1)
        cv.addWidget(self.player)
        cv.addWidget(self.status)

        self.inspector = Inspector()
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left_scroll)
        split.addWidget(center)
        split.addWidget(self.inspector)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([330, 900, 300])
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._restore_step = None
        self._restore_selected = None
        buttons_keep_player_keys(self)

    def _submit(self, source: str, overrides: dict, reason: str) -> None:
        self._generation += 1
        gen = self._generation
        self._pending_reason = reason

        def job():
            try:
                result = ec.compute(source, overrides)
            except Exception as exc:  # an unexpected failure is shown, not raised in the worker
                result = ec.ComputeResult(source=source, overrides=overrides, error=f"internal error: {exc}")
            self._relay.sig_done.emit(gen, result)

        try:
            self._executor.submit(job)
        except RuntimeError:  # the executor is shut down: the window is closing
            pass

    def _on_done(self, gen: int, result: ec.ComputeResult) -> None:
        if gen != self._generation:
            return  # a newer request is on its way; this one is stale
        self._apply(result, self._pending_reason)

    def _apply(self, result: ec.ComputeResult, reason: str) -> None:
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
        previous = self.result
        same_program = previous is not None and previous.source == result.source
        self.result = result
        self._checks = None
        self._accumulate = 1
        self.learning.accum_label.setText("")
        self.timing_label.setText(f"traced in {result.elapsed_ms:.0f} ms"
                                  + (f"\n{result.note}" if result.note else ""))
        self.timing_label.setWordWrap(True)
        n_events = len(result.trace.forward_order) + len(result.trace.backward_order)
        keep_step = same_program and self.player.step < self.player.length
        step = self.player.step if keep_step else None
        if self._restore_step is not None:
            step, self._restore_step = self._restore_step, None
        self.graph.set_trace(result.trace, step=step, keep_view=same_program)
        self.player.set_length(n_events, step)
        self.leaves.set_params(ec.param_values(result))
        self.learning.set_available(bool(result.trace.backward_order) and bool(ec.param_values(result)))
        loss = _scalar(result.trace.nodes[result.trace.output_id].value)
        if reason == "descent" and loss is not None:
            self.learning.add_loss(loss)
        elif not same_program or not self.learning.losses or reason == "leaf":
            self.learning.reset_losses(loss)
        selected = self._restore_selected or (previous and self.graph.selected())
        self._restore_selected = None
        if selected and selected in result.trace.nodes:
            self.graph.select(selected)
        else:
            self._refresh_inspector()
        self.sig_computed.emit(result)

    def _on_leaf_changed(self, name: str, value) -> None:
        if self.result is None:
            return
        self.overrides = {**ec.param_values(self.result), **self.overrides, name: value}
        self._submit(self.result.source, dict(self.overrides), "leaf")

    def _on_step(self, k: int) -> None:
        self.graph.set_step(k)
        if self.result is not None and self.result.ok:
            self.status.setText(ec.describe_event(self.result.trace, k))
        self._refresh_inspector()

    def _on_selected(self, _node_id: str) -> None:
        self._refresh_inspector()

    def _refresh_inspector(self) -> None:
        if self.result is None or not self.result.ok:
            self.inspector.clear()
            return
        trace = self.result.trace
        self.inspector.set_summary(self._grad_summary())
        did = self.graph.selected()
        following = did is None or did not in trace.nodes
        if following:  # nothing selected: follow the node the player is on
            did = self._focus_of_step()
        if did is None:
            self.inspector.clear("Step the player or click a node in the graph to inspect it.")
            return
        node = trace.nodes[did]
        grad_at = self.graph.graph_scene.model.grad_at.get(did)
        show_grad = grad_at is not None and self.graph.step >= grad_at
        chain = ec.chain_rule_text(trace, did) if show_grad else ""
        check = None
        if node.kind == "param" and node.name and show_grad:
            if self._checks is None:
                try:
                    self._checks = ec.leaf_comparison(self.result)
                except Exception:  # a failed check must not hide the rest of the inspector
                    self._checks = {}
            check = self._checks.get(node.name)
        self.inspector.show_node(node, title=ec.node_text(trace, did), chain=chain, check=check,
                                 show_grad=show_grad)
        if following:
            self.inspector.follow_hint.setVisible(True)

    def _focus_of_step(self) -> str | None:
        """The node a step is about: the value just computed, or the gradient just produced."""
        event = self.graph.graph_scene.current_event()
        if event is None:
            return None
        direction, nid = event
        node = self.result.trace.nodes[nid]
        if direction == "backward" and node.inputs:
            receivers = [i for i in node.inputs if self.result.trace.nodes[i].grad is not None]
            return receivers[0] if receivers else nid
        return nid

    def _grad_summary(self) -> str:
        """dL/dp of every param, once the backward pass has produced it (else "not yet")."""
        trace = self.result.trace
        grad_at = self.graph.graph_scene.model.grad_at
        parts = []
        for nid, node in trace.nodes.items():
            if node.kind != "param" or not node.name:
                continue
            known = nid in grad_at and self.graph.step >= grad_at[nid] and node.grad is not None
            value = ec.snapshot_summary(node.grad) if known else "not yet"
            if known and node.grad.numel > 1:
                value = f"tensor {tuple(node.grad.shape)}, max |·| {ec.max_abs_text(node.grad)}"
            parts.append(f"{ec.d_of(trace, nid)} = {value}")
        return "   ".join(parts)


def _scalar(snap) -> float | None:
    try:
        v = float(snap.item())
    except (ValueError, AttributeError, TypeError):
        return None
    return v if math.isfinite(v) else None


def main(argv: list[str] | None = None) -> int:
    """Open the expression workspace alone in a window."""
    from explorer.ui.common.standalone import run_standalone

    return run_standalone(ExpressionPanel, "Autograd Explorer: expression", (1400, 820), argv)


if __name__ == "__main__":
    raise SystemExit(main())
