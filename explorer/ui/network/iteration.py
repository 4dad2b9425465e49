"""One training iteration, phase by phase: player, traced graph, phase list, status and parameters.

The iteration is recorded once by `NetSession.run_iteration` (torch does the work, the tracer watches)
on the one background Worker; this view only replays the recorded phases it hands back by a signal.
While a recording is in flight the player and buttons are disabled and the status says so; a newer
request supersedes an older one (the older one's result is never shown). Step 0 is the moment before
`zero_grad()`; step k shows the state after the k-th phase.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.mlp.network import Iteration, NetSession, ParamState, Phase
from explorer.core.speed import single_torch_thread
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import FixedLinesLabel, breakable, keep_space_when_hidden
from explorer.ui.common.worker import Worker
from explorer.ui.graph.inspector import Inspector
from explorer.ui.graph.player import Player
from explorer.ui.network.params import ParamTable

STATUS_LINES = 5  # the phase line under the graph: a heading and up to four lines of text
SKIP_EXPLANATION = (
    "Without zero_grad(), backward() adds each new gradient to the one already in .grad. The next "
    "step then uses the sum of this and all earlier gradients: for the same batch it is twice as "
    "large, after n iterations n times, and it still points the way the old weights needed. The steps "
    "grow and go stale, so training overshoots and can diverge."
)
_PHASE_ICONS = {"zero_grad": "∅", "forward": "→", "loss": "L", "backward": "←", "step": "Δ"}
_PHASE_HELP = {
    "zero_grad": "optimizer.zero_grad() clears every .grad",
    "forward": "the forward pass computes each layer's output from the one before",
    "loss": "the loss compares the output with the target",
    "backward": "loss.backward() sends dL/d(...) back through the graph in autograd's engine order",
    "step": "optimizer.step() moves each parameter using its .grad",
}


class IterationView(QWidget):
    """The phase player for one iteration of a NetSession."""

    sig_phase_changed = Signal(int)
    """The player moved to step k (0 = before the iteration)."""

    sig_recorded = Signal(object)
    """A recorded Iteration is now shown (at step 0)."""

    sig_record_failed = Signal(str)
    """The newest recording raised; the message is one line for the form's error label."""

    sig_busy_changed = Signal(bool)
    """A recording started (True) or the last pending one is done (False)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session: NetSession | None = None
        self._iteration: Iteration | None = None
        self._worker = Worker(self)
        self._worker.sig_done.connect(self._on_recorded)
        self._worker.sig_failed.connect(lambda m: self._show_error(f"could not run this network: {m}"))
        self._worker.sig_busy_changed.connect(self._set_busy)
        self._busy = False
        self._before: dict[str, ParamState] = {}
        self._graph_steps: list[int] = []

        self.player = Player()
        self.player.sig_step_changed.connect(self._show_step)
        self.next_button = QPushButton("Next iteration")
        self.next_button.setObjectName("networkNextIteration")
        actions.describe_button(self.next_button, "network.next_iteration")
        self.next_button.setFocusPolicy(Qt.NoFocus)
        self.next_button.clicked.connect(self.next_iteration)
        self.skip = QCheckBox("skip zero_grad")
        self.skip.setObjectName("networkSkipZeroGrad")
        self.skip.setToolTip("Leave optimizer.zero_grad() out of the next iteration. " + SKIP_EXPLANATION)
        self.skip.setFocusPolicy(Qt.NoFocus)
        self.skip.toggled.connect(self._on_skip)
        # short beside the phases (the graph keeps its height); the whole explanation is its tooltip
        self.skip_note = QLabel(f"Takes effect from the next iteration "
                                f"({actions.key_text('network.next_iteration')}): without zero_grad(), "
                                "each backward() adds to .grad.")
        self.skip_note.setToolTip(SKIP_EXPLANATION)
        self.skip_note.setObjectName("skipZeroGradNote")
        self.skip_note.setWordWrap(True)
        keep_space_when_hidden(self.skip_note)  # appearing, it moves nothing below it
        self.skip_note.hide()

        self.graph = _make_graph_view()
        self.inspector = Inspector()  # the same inspector as the expression workspace's
        self.inspector.setObjectName("networkInspector")
        self.inspector.follow(self.graph)
        self.phases = QListWidget()
        self.phases.setObjectName("networkPhaseList")
        self.phases.setToolTip("The phases of one training iteration; click one to jump to it.")
        self.phases.setFocusPolicy(Qt.NoFocus)
        # a phase ("forward: fc1 (Linear)") wraps in the narrow column instead of running off its edge
        self.phases.setWordWrap(True)
        self.phases.setResizeMode(QListWidget.Adjust)
        self.phases.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.phases.currentRowChanged.connect(lambda row: self.player.set_step(row))
        # A fixed height (a heading and four lines, in the font the style sheet gives it): a longer phase
        # text never moves the graph or the buttons under the cursor, and the longest one still fits
        self.status = FixedLinesLabel("", lines=STATUS_LINES)
        self.status.setObjectName("stepStatus")
        self.status.setStyleSheet(themes.label_style("stepStatus", themes.get_theme()))
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.params = ParamTable()
        self.total = QLabel("")
        self.total.setObjectName("paramTotal")
        self.total.setToolTip("Every element of every parameter tensor is one trainable number")
        self._layout()

    # -- public API ------------------------------------------------------------------------------

    @property
    def iteration(self) -> Iteration | None:
        """The iteration shown; reading it while a recording is in flight waits for that recording."""
        self.wait_recorded()
        return self._iteration

    def set_session(self, session: NetSession, iterations: int = 1) -> None:
        """Show a new session and record its first `iterations` iterations (on the worker), showing the last.

        The parameter table shows the new network at once; a recording still running for an older session
        is cancelled and never shown.
        """
        self.session = session
        self._iteration = None
        self._before = session.param_states()  # nothing runs on this new session yet
        self._graph_steps = []
        self._fill_phase_list()
        self._show_params(self._before, None)
        self._request(max(1, iterations))

    def next_iteration(self) -> None:
        """Record one more iteration (zero_grad skipped if the switch is on) and rewind to its start."""
        if self.session is None:
            return
        self._request(1)

    def is_recording(self) -> bool:
        """Whether a recording is running or waiting to run."""
        return self._worker.is_busy()

    def wait_recorded(self) -> None:
        """Block until every requested recording is done and the newest is shown (screenshots, tests)."""
        self._worker.wait()

    def stop(self) -> None:
        """Cancel recordings and wait for the running one without showing it (shutdown)."""
        self._worker.shutdown()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme of explorer.ui.common.theme."""
        self.skip_note.setStyleSheet(
            f"background: {theme['error_bg']}; color: {theme['error']}; padding: 4px; border-radius: 4px;"
        )
        self.graph.set_theme(theme)
        if self._iteration is not None:
            self._show_step(self.player.step)  # the status line's grey heading

    def phase(self, k: int | None = None) -> Phase | None:
        """The phase shown at step k (default: the current step); None at step 0."""
        self.wait_recorded()
        return self._phase(k)

    def states_at(self, k: int) -> dict[str, ParamState]:
        """Every parameter as the table shows it at step k."""
        self.wait_recorded()
        return self._states_at(k)

    # -- private -----------------------------------------------------------------------------------

    def _phase(self, k: int | None = None) -> Phase | None:
        k = self.player.step if k is None else k
        if self._iteration is None or k <= 0:
            return None
        return self._iteration.phases[k - 1]

    def _states_at(self, k: int) -> dict[str, ParamState]:
        phase = self._phase(k)
        return self._before if phase is None else phase.params

    def _request(self, count: int) -> None:
        """Record `count` iterations of the current session on the worker (the switch read now).

        Iterations before the last one run with zero_grad; the last follows the switch.
        """
        session, skip = self.session, self.skip.isChecked()

        def record(_job):
            with single_torch_thread():  # tiny tensors: extra threads only add spin-waits
                for _ in range(count - 1):
                    session.run_iteration()
                before = session.param_states()
                return before, session.run_iteration(skip_zero_grad=skip)

        self._worker.submit(record)

    def _on_recorded(self, result) -> None:
        before, iteration = result
        self._show_iteration(before, iteration)
        self.sig_recorded.emit(iteration)

    def _show_iteration(self, before: dict[str, ParamState], iteration: Iteration) -> None:
        self._before = before
        self._iteration = iteration
        self._fill_phase_list()
        self._graph_steps = list(iteration.graph_steps)  # player step -> graph step, from the Timeline
        self.graph.set_trace(iteration.trace, step=0)
        self.player.set_length(len(iteration.phases), step=0)

    def _show_error(self, message: str) -> None:
        self.status.setText(f"<i>{_html(message)}</i>")
        self.sig_record_failed.emit(message)

    def _set_busy(self, on: bool) -> None:
        """While recording: player, phase list and Next disabled, a busy cursor and a note."""
        if on == self._busy:
            return
        self._busy = on
        if on:
            self.player.pause()
            self.setCursor(Qt.BusyCursor)
            self.status.setText("<i>Recording the next training iteration…</i>")
        else:
            self.unsetCursor()
        for widget in (self.player, self.phases, self.next_button):
            widget.setEnabled(not on)
        self.sig_busy_changed.emit(on)

    def _show_params(self, states: dict[str, ParamState], highlight: str | None) -> None:
        self.params.show_states(states, highlight=highlight)
        self.total.setText(
            f"Total: <b>{self.params.total():,}</b> trainable parameters in {self.params.rowCount()} tensors"
        )

    def _layout(self) -> None:
        # the player gets the whole width for its timeline; the iteration controls sit with the phases
        controls = QHBoxLayout()
        controls.addWidget(self.player, 1)
        side = QWidget()
        side_box = QVBoxLayout(side)
        side_box.setContentsMargins(0, 0, 0, 0)
        # the button over the check box: a narrow column, so the graph beside it gets the width
        iteration_row = QHBoxLayout()
        iteration_row.addWidget(self.next_button)
        iteration_row.addStretch(1)
        side_box.addLayout(iteration_row)
        side_box.addWidget(self.skip)
        side_box.addWidget(self.skip_note)
        side_box.addWidget(self.phases, 1)
        top = QWidget()
        top_box = QVBoxLayout(top)
        top_box.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Horizontal)
        split.setObjectName("iterationGraphSplitter")  # sizes saved with the window (main_window)
        split.addWidget(self.graph)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setCollapsible(0, False)
        split.setSizes([800, 170])
        top_box.addWidget(split, 1)
        top_box.addWidget(self.status)
        vertical = QSplitter(Qt.Vertical)
        vertical.setObjectName("iterationSplitter")
        vertical.addWidget(top)
        table = QWidget()
        table_box = QVBoxLayout(table)
        table_box.setContentsMargins(0, 0, 0, 0)
        table_box.addWidget(self.params, 1)
        table_box.addWidget(self.total)
        bottom = QSplitter(Qt.Horizontal)
        bottom.setObjectName("iterationTableSplitter")
        bottom.addWidget(table)
        bottom.addWidget(self.inspector)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        bottom.setSizes([780, 400])
        vertical.addWidget(bottom)
        vertical.setStretchFactor(0, 3)
        vertical.setStretchFactor(1, 1)
        vertical.setCollapsible(0, False)
        vertical.setSizes([760, 220])  # the graph first: at 1280x800 it still draws its values
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(controls)
        box.addWidget(vertical, 1)

    def _on_skip(self, on: bool) -> None:
        self.skip_note.setVisible(on)

    def _fill_phase_list(self) -> None:
        self.phases.blockSignals(True)
        self.phases.clear()
        start = QListWidgetItem("·  before the iteration")
        start.setToolTip("The parameters as they were before zero_grad()")
        self.phases.addItem(start)
        for phase in self._iteration.phases if self._iteration is not None else ():
            # a long grad_fn name ("BinaryCrossEntropyBackward0") breaks at its capitals, never "…"
            item = QListWidgetItem(breakable(f"{_PHASE_ICONS.get(phase.kind, '·')}  {phase.title}"))
            item.setToolTip(f"{_PHASE_HELP.get(phase.kind, '')}<br><br>{phase.text}")
            self.phases.addItem(item)
        self.phases.blockSignals(False)

    def _show_step(self, k: int) -> None:
        if self._iteration is None:
            return
        phase = self._phase(k)
        self._show_params(self._states_at(k), phase.param if phase else None)
        self.phases.blockSignals(True)
        self.phases.setCurrentRow(k)
        self.phases.blockSignals(False)
        total = len(self._iteration.phases)
        head = f"Iteration {self._iteration.index} · step {k}/{total}"
        if phase is None:
            skipped = " with zero_grad skipped" if self._iteration.skip_zero_grad else ""
            body = f"Ready to run one training iteration{skipped}. Press Step (→) or Play (Space)."
        else:
            body = _phase_html(phase.title, phase.text)
        muted = themes.get_theme()["muted"]
        self.status.setText(f"<span style='color:{muted}'>{head}</span><br>{body}")
        self.status.setToolTip(f"<span style='color:{muted}'>{head}</span><br>{body}")
        if self._graph_steps:
            self.graph.set_step(self._graph_steps[k])
            if phase is not None and phase.node_id:
                self.graph.select(phase.node_id)
            else:
                self.inspector.show_selection(self.graph)  # the values it shows depend on the step
        self.sig_phase_changed.emit(k)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _make_graph_view():
    """The shared graph canvas."""
    from explorer.ui.graph.view import GraphView

    view = GraphView()
    view.setMinimumHeight(220)
    return view


def _phase_html(title: str, text: str) -> str:
    """The phase's title in bold, then its text without repeating the title.

    "AccumulateGrad: fc2.weight" + "AccumulateGrad: fc2.weight.grad = …" and "backward: ReluBackward0"
    + "ReluBackward0 for relu …" each say their name once.
    """
    tail = title.split(": ", 1)[-1]
    for prefix in (title, tail):
        if prefix and text.startswith(prefix):
            return f"<b>{_html(title)}</b>{_html(text[len(prefix):])}"
    return f"<b>{_html(title)}</b> — {_html(text)}"
