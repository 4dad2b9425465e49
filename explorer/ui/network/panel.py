"""The network workspace: build a small network, step through one training iteration, train on toy data.

`NetworkPanel` puts the spec form (left) beside two tabs: "One iteration" (phase player over the traced
graph and the parameter table) and "Train on toy data" (dataset, train/pause/reset, decision boundary
and live curves). Open it alone with `python -m explorer.ui.network.panel`.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QSplitter, QTabWidget, QWidget

from explorer.core.mlp.network import NetSession, NetSpecError
from explorer.core.workspaces.network import DatasetModel, NetworkWorkspace
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.common.slices import Slices
from explorer.ui.common.step_sync import PlotStepPicker, StepSync
from explorer.ui.graph.player import PLAYER_KEYS, buttons_keep_player_keys
from explorer.ui.network.form import CUSTOM, SpecForm
from explorer.ui.network.iteration import IterationView
from explorer.ui.network.training import TrainView

ITERATION_TAB, TRAIN_TAB = 0, 1


class NetworkPanel(QWidget):
    """The network workspace (a tab of the main window, or a window of its own)."""

    def __init__(self, parent=None, workspace: NetworkWorkspace | None = None, sliced: bool = False):
        """`sliced`: build over several event-loop turns (`building`; the main window installs the panel
        on `building.sig_done`); otherwise the panel is complete when the constructor returns."""
        super().__init__(parent)
        self.setObjectName("networkPanel")
        self.building = Slices.run(self._build(workspace), self, sliced)

    def finish_building(self) -> None:
        """Build whatever is left now (a panel built in slices becomes complete at once)."""
        self.building.finish()

    def _build(self, workspace: NetworkWorkspace | None):
        """The construction, in pieces that each take one event-loop turn when built in slices."""
        # The step every view of a toy run shows, chosen on the loss curve (ui/common/step_sync.py).
        self.step_sync = StepSync(self)
        self.workspace = workspace or NetworkWorkspace()
        self._syncing = False  # the view is writing the model itself: do not echo it back
        self._restore_step: int | None = None
        self._restore_selected: str | None = None  # the card to select once the iteration is shown
        self.form = SpecForm()
        yield
        self.iteration = IterationView()
        yield
        self.train = TrainView(later=True)
        yield from self.train.build_steps()
        yield
        self.tabs = QTabWidget()
        self.tabs.setObjectName("networkTabs")
        self.tabs.addTab(self.iteration, "One iteration")
        self.tabs.addTab(self.train, "Train on toy data")
        self.tabs.setTabToolTip(ITERATION_TAB, "Step through zero_grad, forward, loss, backward and step")
        self.tabs.setTabToolTip(TRAIN_TAB, "Train the network on a 2-D dataset and watch it learn")
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(262)  # the form whole (no sideways scrolling)
        scroll.setMaximumWidth(340)
        split = QSplitter(Qt.Horizontal)
        split.setObjectName("networkSplitter")  # sizes saved with the window (main_window)
        split.addWidget(scroll)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setCollapsible(1, False)
        split.setSizes([262, 1000])
        box = QHBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(split)
        self._actions = self._make_actions()
        self.addActions(self._actions)
        self.form.sig_spec_changed.connect(self._on_form_changed)
        self.train.sig_use_toy_preset.connect(self._use_toy_preset)
        self.train.lr_test.sig_use_lr.connect(self.use_lr)
        self.iteration.sig_record_failed.connect(self.form.show_error)
        self.iteration.sig_recorded.connect(self._on_recorded)
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
        self._subscribe()
        self.set_theme(themes.get_theme())
        buttons_keep_player_keys(self)
        # the workspace's StepSync, where it has one (on the panel or its training view)
        sync = getattr(self, "step_sync", None) or getattr(self.train, "step_sync", None)
        if sync is not None:
            sync.register(self.train.landscape)
        self._show_state()

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
        self.iteration.set_theme(theme)
        self.train.set_theme(theme)

    def shutdown(self) -> None:
        """Stop the training thread, the recording thread and the player."""
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
        ev.tab.connect(lambda i: self.tabs.currentIndex() != i and self.tabs.setCurrentIndex(i))
        ev.step.connect(self._show_model_step)
        ev.dataset.connect(lambda d: self.train.show_dataset(d.model_dump()))

    def _write(self, **fields) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.workspace.state.update(fields)
        finally:
            self._syncing = False

    def _show_state(self) -> None:
        """A new spec, preset or iteration count: the form shows it, the player records it again."""
        if self._syncing:
            return
        state = self.workspace.state
        spec = self.workspace.spec()
        self._syncing = True
        try:
            self.form.set_spec(spec, preset=state.preset)
            self._show_skip(state.skip_zero_grad)
            self.tabs.setCurrentIndex(state.tab)
            self.train.show_dataset(state.dataset.model_dump())
        finally:
            self._syncing = False
        self._restore_step = state.step
        self._restore_selected = state.selected
        try:
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

    def _show_skip(self, on: bool) -> None:
        if self.iteration.skip.isChecked() != on:
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

    def _on_node_selected(self, display_id: str) -> None:
        if not self.iteration.is_recording():
            self._write(selected=display_id or None)

    def _on_player_step(self, k: int) -> None:
        if self.workspace.iteration is not None:
            self._write(step=k)

    def _show_model_step(self, k: int) -> None:
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
            self.tabs.currentIndex() == ITERATION_TAB
            and event.key() in PLAYER_KEYS
            and not self.iteration.is_recording()
            and self.iteration.player.handle_key(event.key())
        ):
            event.accept()
            return
        super().keyPressEvent(event)

    def _next_iteration(self) -> None:
        self.iteration.next_iteration()

    def _when_recorded(self, slot):
        """`slot`, ignored while an iteration is being recorded (the player is busy then)."""

        def guarded() -> None:
            if not self.iteration.is_recording():
                slot()

        return guarded

    def _make_actions(self) -> list[QAction]:
        # keys and texts from the one table; Space/Right/... are the shared player keys, scoped to this
        # panel, and keys a focused input uses itself never reach them (player.install_input_key_guard)
        p = self.iteration.player
        return actions.build(self, {
            "player.step_forward": self._when_recorded(p.step_forward),
            "player.step_back": self._when_recorded(p.step_back),
            "player.play_pause": self._when_recorded(p.toggle_play),
            "player.rewind": self._when_recorded(p.reset),
            "player.end": self._when_recorded(p.go_end),
            "network.next_iteration": self._next_iteration,
            "network.skip_zero_grad": self.iteration.skip.toggle,
            "network.train": self.train.train_or_pause,
            "network.reset_training": self.train.reset,
        })

def main(argv: list[str] | None = None) -> int:
    """Open the panel alone in a window."""
    from explorer.ui.common.standalone import run_standalone

    return run_standalone(NetworkPanel, "Autograd Explorer: network workspace", (1400, 880), argv)


if __name__ == "__main__":
    raise SystemExit(main())
