"""One training iteration, phase by phase: player, traced graph, phase list, status and parameters.

The iteration is recorded once by `NetSession.run_iteration` (torch does the work, the tracer watches);
this view only replays the recorded phases. Step 0 is the moment before `zero_grad()`; step k shows the
state after the k-th phase.
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

from explorer.core.nets import Iteration, NetSession, ParamState, Phase
from explorer.ui import theme as themes
from explorer.ui.network_params import ParamTable
from explorer.ui.network_worker import single_torch_thread
from explorer.ui.player import Player

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

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session: NetSession | None = None
        self.iteration: Iteration | None = None
        self._before: dict[str, ParamState] = {}
        self._graph_steps: list[int] = []

        self.player = Player()
        self.player.sig_step_changed.connect(self._show_step)
        self.next_button = QPushButton("Next iteration")
        self.next_button.setObjectName("networkNextIteration")
        self.next_button.setToolTip(
            "Run another iteration on the same batch (N): zero_grad, forward, loss, backward, step"
        )
        self.next_button.setFocusPolicy(Qt.NoFocus)
        self.next_button.clicked.connect(self.next_iteration)
        self.skip = QCheckBox("skip zero_grad")
        self.skip.setObjectName("networkSkipZeroGrad")
        self.skip.setToolTip("Leave optimizer.zero_grad() out of the next iteration. " + SKIP_EXPLANATION)
        self.skip.setFocusPolicy(Qt.NoFocus)
        self.skip.toggled.connect(self._on_skip)
        self.skip_note = QLabel("Takes effect from the next iteration (N). " + SKIP_EXPLANATION)
        self.skip_note.setObjectName("skipZeroGradNote")
        self.skip_note.setWordWrap(True)
        self.skip_note.hide()

        self.graph = _make_graph_view()
        self.phases = QListWidget()
        self.phases.setObjectName("networkPhaseList")
        self.phases.setToolTip("The phases of one training iteration; click one to jump to it.")
        self.phases.setFocusPolicy(Qt.NoFocus)
        self.phases.currentRowChanged.connect(lambda row: self.player.set_step(row))
        self.status = QLabel("")
        self.status.setObjectName("stepStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setMinimumHeight(48)
        self.params = ParamTable()
        self.total = QLabel("")
        self.total.setObjectName("paramTotal")
        self.total.setToolTip("Every element of every parameter tensor is one trainable number")
        self._layout()

    # -- public API ------------------------------------------------------------------------------

    def set_session(self, session: NetSession) -> None:
        """Show a new session and record its first iteration."""
        self.session = session
        self.next_iteration()

    def next_iteration(self) -> None:
        """Record one more iteration (zero_grad skipped if the switch is on) and rewind to its start."""
        if self.session is None:
            return
        self._before = self.session.param_states()
        with single_torch_thread():  # tiny tensors: extra threads only add spin-waits
            self.iteration = self.session.run_iteration(skip_zero_grad=self.skip.isChecked())
        self._fill_phase_list()
        self._graph_steps = self._map_graph_steps()
        if self.graph is not None:
            if self.iteration.trace is not None:
                self.graph.set_trace(self.iteration.trace, step=0)
                self.graph.show()
            else:
                self.graph.hide()
        self.player.set_length(len(self.iteration.phases), step=0)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme of explorer.ui.theme."""
        self.skip_note.setStyleSheet(
            f"background: {theme['error_bg']}; color: {theme['error']}; padding: 4px; border-radius: 4px;"
        )
        if self.graph is not None and hasattr(self.graph, "set_theme"):
            self.graph.set_theme(theme)
        if self.iteration is not None:
            self._show_step(self.player.step)  # the status line's grey heading

    def phase(self, k: int | None = None) -> Phase | None:
        """The phase shown at step k (default: the current step); None at step 0."""
        k = self.player.step if k is None else k
        if self.iteration is None or k <= 0:
            return None
        return self.iteration.phases[k - 1]

    def states_at(self, k: int) -> dict[str, ParamState]:
        """Every parameter as the table shows it at step k."""
        phase = self.phase(k)
        return self._before if phase is None else phase.params

    # -- private -----------------------------------------------------------------------------------

    def _layout(self) -> None:
        # the player gets the whole width for its timeline; the iteration controls sit with the phases
        controls = QHBoxLayout()
        controls.addWidget(self.player, 1)
        side = QWidget()
        side_box = QVBoxLayout(side)
        side_box.setContentsMargins(0, 0, 0, 0)
        iteration_row = QHBoxLayout()
        iteration_row.addWidget(self.next_button)
        iteration_row.addWidget(self.skip)
        iteration_row.addStretch(1)
        side_box.addLayout(iteration_row)
        side_box.addWidget(self.phases, 1)
        top = QWidget()
        top_box = QVBoxLayout(top)
        top_box.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Horizontal)
        if self.graph is not None:
            split.addWidget(self.graph)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([700, 260])
        top_box.addWidget(split, 1)
        top_box.addWidget(self.status)
        vertical = QSplitter(Qt.Vertical)
        vertical.addWidget(top)
        table = QWidget()
        table_box = QVBoxLayout(table)
        table_box.setContentsMargins(0, 0, 0, 0)
        table_box.addWidget(self.params, 1)
        table_box.addWidget(self.total)
        vertical.addWidget(table)
        vertical.setStretchFactor(0, 3)
        vertical.setStretchFactor(1, 2)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(controls)
        box.addWidget(self.skip_note)
        box.addWidget(vertical, 1)

    def _on_skip(self, on: bool) -> None:
        self.skip_note.setVisible(on)

    def _fill_phase_list(self) -> None:
        self.phases.blockSignals(True)
        self.phases.clear()
        start = QListWidgetItem("·  before the iteration")
        start.setToolTip("The parameters as they were before zero_grad()")
        self.phases.addItem(start)
        for phase in self.iteration.phases:
            item = QListWidgetItem(f"{_PHASE_ICONS.get(phase.kind, '·')}  {phase.title}")
            item.setToolTip(f"{_PHASE_HELP.get(phase.kind, '')}<br><br>{phase.text}")
            self.phases.addItem(item)
        self.phases.blockSignals(False)

    def _map_graph_steps(self) -> list[int]:
        """For each player step, the GraphView step that shows the same moment."""
        tr = self.iteration.trace if self.iteration else None
        if tr is None:
            return []
        n_fwd, n_bwd = len(tr.forward_order), len(tr.backward_order)
        fpos = {nid: i + 1 for i, nid in enumerate(tr.forward_order)}
        bpos = {nid: n_fwd + i + 1 for i, nid in enumerate(tr.backward_order)}
        steps = [0]
        for phase in self.iteration.phases:
            if phase.kind == "zero_grad":
                steps.append(0)
            elif phase.kind == "forward":
                own = [
                    fpos[nid]
                    for nid, node in tr.nodes.items()
                    if nid in fpos and _inside(getattr(node, "module", None), phase.module)
                ]
                steps.append(max(own) if own else steps[-1])
            elif phase.kind == "loss":
                steps.append(n_fwd)
            elif phase.kind == "backward":
                steps.append(bpos.get(phase.node_id, steps[-1]))
            else:
                steps.append(n_fwd + n_bwd)
        return steps

    def _show_step(self, k: int) -> None:
        if self.iteration is None:
            return
        phase = self.phase(k)
        self.params.show_states(self.states_at(k), highlight=phase.param if phase else None)
        self.total.setText(
            f"Total: <b>{self.params.total():,}</b> trainable parameters in {self.params.rowCount()} tensors"
        )
        self.phases.blockSignals(True)
        self.phases.setCurrentRow(k)
        self.phases.blockSignals(False)
        total = len(self.iteration.phases)
        head = f"Iteration {self.iteration.index} · step {k}/{total}"
        if phase is None:
            skipped = " with zero_grad skipped" if self.iteration.skip_zero_grad else ""
            body = f"Ready to run one training iteration{skipped}. Press Step (→) or Play (Space)."
        else:
            body = _phase_html(phase.title, phase.text)
        if self.iteration.trace_error:
            body += f"<br><i>The graph could not be traced ({_html(self.iteration.trace_error)}).</i>"
        muted = themes.get_theme()["muted"]
        self.status.setText(f"<span style='color:{muted}'>{head}</span><br>{body}")
        if self.graph is not None and self._graph_steps:
            self.graph.set_step(self._graph_steps[k])
            if phase is not None and phase.node_id:
                self.graph.select(phase.node_id)
        self.sig_phase_changed.emit(k)


def _inside(module: str | None, path: str | None) -> bool:
    return bool(module) and bool(path) and (module == path or module.startswith(path + "."))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _make_graph_view():
    """The shared graph canvas, or None when it cannot be imported (the phase list then suffices)."""
    try:
        from explorer.ui.graph_view import GraphView
    except ImportError:
        return None
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
