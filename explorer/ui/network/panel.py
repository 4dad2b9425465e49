"""The network workspace: build a small network, step through one training iteration, train on toy data.

`NetworkPanel` puts the spec form (left) beside two tabs: "One iteration" (phase player over the traced
graph and the parameter table) and "Train on toy data" (dataset, train/pause/reset, decision boundary
and live curves). Open it alone with `python -m explorer.ui.network.panel`.
"""

from __future__ import annotations

import dataclasses
import importlib

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QSplitter, QTabWidget, QWidget

from explorer.core.mlp.spec import NetSpecError
from explorer.core.workspaces.network import DatasetModel, NetworkWorkspace
from explorer.ui.common import actions, loading
from explorer.ui.common import theme as themes
from explorer.ui.common.late_core import LateCore
from explorer.ui.common.loading import TorchWait
from explorer.ui.common.slices import Slices
from explorer.ui.common.step_sync import PlotStepPicker, StepSync
from explorer.ui.graph.player import PLAYER_KEYS, buttons_keep_player_keys
from explorer.ui.network.form import CUSTOM, SpecForm

ITERATION_TAB, TRAIN_TAB = 0, 1
# What the two tabs compute with (torch): imported on the panel's Worker when the panel is built before
# torch (the main window's loader imports them too, with the rest of the workspace's core). torch._dynamo:
# torch's first optimizer imports it (seconds), and showing the network makes one on the GUI thread.
CORE_MODULES = ("explorer.core.mlp.network", "explorer.core.mlp.health", "explorer.core.mlp.toydata",
                "explorer.core.mlp.landscape", "torch._dynamo")


def load_core() -> None:
    """Import CORE_MODULES (on a Worker: torch's import takes seconds)."""
    for name in CORE_MODULES:
        importlib.import_module(name)



class NetworkPanel(QWidget):
    """The network workspace (a tab of the main window, or a window of its own)."""

    sig_computed = Signal(object)
    """The first iteration recorded after the panel was built before torch (an Iteration, or the error
    message when it could not be recorded): the start-up probe times it."""

    sig_tabs_built = Signal()
    """The two tabs were built after the panel (it was built before torch): the main window restores
    their splitters' saved widths."""

    def __init__(self, parent=None, workspace: NetworkWorkspace | None = None, sliced: bool = False):
        """`sliced`: build over several event-loop turns (`building`; the main window installs the panel
        on `building.sig_done`); otherwise the panel is complete when the constructor returns.

        Before torch is imported the panel is built without its two tabs (they compute with torch): the
        form takes edits, the tabs' place says "Loading PyTorch…" (`graph_wait`) while the panel's Worker
        imports the core modules; the tabs are built then (`core`, a LateCore), showing the state as it is.
        """
        super().__init__(parent)
        self.setObjectName("networkPanel")
        self.iteration = None  # IterationView and TrainView: made once torch is in (`ensure_core`)
        self.train = None
        self.core: LateCore | None = None  # the tabs' import and late build (built before torch)
        self._first_record = False  # sig_computed is owed for the first recording (built before torch)
        self.building = Slices.run(self._build(workspace), self, sliced)

    def finish_building(self) -> None:
        """Build whatever is left now (a panel built in slices becomes complete at once); the tabs that
        wait for torch stay waiting (`ensure_core` waits for them)."""
        self.building.finish()

    def ensure_core(self, timeout: float = 600.0) -> None:
        """Wait for torch's import and build the two tabs now (screenshots, lessons, tests)."""
        self.building.finish()
        if self.core is not None:
            self.core.finish(timeout)

    def wait_computed(self, timeout: float = 600.0) -> bool:
        """Process events until the tabs are built and the iteration in flight is shown; True when idle."""
        self.ensure_core(timeout)
        if self.iteration is None:
            return False
        self.iteration.wait_recorded()
        return not self.iteration.is_recording()

    def _build(self, workspace: NetworkWorkspace | None):
        """The construction, in pieces that each take one event-loop turn when built in slices."""
        # The step every view of a toy run shows, chosen on the loss curve (ui/common/step_sync.py).
        self.step_sync = StepSync(self)
        self.workspace = workspace or NetworkWorkspace()
        self._syncing = False  # the view is writing the model itself: do not echo it back
        self._restore_step: int | None = None
        self._restore_selected: str | None = None  # the card to select once the iteration is shown
        self.form = SpecForm()
        light = not loading.torch_ready()
        if not light:  # before torch the rest is light (~0.1 s): one piece, no turn for torch's import
            yield       # to hold the GIL in between
        self.tabs = QTabWidget()
        self.tabs.setObjectName("networkTabs")
        self.graph_wait = TorchWait(
            self.tabs, "One training iteration's graph, its player and the training on toy data appear "
            "once it is in.", "You can edit the network meanwhile: it runs as soon as PyTorch is ready.",
            "graphLoadingNote")
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(262)  # the form whole (no sideways scrolling)
        scroll.setMaximumWidth(340)
        split = QSplitter(Qt.Horizontal)
        split.setObjectName("networkSplitter")  # sizes saved with the window (main_window)
        split.addWidget(scroll)
        split.addWidget(self.graph_wait)
        split.setStretchFactor(1, 1)
        split.setCollapsible(1, False)
        split.setSizes([262, 1000])
        box = QHBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(split)
        self._actions = self._make_actions()
        self.addActions(self._actions)
        self.form.sig_spec_changed.connect(self._on_form_changed)
        self._subscribe()
        self._show_state()
        if not light:  # torch is in: the tabs now, as part of this construction
            yield
            yield from self._build_core()
            return
        self._first_record = True
        self.core = LateCore(self, load_core, self._build_core)
        self.core.sig_failed.connect(self._core_failed)
        self.core.sig_built.connect(self._core_built_late)
        self.core.request_after(None)  # from the next turn: a panel shut down at once starts no import

    def _core_failed(self, message: str) -> None:
        self.graph_wait.note.setText(f"<p><b>The network's tabs could not be opened</b></p><p>{message}</p>")
        self.graph_wait.note.unsetCursor()

    def _build_core(self):
        """The two tabs (they compute with torch), in pieces; then the state as it is now is shown."""
        from explorer.ui.network.iteration import IterationView

        self.iteration = IterationView()
        yield
        import pyqtgraph  # noqa: F401 - the plots' library (~0.4 s of CPU): an event-loop turn of its own

        yield
        from explorer.ui.network.training import TrainView

        self.train = TrainView(later=True)
        yield from self.train.build_steps()
        yield
        self.tabs.addTab(self.iteration, "One iteration")
        self.tabs.addTab(self.train, "Train on toy data")
        self.tabs.setTabToolTip(ITERATION_TAB, "Step through zero_grad, forward, loss, backward and step")
        self.tabs.setTabToolTip(TRAIN_TAB, "Train the network on a 2-D dataset and watch it learn")
        self.train.sig_use_toy_preset.connect(self._use_toy_preset)
        self.train.lr_test.sig_use_lr.connect(self.use_lr)
        self.iteration.sig_record_failed.connect(self.form.show_error)
        self.iteration.sig_recorded.connect(self._on_recorded)
        self.iteration.sig_record_failed.connect(self._on_record_failed)
        self.iteration.player.sig_step_changed.connect(self._on_player_step)
        self.iteration.graph.sig_node_selected.connect(self._on_node_selected)
        self.iteration.skip.toggled.connect(lambda on: self._write(skip_zero_grad=on))
        self.tabs.currentChanged.connect(lambda i: self._write(tab=i))
        self.train.sig_dataset_changed.connect(lambda d: self._write(dataset=DatasetModel.model_validate(d)))
        self.train.bind(self.workspace)
        # Hovering or clicking the loss curve moves the step cursors of the curves and the layer health.
        self.step_picker = PlotStepPicker(self.train.loss_plot, self.step_sync, self.train.step_at)
        self.step_sync.register(self.train)
        self.step_sync.register(self.train.health)
        self.step_sync.register(self.train.landscape)
        self.set_theme(themes.get_theme())
        buttons_keep_player_keys(self)
        themes.style_labels(self, themes.get_theme())
        self._show_state()
        self.graph_wait.done()

    def _core_built_late(self) -> None:
        """The tabs were built after the panel (torch loading then): tell the window and the probe."""
        self.sig_tabs_built.emit()
        if self._first_record and not self.iteration.is_recording():  # the spec is refused (the form says)
            self._first_record = False
            self.sig_computed.emit(None)

    # -- panel protocol ----------------------------------------------------------------------------

    def menu_actions(self) -> list[QAction]:
        """Player and training actions with their shortcuts, for the main window's Network menu."""
        return list(self._actions)

    def prepare_screenshot(
        self, preset: str | None = None, example: str | None = None, step: int | None = None
    ):
        """Headless set-up: select `preset`; with `step`, show the iteration at that phase step.

        Without a step, a 2-D network is shown on the training tab after a short training run.
        """
        del example
        self.ensure_core()
        if preset:
            try:
                self.workspace.set_preset(preset)
            except NetSpecError as exc:
                # the app turns this into one "error: ..." line and exit status 2
                raise ValueError(str(exc)) from exc
        self.iteration.wait_recorded()  # the worker's iteration, shown before the picture is taken
        if step is not None or self.form.spec().input_size != 2:
            self.tabs.setCurrentIndex(ITERATION_TAB)
            length = self.iteration.player.length
            self.iteration.player.set_step(length if step is None else max(0, min(step, length)))
        else:
            self.tabs.setCurrentIndex(TRAIN_TAB)
            self.train.train_blocking(300)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the graph, notes and plots (called by the main window on a theme switch)."""
        if self.iteration is not None:  # not yet built: built in the theme of the moment
            self.iteration.set_theme(theme)
            self.train.set_theme(theme)

    def shutdown(self) -> None:
        """Stop the training thread, the recording thread and the player (and never build the tabs if
        torch is still loading)."""
        if self.core is not None:
            self.core.stop()
        if self.iteration is not None:
            self.iteration.player.pause()
            self.iteration.stop()
            self.train.stop()

    # -- behaviour -----------------------------------------------------------------------------------

    def apply_spec(self) -> None:
        """Make the form's spec the workspace's (the form's fields are the user's edits)."""
        self._on_form_changed()

    # -- model <-> view -------------------------------------------------------------------------------

    def _subscribe(self) -> None:
        """The workspace's events drive the widgets (a lesson, a test or a session sets a field)."""
        ev = self.workspace.state.events
        for name in ("spec", "preset", "iterations"):
            getattr(ev, name).connect(lambda _v: self._show_state())
        ev.skip_zero_grad.connect(self._show_skip)
        ev.tab.connect(self._show_tab)
        ev.step.connect(self._show_model_step)
        ev.dataset.connect(lambda d: self.train is not None and self.train.show_dataset(d.model_dump()))

    def _write(self, **fields) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.workspace.state.update(fields)
        finally:
            self._syncing = False

    def _show_state(self) -> None:
        """A new spec, preset or iteration count: the form shows it, the player records it again (once the
        tabs are built: before, the form only)."""
        if self._syncing:
            return
        state = self.workspace.state
        spec = self.workspace.spec()
        self._syncing = True
        try:
            self.form.set_spec(spec, preset=state.preset)
            if self.iteration is not None:
                self._show_skip(state.skip_zero_grad)
                self.tabs.setCurrentIndex(state.tab)
                self.train.show_dataset(state.dataset.model_dump())
        finally:
            self._syncing = False
        if self.iteration is None:
            try:
                spec.validate()
            except NetSpecError as exc:
                self.form.show_error(str(exc))
            else:
                self.form.show_error(None)
            return
        self._restore_step = state.step
        self._restore_selected = state.selected
        try:
            from explorer.core.mlp.network import NetSession

            session = NetSession(spec)
            self.iteration.set_session(session, iterations=state.iterations)
        except NetSpecError as exc:
            self.form.show_error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
            self.form.show_error(f"could not run this network: {type(exc).__name__}: {exc}")
            return
        self.form.show_error(None)
        self.train.set_spec(spec)

    def _show_tab(self, i: int) -> None:
        if self.tabs.count() and self.tabs.currentIndex() != i:
            self.tabs.setCurrentIndex(i)

    def _show_skip(self, on: bool) -> None:
        if self.iteration is not None and self.iteration.skip.isChecked() != on:
            self.iteration.skip.setChecked(on)

    def _on_form_changed(self) -> None:
        """The user edited the form or picked a preset."""
        if self._syncing:
            return
        preset = self.form.preset_name()
        try:
            if preset != CUSTOM:
                self.workspace.set_preset(preset)
            else:
                self.workspace.set_spec(self.form.spec())
        except NetSpecError as exc:
            self.form.show_error(str(exc))

    def _on_record_failed(self, message: str) -> None:
        if self._first_record:
            self._first_record = False
            self.sig_computed.emit(message)

    def _on_recorded(self, iteration) -> None:
        step, self._restore_step = self._restore_step or 0, None
        self._syncing = True
        try:
            self.workspace.show(iteration, step)
        finally:
            self._syncing = False
        if step:
            self.iteration.player.set_step(step)
        selected, self._restore_selected = self._restore_selected, None
        graph = self.iteration.graph
        if selected and selected in graph.graph_scene.cards and graph.selected() != selected:
            graph.select(selected)  # the card the user had open, with its inspector
        if self._first_record:
            self._first_record = False
            self.sig_computed.emit(iteration)

    def _on_node_selected(self, display_id: str) -> None:
        if not self.iteration.is_recording():
            self._write(selected=display_id or None)

    def _on_player_step(self, k: int) -> None:
        if self.workspace.iteration is not None:
            self._write(step=k)

    def _show_model_step(self, k: int) -> None:
        if self.iteration is None:
            return
        if not self._syncing and self.iteration.player.step != k and not self.iteration.is_recording():
            self.iteration.player.set_step(k)

    def use_lr(self, lr: float) -> None:
        """Make `lr` the network's learning rate (the lr range test's "Use it"); the form follows."""
        try:
            self.workspace.set_spec(dataclasses.replace(self.workspace.spec(), lr=float(lr)))
        except NetSpecError as exc:
            self.form.show_error(str(exc))

    def _use_toy_preset(self) -> None:
        self.workspace.set_preset("toy-2d")

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Space/Right/Left/Home/End drive the phase player on the iteration tab."""
        if (
            self.iteration is not None
            and self.tabs.currentIndex() == ITERATION_TAB
            and event.key() in PLAYER_KEYS
            and not self.iteration.is_recording()
            and self.iteration.player.handle_key(event.key())
        ):
            event.accept()
            return
        super().keyPressEvent(event)

    def _next_iteration(self) -> None:
        if self.iteration is not None:
            self.iteration.next_iteration()

    def _when_recorded(self, name: str):
        """The player's method `name`, ignored while an iteration is being recorded (the player is busy
        then) or before the tabs are built (torch loading)."""

        def guarded() -> None:
            if self.iteration is not None and not self.iteration.is_recording():
                getattr(self.iteration.player, name)()

        return guarded

    def _on_tabs(self, slot):
        """`slot` of the built tabs (`slot(panel)`), ignored before they are (torch loading)."""

        def guarded() -> None:
            if self.iteration is not None:
                slot(self)

        return guarded

    def _make_actions(self) -> list[QAction]:
        # keys and texts from the one table; Space/Right/... are the shared player keys, scoped to this
        # panel, and keys a focused input uses itself never reach them (player.install_input_key_guard)
        return actions.build(self, {
            "player.step_forward": self._when_recorded("step_forward"),
            "player.step_back": self._when_recorded("step_back"),
            "player.play_pause": self._when_recorded("toggle_play"),
            "player.rewind": self._when_recorded("reset"),
            "player.end": self._when_recorded("go_end"),
            "network.next_iteration": self._next_iteration,
            "network.skip_zero_grad": self._on_tabs(lambda panel: panel.iteration.skip.toggle()),
            "network.train": self._on_tabs(lambda panel: panel.train.train_or_pause()),
            "network.reset_training": self._on_tabs(lambda panel: panel.train.reset()),
        })

def main(argv: list[str] | None = None) -> int:
    """Open the panel alone in a window."""
    from explorer.ui.common.standalone import run_standalone

    return run_standalone(NetworkPanel, "Autograd Explorer: network workspace", (1400, 880), argv)


if __name__ == "__main__":
    raise SystemExit(main())
