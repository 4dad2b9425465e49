"""The network workspace: build a small network, step through one training iteration, train on toy data.

`NetworkPanel` puts the spec form (left) beside two tabs: "One iteration" (phase player over the traced
graph and the parameter table) and "Train on toy data" (dataset, train/pause/reset, decision boundary
and live curves). Open it alone with `python -m explorer.ui.network.panel`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QSplitter, QTabWidget, QWidget

from explorer.core.mlp.network import NetSession, NetSpec, NetSpecError
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.graph.player import PLAYER_KEYS, buttons_keep_player_keys
from explorer.ui.network.form import CUSTOM, SpecForm
from explorer.ui.network.iteration import IterationView
from explorer.ui.network.training import TrainView

ITERATION_TAB, TRAIN_TAB = 0, 1


class NetworkPanel(QWidget):
    """The network workspace (a tab of the main window, or a window of its own)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("networkPanel")
        self.form = SpecForm()
        self.iteration = IterationView()
        self.train = TrainView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("networkTabs")
        self.tabs.addTab(self.iteration, "One iteration")
        self.tabs.addTab(self.train, "Train on toy data")
        self.tabs.setTabToolTip(ITERATION_TAB, "Step through zero_grad, forward, loss, backward and step")
        self.tabs.setTabToolTip(TRAIN_TAB, "Train the network on a 2-D dataset and watch it learn")
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(270)
        scroll.setMaximumWidth(340)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        box = QHBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(split)
        self._actions = self._make_actions()
        self.form.sig_spec_changed.connect(self.apply_spec)
        self.train.sig_use_toy_preset.connect(self._use_toy_preset)
        self.iteration.sig_record_failed.connect(self.form.show_error)
        self.set_theme(themes.get_theme())
        buttons_keep_player_keys(self)
        self.apply_spec()

    # -- panel protocol ----------------------------------------------------------------------------

    def menu_actions(self) -> list[QAction]:
        """Player and training actions with their shortcuts, for the main window's Network menu."""
        return list(self._actions)

    def state(self) -> dict[str, Any]:
        """The spec, preset, dataset settings and open tab, JSON-able."""
        t = self.train
        return {
            "preset": self.form.preset_name(),
            "spec": self.form.spec().to_dict(),
            "skip_zero_grad": self.iteration.skip.isChecked(),
            "tab": self.tabs.currentIndex(),
            "dataset": {
                "name": t.dataset.currentData(),
                "noise": t.noise.value(),
                "count": t.count.value(),
                "test_fraction": t.split.value(),
                "seed": t.data_seed.value(),
                "steps": t.steps.value(),
                "speed": t.speed.currentIndex(),
            },
        }

    def restore_state(self, data: dict[str, Any]) -> None:
        """Put back what state() gave; anything malformed is skipped."""
        if not isinstance(data, dict):
            return
        try:
            spec = NetSpec.from_dict(data.get("spec") or {})
            spec.validate()
            self.form.set_spec(spec, preset=data.get("preset") or CUSTOM)
        except (NetSpecError, TypeError, ValueError):
            pass
        self.iteration.skip.setChecked(bool(data.get("skip_zero_grad", False)))
        ds = data.get("dataset") or {}
        t = self.train
        index = t.dataset.findData(ds.get("name"))
        if index >= 0:
            t.dataset.setCurrentIndex(index)
        for widget, key in (
            (t.noise, "noise"),
            (t.count, "count"),
            (t.split, "test_fraction"),
            (t.data_seed, "seed"),
            (t.steps, "steps"),
        ):
            if isinstance(ds.get(key), int | float):
                widget.setValue(ds[key])
        if isinstance(ds.get("speed"), int) and 0 <= ds["speed"] < t.speed.count():
            t.speed.setCurrentIndex(ds["speed"])
        if data.get("tab") in (ITERATION_TAB, TRAIN_TAB):
            self.tabs.setCurrentIndex(data["tab"])
        self.apply_spec()

    def prepare_screenshot(
        self, preset: str | None = None, example: str | None = None, step: int | None = None
    ):
        """Headless set-up: select `preset`; with `step`, show the iteration at that phase step.

        Without a step, a 2-D network is shown on the training tab after a short training run.
        """
        del example
        if preset:
            try:
                self.form.set_preset(preset)
            except NetSpecError as exc:
                # the app turns this into one "error: ..." line and exit status 2
                raise ValueError(str(exc)) from exc
        self.apply_spec()
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
        """Build the form's spec: a new session for the player, the next run's network for training.

        The session's first iteration is recorded on a worker thread; its failure reaches the form's
        error label by `IterationView.sig_record_failed`.
        """
        spec = self.form.spec()
        try:
            session = NetSession(spec)
            self.iteration.set_session(session)
        except NetSpecError as exc:
            self.form.show_error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
            self.form.show_error(f"could not run this network: {type(exc).__name__}: {exc}")
            return
        self.form.show_error(None)
        self.train.set_spec(spec)

    def _use_toy_preset(self) -> None:
        self.form.set_preset("toy-2d")
        self.apply_spec()

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
            "network.next_iteration": self.iteration.next_iteration,
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
