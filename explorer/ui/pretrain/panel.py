"""The pretraining workspace: configure a GPT, train it live, compare runs, look inside.

Left: the hyperparameter form with the parameter count and memory estimate. Right: the training tab
(loss / learning-rate / gradient-norm plots, progress, generated samples, run history), attention
maps and "trace one step". Training runs in a spawned process (train_process.py); this widget only
turns its records into pictures.

Run alone: `python -m explorer.ui.pretrain.panel`.
"""

from __future__ import annotations

import html
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from explorer.core.gpt import budget as info
from explorer.core.gpt.runs import PALETTE, Run, describe_config
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.pretrain.estimates import ModelEstimates
from explorer.ui.pretrain.form import HyperparameterForm
from explorer.ui.pretrain.history import RunHistory
from explorer.ui.pretrain.plots import TrainingPlots
from explorer.ui.pretrain.process import TrainProcess


def banner_styles(theme: dict[str, str]) -> dict[str, str]:
    """Message-line styles (error, warning, info) in the colours of a theme."""
    def style(background: str, color: str, border: str) -> str:
        return f"background:{theme[background]}; color:{theme[color]}; border:1px solid {theme[border]};"

    return {"error": style("error_bg", "error", "error"), "warning": style("status_bg", "number", "number"),
            "info": style("status_bg", "text", "card_border")}


class PretrainPanel(QWidget):
    """Workspace 5 of the app: pretraining a tiny GPT, live."""

    sig_run_finished = Signal(int, str)
    """A run ended: (run id, status "done" | "stopped" | "error")."""
    sig_checkpoint_written = Signal(int, str)
    """The training process wrote a checkpoint: (run id, path)."""

    def __init__(self, parent: QWidget | None = None, checkpoint_dir: str | None = None,
                 train_backend: str = "process") -> None:
        """`checkpoint_dir`: where runs write checkpoints (default: a temporary folder);
        `train_backend`: "process" (always, in the app) or "thread" (the benchmark's comparison)."""
        super().__init__(parent)
        self._owns_dir = checkpoint_dir is None
        self._dir = Path(checkpoint_dir or tempfile.mkdtemp(prefix="explorer-pretrain-"))
        self._runs: dict[int, Run] = {}
        self._active: Run | None = None
        self._next_id = 1
        self._retrain_pending = False
        self._checkpoint_waiters: list = []
        self._refuse = False  # the configuration cannot train on this machine (see _update_estimates)
        self._run_started_at = 0.0
        self._process = TrainProcess(self, backend=train_backend)
        self._process.sig_records.connect(self._on_records)
        self._process.sig_finished.connect(self._on_finished)

        self.form = HyperparameterForm()
        self.form.sig_changed.connect(self._update_estimates)
        self.estimates = ModelEstimates()
        # Shortcuts to the estimate widgets (tests and the screenshot read them).
        self.param_count = self.estimates.param_count
        self.fit_warning = self.estimates.fit_warning

        self.train_button = self._button("Train", "pretrainTrainButton", "pretrain.train", self.train)
        self.pause_button = self._button("Pause", "pretrainPauseButton", "pretrain.pause", self.toggle_pause)
        self.stop_button = self._button("Stop", "pretrainStopButton", "pretrain.stop", self.stop)
        self.retrain_button = self._button("Retrain", "pretrainRetrainButton", "pretrain.retrain",
                                           self.retrain)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.form)
        left_layout.addWidget(self.estimates)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(330)
        scroll.setMaximumWidth(400)

        buttons = QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button, self.retrain_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.banner = QLabel()
        self.banner.setObjectName("pretrainMessage")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.banner.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("pretrainProgress")
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(0)
        self.progress_label = QLabel("Press Train to pretrain the model on the corpus.")
        self.progress_label.setObjectName("pretrainProgressLabel")

        self.plots = TrainingPlots()
        self.samples = QTextBrowser()
        self.samples.setObjectName("samplesView")
        self.samples.setToolTip("Text the model writes by itself every few steps: watch it go from random "
                                "characters to words and the shapes of sentences.")
        self.samples.setPlaceholderText("Generated samples appear here while the model trains.")
        self.history = RunHistory()
        self.history.sig_visibility_changed.connect(self.plots.set_visible)
        self.history.sig_delete_requested.connect(self.delete_run)
        self.history.sig_use_config.connect(self.use_run_config)

        lower = QSplitter(Qt.Horizontal)
        samples_box = QWidget()
        samples_layout = QVBoxLayout(samples_box)
        samples_layout.setContentsMargins(0, 0, 0, 0)
        samples_layout.addWidget(QLabel("<b>Samples</b>"))
        samples_layout.addWidget(self.samples)
        lower.addWidget(samples_box)
        lower.addWidget(self.history)
        lower.setSizes([600, 380])
        training_tab = QWidget()
        training_layout = QVBoxLayout(training_tab)
        training_layout.addLayout(buttons)
        training_layout.addWidget(self.banner)
        training_layout.addWidget(self.progress)
        training_layout.addWidget(self.progress_label)
        vertical = QSplitter(Qt.Vertical)
        vertical.addWidget(self.plots)
        vertical.addWidget(lower)
        vertical.setSizes([520, 220])
        training_layout.addWidget(vertical, 1)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("pretrainTabs")
        self.tabs.addTab(training_tab, "Training")
        self._add_inspection_tabs()

        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(self.tabs, 1)
        self.set_theme(themes.get_theme())
        self._update_estimates()
        self._update_buttons()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour plots, heatmaps, graph and message lines (the main window calls this on a switch)."""
        self._styles = banner_styles(theme)
        # The app stylesheet draws every button alike; a disabled Train must look disabled.
        self.setStyleSheet(f"QPushButton:disabled {{ color: {theme['muted']}; "
                           f"border-color: {theme['grid']}; }}")
        self.estimates.set_warning_style(self._styles["warning"])
        if self.banner.isVisible():
            self.show_message(self.banner.text(), self.banner.property("kind") or "info")
        self.plots.set_theme(theme)
        for tab in self._inspection_tabs:
            tab.set_theme(theme)

    # -- actions ----------------------------------------------------------------------------------
    def train(self) -> bool:
        """Start a new run from the form; False (with the reason shown) when it cannot start."""
        if self._process.is_running():
            self.show_message("A run is going: stop it first, or press Retrain.", "info")
            return False
        if not self.form.is_valid():
            key, message = next(iter(self.form.messages().items()))
            self.show_message(f"Fix the form first: {message}", "error")
            if key in ("corpus",):
                self.form.corpus.setFocus()
            elif key in self.form.messages():
                try:
                    self.form.edit(key).setFocus()
                except KeyError:
                    pass
            return False
        config, settings = self.form.config_dict(), self.form.settings_dict()
        warning, refuse = info.training_warning(config, settings["batch_size"], settings["device"])
        # (The slow-run estimate is a warning only: the user may still train.)
        if refuse:
            self.show_message(warning or "This configuration cannot train here.", "error")
            return False
        run_id = self._next_id
        self._next_id += 1
        run = Run(run_id, f"Run {run_id}", config, settings, self.form.corpus_path(),
                  PALETTE[(run_id - 1) % len(PALETTE)])
        run.name = f"Run {run_id} · {describe_config(config, settings)}"
        run.checkpoint = None
        self._runs[run_id] = run
        self._active = run
        self.plots.add_run(run)
        self.history.add_run(run)
        self.samples.append(f'<p style="color:{run.color}"><b>{html.escape(run.name)}</b></p>')
        self.progress.setRange(0, int(settings["steps"]))
        self.progress.setValue(0)
        self.progress_label.setText("Starting the training process…")
        self.hide_message()
        self._run_started_at = time.monotonic()
        checkpoint = str(self._dir / f"run-{run_id}.safetensors")
        try:
            self._process.start(config, settings, checkpoint, corpus_path=run.corpus)
        except (OSError, RuntimeError) as exc:
            run.status, run.message = "error", str(exc)
            self.show_message(f"Could not start training: {exc}", "error")
            self._active = None
        self._update_buttons()
        return self._active is not None

    def retrain(self) -> None:
        """One click: stop the current run if any, then train again with the form's settings."""
        if self._process.is_running():
            self._retrain_pending = True
            self._process.stop()
            self.progress_label.setText("Stopping the current run, then retraining…")
        else:
            self.train()

    def toggle_pause(self) -> None:
        """Pause a running run, or resume a paused one."""
        if not self._process.is_running():
            return
        if self._process.is_paused():
            self._process.resume()
            if self._active:
                self._active.status = "running"
        else:
            self._process.pause()
            if self._active:
                self._active.status = "paused"
            self.progress_label.setText(self.progress_label.text() + "  ·  paused")
        self._update_buttons()
        if self._active:
            self.history.update_run(self._active.run_id)

    def stop(self) -> None:
        """Stop the run after its current step (its checkpoint is written)."""
        self._retrain_pending = False
        if self._process.is_running():
            self._process.stop()
            self.progress_label.setText("Stopping…")

    def delete_run(self, run_id: int) -> None:
        """Remove a finished run, its curves and its checkpoint file."""
        if self._active is not None and self._active.run_id == run_id:
            self.show_message("This run is still training: stop it before deleting it.", "info")
            return
        run = self._runs.pop(run_id, None)
        self.plots.remove_run(run_id)
        self.history.remove_run(run_id)
        if run is not None and run.checkpoint and self._owns_dir:
            Path(run.checkpoint).unlink(missing_ok=True)

    def use_run_config(self, run_id: int) -> None:
        """Load a run's hyperparameters into the form (then tweak and Train)."""
        run = self._runs.get(run_id)
        if run is not None:
            self.form.set_values({**run.config, **run.settings, "corpus": run.corpus or ""})

    def with_fresh_checkpoint(self, callback) -> bool:
        """Call `callback()` once the model to inspect is on disk; True when it has to wait.

        While a run trains, its process is asked for a checkpoint of the current weights first (a paused
        run writes it at once), so attention maps and traces show the model as it is now.
        """
        selected = self.history.current_run_id()
        active = self._active
        if active is None or not self._process.is_running() or selected not in (None, active.run_id):
            callback()
            return False
        self._checkpoint_waiters.append(callback)
        if len(self._checkpoint_waiters) == 1:
            self._process.request_checkpoint()
        return True

    def runs(self) -> list[Run]:
        """All runs, oldest first."""
        return list(self._runs.values())

    def is_training(self) -> bool:
        """True while a training process is alive."""
        return self._process.is_running()

    def show_message(self, text: str, kind: str = "info") -> None:
        """A message above the plots: error, warning or info (never a traceback)."""
        self.banner.setText(text)
        self.banner.setProperty("kind", kind)
        style = self._styles.get(kind, self._styles["info"])
        self.banner.setStyleSheet(style + "padding:6px; border-radius:4px;")
        self.banner.show()

    def hide_message(self) -> None:
        """Hide the message line."""
        self.banner.hide()
        self.banner.setText("")

    # -- panel protocol ---------------------------------------------------------------------------
    def menu_actions(self) -> list[QAction]:
        """Train, Pause, Stop, Retrain as menu actions: they hold the keys the buttons show."""
        return list(self._panel_actions())

    def state(self) -> dict[str, Any]:
        """The form and the run history (curves thinned) as JSON-able data."""
        return {"form": self.form.values(), "runs": [run.to_state() for run in self._runs.values()]}

    def restore_state(self, data: dict[str, Any]) -> None:
        """Put back what `state()` gave; bad entries are skipped, never fatal."""
        if not isinstance(data, dict):
            return
        form = data.get("form")
        if isinstance(form, dict):
            preset = form.get("preset")
            if preset in info.preset_names():
                self.form.apply_preset(preset)
            self.form.set_values({k: v for k, v in form.items() if k != "preset"})
        for saved in data.get("runs", []) or []:
            try:
                run = Run.from_state(saved)
            except (KeyError, TypeError, ValueError):
                continue
            if run.checkpoint and not Path(run.checkpoint).exists():
                run.checkpoint = None
            self._runs[run.run_id] = run
            self._next_id = max(self._next_id, run.run_id + 1)
            self.plots.add_run(run)
            self.history.add_run(run)
        self._update_buttons()

    def prepare_screenshot(self, preset: str | None = None, example: str | None = None,
                           step: int | None = None) -> None:
        """Headless set-up for `--screenshot`: a preset and a finished run of `step` steps.

        Without `step`, the tiny preset trains SCREENSHOT_STEPS steps (a few seconds on a CPU) so the
        picture shows curves and samples; `--step 0`, or a preset too big for this machine, shows the
        configured form only.
        """
        del example
        if preset is not None and preset not in info.preset_names():
            names = ", ".join(info.preset_names())
            raise ValueError(f"unknown pretraining preset {preset!r}; choose one of {names}")
        self.form.apply_preset(preset or "tiny")
        if step is None and (preset or "tiny") == "tiny":
            step = SCREENSHOT_STEPS
        if step and self.train_button.isEnabled():
            every = max(1, int(step) // 5)
            self.form.set_values({"steps": int(step), "eval_every": every, "sample_every": every})
            if self.train():
                self.wait_until_idle(timeout=300.0)
        self.plots.flush()

    def wait_until_idle(self, timeout: float = 60.0) -> bool:
        """Process events until no run is training (headless use and tests); True if it finished."""
        deadline = time.monotonic() + timeout
        while self._process.is_running() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
            time.sleep(0.01)
        return not self._process.is_running()

    def shutdown(self) -> None:
        """Stop training (checkpoint kept) and background jobs; called when the window closes."""
        self._retrain_pending = False
        self._process.shutdown()
        self.form.shutdown()
        for tab in self._inspection_tabs:
            if hasattr(tab, "shutdown"):
                tab.shutdown()
        if self._owns_dir:  # a temporary folder: its checkpoints go with the session's window
            shutil.rmtree(self._dir, ignore_errors=True)
            for run in self._runs.values():
                run.checkpoint = None

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Opened alone, closing the panel stops its training cleanly."""
        self.shutdown()
        super().closeEvent(event)

    # -- records from the training process --------------------------------------------------------
    def _on_records(self, records: list[dict[str, Any]]) -> None:
        run = self._active
        if run is None:
            return
        last_step = None
        for record in records:
            run.add(record)
            kind = record.get("type")
            if kind == "step":
                last_step = record
            elif kind == "sample":
                self._append_sample(run, record)
            elif kind == "start":
                self._show_start(run, record)
            elif kind == "checkpoint" and record.get("path"):
                self.sig_checkpoint_written.emit(run.run_id, str(record["path"]))
                waiters, self._checkpoint_waiters = self._checkpoint_waiters, []
                for callback in waiters:
                    callback()
            elif kind == "error":
                self.show_message(f"Training stopped: {record.get('message', 'unknown error')}", "error")
            elif kind == "warning":
                self.show_message(str(record.get("message", "")), "warning")
        if last_step is not None:
            self._show_progress(run, last_step)
        self.plots.mark_dirty(run.run_id)
        self.history.update_run(run.run_id)

    def _on_finished(self, result: dict[str, Any]) -> None:
        run, self._active = self._active, None
        waiters, self._checkpoint_waiters = self._checkpoint_waiters, []
        for callback in waiters:  # the final checkpoint (if any) is written: inspect that
            QTimer.singleShot(0, callback)
        if run is not None:
            status = result.get("status", "stopped")
            if run.status not in ("done", "stopped", "error") or status == "error":
                run.status = status
                run.message = result.get("message", "") or run.message
            run.checkpoint = result.get("checkpoint") or run.checkpoint
            if run.status == "error" and not self.banner.isVisible():
                self.show_message(f"Training stopped: {run.message}", "error")
            self.history.update_run(run.run_id)
            self.plots.mark_dirty(run.run_id)
            train, val = run.final_losses()
            summary = {"done": "Finished", "stopped": "Stopped", "error": "Failed"}.get(run.status,
                                                                                         run.status)
            losses = f"train loss {train:.3f}" if train is not None else "no step finished"
            if val is not None:
                losses += f", validation loss {val:.3f}"
            self.progress_label.setText(f"{summary}: {run.name} — {losses}.")
            self.sig_run_finished.emit(run.run_id, run.status)
        self._update_buttons()
        if self._retrain_pending:
            self._retrain_pending = False
            # Let the finished signal settle before the next process starts.
            QTimer.singleShot(0, self.train)

    def _show_start(self, run: Run, record: dict[str, Any]) -> None:
        params = record.get("parameters")
        vocab = record.get("vocab_size")
        tokenizer = record.get("tokenizer", "char")
        unit = "distinct characters" if tokenizer == "char" else "BPE tokens"
        text = f"Training on {record.get('device', '?')}"
        if isinstance(params, int):
            text += f": {params:,} parameters"
        if isinstance(vocab, int):
            text += f" (the corpus gives {vocab} {unit}, so vocab_size = {vocab})"
        if isinstance(record.get("train_tokens"), int):
            text += f", {record['train_tokens']:,} training tokens"
        self.progress_label.setText(text + "…")
        if isinstance(vocab, int) and vocab > 1 and int(record.get("step", 0) or 0) == 0:
            # What the first point of the curve means, and when the first sample will come.
            note = (f"An untrained model guesses among {vocab} tokens evenly: loss ln {vocab} = "
                    f"{math.log(vocab):.2f}, where the curve starts.")
            every = int(run.settings.get("sample_every") or 0)
            if every:
                note += f" It writes a sample every {every} steps."
            self.samples.append(f'<p style="color:#6b7280">{html.escape(note)}</p>')

    def _show_progress(self, run: Run, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0) or 0)
        total = int(run.settings.get("steps") or 1)
        self.progress.setValue(min(step, total))
        rate = float(record.get("tokens_per_s") or 0.0)
        per_step = int(run.settings.get("batch_size") or 1) * int(run.config.get("context_length") or 1)
        eta = (total - step) * per_step / rate if rate > 0 else None
        loss = record.get("train_loss")
        parts = [f"{rate:,.0f} tokens/s" if rate else "measuring speed…",
                 f"ETA {_duration(eta)}" if eta is not None else "",
                 f"loss {loss:.3f}" if isinstance(loss, float) else "",
                 f"{int(record.get('tokens', 0) or 0):,} tokens seen",
                 f"on {run.device}" if run.device else ""]
        text = "  ·  ".join(p for p in parts if p)
        if run.status == "paused":
            text += "  ·  paused"
        self.progress_label.setText(text)

    def _append_sample(self, run: Run, record: dict[str, Any]) -> None:
        step = record.get("step", "?")
        text = html.escape(str(record.get("text", "")))
        self.samples.append(
            f'<div style="margin-top:6px"><span style="color:{run.color}; font-weight:600">step {step}</span>'
            f'<pre style="margin:2px 0 0 0; white-space:pre-wrap">{text}</pre></div>'
        )
        bar = self.samples.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- estimates and buttons --------------------------------------------------------------------
    def _update_estimates(self) -> None:
        messages = self.form.messages()
        settings = self.form.settings_dict()
        if not self._process.is_running() and "steps" not in messages:
            self.progress.setRange(0, int(settings["steps"]))
            self.progress.setValue(0)
        self._refuse = self.estimates.update_from(self.form.config_dict(), settings, messages,
                                                  vocab_pending=self.form.vocab_pending())
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self._process.is_running()
        can_train = self.form.is_valid() and not self._refuse
        self.train_button.setEnabled(not running and can_train)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if self._process.is_paused() else "Pause")
        self.stop_button.setEnabled(running)
        self.retrain_button.setEnabled(can_train and (running or bool(self._runs)))
        self.form.preset.setEnabled(True)

    def _panel_actions(self) -> list[QAction]:
        # the keys live on these actions (from the one table), not on the buttons: two holders of one key
        # are ambiguous to Qt, and the button and the menu entry both had Ctrl+P
        if getattr(self, "_actions", None) is None:
            self._actions = actions.build(self, {"pretrain.train": self.train,
                                                 "pretrain.pause": self.toggle_pause,
                                                 "pretrain.stop": self.stop,
                                                 "pretrain.retrain": self.retrain})
        return self._actions

    def _button(self, text: str, name: str, action_id: str, slot) -> QPushButton:
        self._panel_actions()
        button = QPushButton(text)
        button.setObjectName(name)
        actions.describe_button(button, action_id)
        button.clicked.connect(lambda _=False: slot())
        return button

    def _add_inspection_tabs(self) -> None:
        self._inspection_tabs: list[QWidget] = []
        try:
            from explorer.ui.pretrain.attention import AttentionTab
            from explorer.ui.pretrain.trace_step import TraceTab
        except ImportError:  # inspection needs the core trainer; the training tab works without it
            return
        for tab_class, title in ((AttentionTab, "Attention maps"), (TraceTab, "Trace one step")):
            tab = tab_class(self)
            self._inspection_tabs.append(tab)
            self.tabs.addTab(tab, title)

    def model_source(self) -> dict[str, Any]:
        """What the inspection tabs should look at: the selected (else latest) run with a checkpoint."""
        selected = self._runs.get(self.history.current_run_id() or -1)
        candidates = [selected, *reversed(self._runs.values())]
        for run in candidates:
            if run is not None and run.checkpoint and Path(run.checkpoint).exists():
                return {"checkpoint": run.checkpoint, "config": run.config, "settings": run.settings,
                        "corpus": run.corpus, "name": run.name}
        return {"checkpoint": None, "config": self.form.config_dict() if self.form.is_valid() else None,
                "settings": self.form.settings_dict(), "corpus": self.form.corpus_path(),
                "name": "an untrained model (form settings)"}


SCREENSHOT_STEPS = 50


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def main(argv: list[str] | None = None) -> int:
    """Open the panel alone in a window."""
    from explorer.ui.common.standalone import run_standalone

    return run_standalone(PretrainPanel, "Autograd Explorer — pretraining", (1400, 860),
                          list(argv or sys.argv))


if __name__ == "__main__":
    raise SystemExit(main())
