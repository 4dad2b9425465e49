"""The pretraining workspace: configure a GPT, train it live, compare runs, look inside.

Left: the hyperparameter form with the parameter count and memory estimate. Right: the training tab
(loss / learning-rate / gradient-norm plots, progress, generated samples, run history), attention
maps and "trace one step". Training runs in a spawned process (train_process.py); this widget only
turns its records into pictures.

PretrainRun alone: `python -m explorer.ui.pretrain.panel`.
"""

from __future__ import annotations

import html
import importlib
import math
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QFileSystemWatcher, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from explorer.core import files
from explorer.core.gpt import budget as info
from explorer.core.gpt.runs import PretrainRun
from explorer.core.workspaces.pretrain import (
    PretrainWorkspace,
    run_folder,
    runs_dir,
    sample_text,
    scan_folder,
)
from explorer.ui.common import actions, loading
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel, keep_space_when_hidden
from explorer.ui.common.late_core import LateCore
from explorer.ui.common.loading import TorchWait
from explorer.ui.common.slices import Slices
from explorer.ui.common.step_sync import PlotStepPicker, StepSync
from explorer.ui.common.worker import Worker
from explorer.ui.pretrain.estimates import ModelEstimates
from explorer.ui.pretrain.form import HyperparameterForm, gpu_count
from explorer.ui.pretrain.process import CLOSE_WAIT_S, TrainProcess

SCAN_DELAY_MS = 300  # a change in the runs folder is read this long after the last one (they come in bursts)
# What the training tab and the inspection tabs build on (torch): imported on the panel's Worker when the
# panel is built before torch (the main window's loader imports the workspace's core alongside).
CORE_MODULES = ("torch", "explorer.core.gpt.model", "explorer.core.gpt.distributed",
                "explorer.core.gpt.health", "explorer.core.gpt.lens", "explorer.core.gpt.checkpoint")
WAIT_WHAT = ("The training controls, the loss curves, the samples, the run list and the inspection tabs "
             "appear once it is in.")
WAIT_MEANWHILE = ("You can set up the model meanwhile: the parameter count and the memory estimate follow "
                  "your edits.")
WAIT_PENDING = "Train was pressed: the run starts as soon as PyTorch is in (Stop cancels it)."


def load_core() -> None:
    """Import CORE_MODULES (on a Worker: torch's import takes seconds)."""
    for name in CORE_MODULES:
        importlib.import_module(name)


def banner_styles(theme: dict[str, str]) -> dict[str, str]:
    """Message-line styles (error, warning, info) in the colours of a theme."""
    def style(background: str, color: str, border: str) -> str:
        return f"background:{theme[background]}; color:{theme[color]}; border:1px solid {theme[border]};"

    return {"error": style("error_bg", "error", "error"), "warning": style("status_bg", "number", "number"),
            "info": style("status_bg", "text", "card_border")}


BANNER_BOX = "padding:6px; border-radius:4px;"


class PretrainPanel(QWidget):
    """Workspace 5 of the app: pretraining a tiny GPT, live."""

    sig_run_finished = Signal(int, str)
    """A run ended: (run id, status "done" | "stopped" | "error")."""
    sig_checkpoint_written = Signal(int, str)
    """The training process wrote a checkpoint: (run id, path)."""

    sig_computed = Signal(object)
    """The run controls, plots and inspection tabs were built after the panel (it was built before torch):
    the start-up probe times it (None)."""
    sig_tabs_built = Signal()
    """The same moment, for the main window: it restores the splitters built then."""

    def __init__(self, parent: QWidget | None = None, workspace: PretrainWorkspace | None = None,
                 train_backend: str = "process", sliced: bool = False) -> None:
        """`workspace`: the model this panel shows (default: a new one); `train_backend`: "process" (always,
        in the app) or "thread" (the benchmark's comparison). Runs keep their files in the data folder.
        `sliced`: build over several event-loop turns (`building`; the main window installs the panel on
        `building.sig_done`); otherwise the panel is complete when the constructor returns.

        Before torch is imported the panel is built without what trains and shows runs: the form (restored,
        editable) and its parameter count and memory estimate come at once; the training tab's controls,
        plots and samples and the inspection tabs wait behind "Loading PyTorch…" (`graph_wait`) while the
        panel's Worker imports CORE_MODULES, and are built then (`core`, a LateCore, in slices). Train pressed
        meanwhile (its menu entry or key) starts the run once they are in; the note says so.
        """
        super().__init__(parent)
        self.core: LateCore | None = None  # the tabs' import and late build (built before torch)
        self._core_built = False  # the training tab and the inspection tabs exist
        self._train_pending = False  # Train was pressed before they did: it starts when they are in
        self._pending_message: tuple[str, str] | None = None  # for the banner, made with the training tab
        self._closed = False  # shutdown() ran (the window closed or the app quits)
        self.building = Slices.run(self._build(workspace, train_backend), self, sliced)

    def finish_building(self) -> None:
        """Build whatever is left now (a panel built in slices becomes complete at once); the parts that
        wait for torch stay waiting (`ensure_core` waits for them)."""
        self.building.finish()

    def ensure_core(self, timeout: float = 600.0) -> None:
        """Wait for torch's import and build the training and inspection tabs now (screenshots, scripts,
        tests)."""
        self.building.finish()
        if self.core is not None:
            self.core.finish(timeout)

    def wait_computed(self, timeout: float = 600.0) -> bool:
        """Process events until the training and inspection tabs are built (a lesson's screenshot)."""
        self.ensure_core(timeout)
        return self._core_built

    def core_ready(self) -> bool:
        """Whether the run controls, plots and inspection tabs are built (torch is in)."""
        return self._core_built

    def _build(self, workspace: PretrainWorkspace | None, train_backend: str):
        """The construction, in pieces that each take one event-loop turn when built in slices."""
        # The step every view of the run shows, chosen on the loss curve (explorer/ui/common/step_sync.py).
        self.step_sync = StepSync(self)
        self.workspace = workspace or PretrainWorkspace()
        # run files (run.json, metrics.csv, health.csv) are written on a writer thread, in order: the end
        # of a run (and each checkpoint record) no longer waits for their fsyncs on the GUI thread
        self.workspace.writer = files.OrderedWriter("explorer-run-files", make_folders=False)
        self._syncing = False
        self._active: PretrainRun | None = None
        self._retrain_pending = False
        self._checkpoint_waiters: list = []
        self._refuse = False  # the configuration cannot train on this machine (see _update_estimates)
        self._run_started_at = 0.0
        self._inspection_tabs: list[QWidget] = []
        self.history = None  # the run list, the plots, the samples: made with the training tab
        self._process = TrainProcess(self, backend=train_backend)
        self._process.sig_records.connect(self._on_records)
        self._process.sig_finished.connect(self._on_finished)
        self._styles = banner_styles(themes.get_theme())
        light = not loading.torch_ready()

        self.form = HyperparameterForm()
        self.form.sig_changed.connect(self._update_estimates)
        self.estimates = ModelEstimates()
        # Shortcuts to the estimate widgets (tests and the screenshot read them).
        self.param_count = self.estimates.param_count
        self.fit_warning = self.estimates.fit_warning
        self._panel_actions()  # the menu's Train, Pause, Stop, Retrain (with their keys) from the start

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
        self.tabs = QTabWidget()
        self.tabs.setObjectName("pretrainTabs")
        self.graph_wait = TorchWait(self.tabs, WAIT_WHAT, WAIT_MEANWHILE, "pretrainLoadingNote")
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(self.graph_wait, 1)
        self.estimates.set_warning_style(self._styles["warning"])
        for name in ("preset", "config", "settings", "corpus", "gpus"):
            getattr(self.workspace.state.events, name).connect(lambda _v: self._model_to_form())
        self.form.sig_changed.connect(self._form_to_model)
        self._model_to_form()
        self._update_estimates()
        if not light:  # torch is in: the rest now, as part of this construction
            yield
            yield from self._build_core()
            return
        # before torch the form is light (~0.1 s): one piece, no turn for torch's import to hold the GIL in
        self.core = LateCore(self, load_core, self._build_core)
        self.core.sig_failed.connect(self._core_failed)
        self.core.sig_built.connect(self._core_built_late)
        # from the turn after the panel is whole (built in slices: after the window installed it, so that
        # torch's import does not hold the GIL while the panel is installed and shown): a panel finished
        # and shut down at once (a close) starts no import
        self.core.request_after(getattr(self, "building", None))  # None: built at once, in the constructor

    def _core_failed(self, message: str) -> None:
        self._train_pending = False
        self.graph_wait.note.setText(f"<p><b>The training tab could not be opened</b></p><p>{message}</p>")
        self.graph_wait.note.unsetCursor()

    def _build_core(self):
        """The run controls, the plots, the samples and the run list, then the inspection tabs (they train
        and read runs with torch), in pieces; then the runs and the buttons as they are now."""
        from explorer.ui.pretrain.history import RunHistory
        from explorer.ui.pretrain.plots import TrainingPlots
        from explorer.ui.pretrain.sample_marks import SampleMarks

        if self.core is not None:  # the count of GPUs (torch) for the GPUs field
            self.form.set_gpu_count(gpu_count())
        self.train_button = self._button("Train", "pretrainTrainButton", "pretrain.train", self.train)
        self.pause_button = self._button("Pause", "pretrainPauseButton", "pretrain.pause", self.toggle_pause)
        self.stop_button = self._button("Stop", "pretrainStopButton", "pretrain.stop", self.stop)
        self.retrain_button = self._button("Retrain", "pretrainRetrainButton", "pretrain.retrain",
                                           self.retrain)

        # Why Train is disabled, right beside it (not at the bottom of the scrolled form)
        self.train_reason = ElidedLabel("", lines=2)  # two lines beside the buttons: room for a sentence
        self.train_reason.setObjectName("pretrainTrainReason")
        buttons = QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button, self.retrain_button):
            buttons.addWidget(button)
        buttons.addWidget(self.train_reason, 1)
        # the banner and the progress line keep their height: showing a message moves nothing below
        self.banner = keep_space_when_hidden(ElidedLabel("", lines=2))
        self.banner.setObjectName("pretrainMessage")
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.banner.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("pretrainProgress")
        self.progress.setFormat("%v / %m steps")
        self.progress.setValue(0)
        self.progress_label = ElidedLabel("Press Train to pretrain the model on the corpus.", lines=1)
        self.progress_label.setObjectName("pretrainProgressLabel")

        yield
        import pyqtgraph  # noqa: F401 - the plots' library (~0.4 s of CPU): an event-loop turn of its own

        yield
        self.plots = TrainingPlots(later=True)
        yield from self.plots.build_steps()
        self.samples = QTextBrowser()
        self.samples.setObjectName("samplesView")
        self.samples.setToolTip("Text the model writes by itself every few steps: watch it go from random "
                                "characters to words and the shapes of sentences.")
        self.samples.setPlaceholderText("Generated samples appear here while the model trains.")
        self.sample_marks = SampleMarks(self.samples, self._focus_run_id)
        self.history = RunHistory()
        self.history.sig_visibility_changed.connect(self.plots.set_visible)
        self.history.sig_delete_requested.connect(self.delete_run)
        self.history.sig_use_config.connect(self.use_run_config)
        self.history.sig_continue_requested.connect(self.continue_run)
        self.sample_prompt = QLineEdit("The ")
        self.sample_prompt.setObjectName("samplePrompt")
        self.sample_prompt.setToolTip("Text for the selected (or latest) trained run to continue")
        self.sample_prompt.returnPressed.connect(self.sample)
        self.sample_button = QPushButton("Sample")
        self.sample_button.setObjectName("pretrainSampleButton")
        self.sample_button.setToolTip("Let the selected (or latest) trained run write 200 tokens after the "
                                      "prompt: generation picks each next token from the model's softmax, "
                                      "one at a time (temperature 0.8, seeded)")
        self.sample_button.clicked.connect(self.sample)
        self._sampler = Worker(self)
        self._sampler.sig_done.connect(self._show_sample)
        self._sampler.sig_failed.connect(lambda m: self.show_message(f"Could not sample: {m}", "error"))
        # The runs folder is shared with other windows and commands: read it off the GUI thread when it
        # changes, when the app comes to the front, and after a session was opened.
        self._scanner = Worker(self)
        self._scanner.sig_done.connect(self._on_folder_scanned)
        self._scan_timer = QTimer(self)
        self._scan_timer.setSingleShot(True)
        self._scan_timer.setInterval(SCAN_DELAY_MS)
        self._scan_timer.timeout.connect(self.scan_runs_folder)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(lambda _path: self._scan_timer.start())
        app = QCoreApplication.instance()
        if app is not None and hasattr(app, "applicationStateChanged"):
            app.applicationStateChanged.connect(self._on_app_state)  # a bound slot: ends with the panel

        lower = QSplitter(Qt.Horizontal)
        samples_box = QWidget()
        samples_layout = QVBoxLayout(samples_box)
        samples_layout.setContentsMargins(0, 0, 0, 0)
        samples_row = QHBoxLayout()
        samples_row.addWidget(QLabel("<b>Samples</b>"))
        samples_row.addWidget(self.sample_prompt, 1)
        samples_row.addWidget(self.sample_button)
        samples_layout.addLayout(samples_row)
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
        self.tabs.addTab(training_tab, "Training")
        yield
        yield from self._add_inspection_tabs()
        self._follow_steps()
        yield
        self._core_built = True
        self.set_theme(themes.get_theme())
        if self.core is not None:  # built after the panel: in the labels' theme of the moment
            themes.style_labels(self, themes.get_theme())
        self._subscribe()
        self._show_runs()
        self._update_estimates()
        self._update_buttons()
        self.scan_runs_folder()
        if self._pending_message is not None:
            self.show_message(*self._pending_message)
            self._pending_message = None
        self.graph_wait.done()

    def _core_built_late(self) -> None:
        """The tabs were built after the panel (torch loading then): tell the window and the probe, and
        start the run pressed meanwhile."""
        self.sig_tabs_built.emit()
        self.sig_computed.emit(None)
        if self._train_pending:  # pressed while torch loaded: the run starts now (or says why it cannot)
            self._train_pending = False
            QTimer.singleShot(0, self, self.train)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour plots, heatmaps, graph and message lines (the main window calls this on a switch)."""
        self._styles = banner_styles(theme)
        # a disabled Train looks disabled through the theme's palette (its disabled group): no panel-wide
        # style sheet, which would re-polish every widget of the panel on each switch
        self.estimates.set_warning_style(self._styles["warning"])
        self._theme = theme
        if not self._core_built:  # the rest is built later, in the theme of that moment
            return
        self._colour_train_reason()
        if self.banner.isVisible():
            self.show_message(self.banner.text(), self.banner.property("kind") or "info")
        else:  # the same box (padding, border) as a shown banner, so that its reserved height is right
            self.banner.setStyleSheet(self._styles["info"] + BANNER_BOX)
        self.plots.set_theme(theme)
        self.sample_marks.set_theme(theme)
        for tab in self._inspection_tabs:
            tab.set_theme(theme)

    # -- actions ----------------------------------------------------------------------------------
    def train(self) -> bool:
        """Start a new run from the form; False (with the reason shown) when it cannot start.

        Pressed before the training tab is built (torch loading), the run starts once it is (True): the
        note in its place says so."""
        if not self._core_built and not self._closed:
            self._train_pending = True
            self.graph_wait.set_text(WAIT_PENDING, WAIT_MEANWHILE)
            return True
        return self._start_run(None)

    def continue_run(self, run_id: int | None = None) -> bool:
        """Resume training: a new run continues a run's checkpoint (weights, optimizer, step) for the form's
        number of steps more, on the form's corpus (another text: that is fine-tuning). The source run's
        files are only read, never overwritten."""
        if not self._core_built:
            return False  # the run list that offers it is not built yet
        run_id = run_id if run_id is not None else self.history.current_run_id()
        source = self.workspace.runs.get(run_id) if run_id is not None else None
        if source is not None and self.workspace.folder_gone(source.run_id):
            self.show_message(self.workspace.gone_message(source.run_id), "error")
            return False
        if source is None or not source.checkpoint or not Path(source.checkpoint).exists():
            self.show_message("Select a finished run with a checkpoint to continue it.", "info")
            return False
        return self._start_run(source)

    def _start_run(self, source: PretrainRun | None) -> bool:
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
        resume_from = None
        if source is not None:  # the model is the source run's; the form gives steps, lr and the corpus
            done = source.steps_done()
            config = dict(source.config)
            settings = {**settings, "steps": done + int(settings["steps"]), "tokenizer":
                        source.settings.get("tokenizer", settings.get("tokenizer", "char"))}
            resume_from = source.checkpoint
        warning, refuse = info.training_warning(config, settings["batch_size"], settings["device"])
        # (The slow-run estimate is a warning only: the user may still train.)
        if refuse:
            self.show_message(warning or "This configuration cannot train here.", "error")
            return False
        self._form_to_model()
        try:
            run = self.workspace.new_run(config, settings, self.form.corpus_path(),
                                         continues=source.run_id if source else None)  # shown by run_added
        except files.FileProblem as exc:  # a read-only or full data folder
            self.show_message(f"Could not start training: {exc}", "error")
            return False
        run_id = run.run_id
        self._active = run
        self.progress.setRange(0, int(settings["steps"]))
        self.progress.setValue(0)
        self.progress_label.setText("Starting the training process…")
        self.hide_message()
        self._run_started_at = time.monotonic()
        checkpoint = str(self.workspace.checkpoint_path(run_id))
        try:
            self._process.start(config, settings, checkpoint, corpus_path=run.corpus, resume_from=resume_from,
                                nproc=self._ranks(settings))
        except (OSError, RuntimeError) as exc:
            run.status, run.message = "error", str(exc)
            self.show_message(f"Could not start training: {exc}", "error")
            self._active = None
        self._update_buttons()
        return self._active is not None

    def sample(self) -> None:
        """Generate text from the selected (or latest) run's checkpoint, off the GUI thread."""
        if not self._core_built:
            return
        selected = self.history.current_run_id()
        if selected in self.workspace.runs and self.workspace.folder_gone(selected):
            self.show_message(self.workspace.gone_message(selected), "error")
            return
        source = self.workspace.model_source(selected)
        if not source["checkpoint"]:
            self.show_message("No trained model yet: train a run (or stop one), then sample it.", "info")
            return
        prompt, checkpoint = self.sample_prompt.text(), source["checkpoint"]
        name = source["name"].split(" · ")[0]
        self._sampler.submit(lambda _job: (name, prompt, sample_text(checkpoint, prompt)))

    def _show_sample(self, result) -> None:
        name, prompt, text = result
        pre = '<pre style="margin:2px 0 0 0; white-space:pre-wrap">'
        self.samples.append(f'<div style="margin-top:6px"><b>{html.escape(name)}</b>, asked to continue '
                            f'{html.escape(repr(prompt))}:{pre}{html.escape(text)}</pre></div>')

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
        """Stop the run after its current step (its checkpoint is written); a Train still waiting for
        torch is cancelled."""
        self._retrain_pending = False
        if self._train_pending:
            self._train_pending = False
            self.graph_wait.set_text(WAIT_WHAT, WAIT_MEANWHILE)
        if self._process.is_running():
            self._process.stop()
            self.progress_label.setText("Stopping…")

    def delete_run(self, run_id: int, confirm: bool = True) -> bool:
        """Delete a finished run, its curves and its files (after asking, when `confirm`)."""
        if self._active is not None and self._active.run_id == run_id:
            self.show_message("This run is still training: stop it before deleting it.", "info")
            return False
        run = self.workspace.runs.get(run_id)
        if run is None:
            return False
        if confirm and not self._confirm(f"Delete {run.name}?\n\nIts curves, its checkpoint and its metrics "
                                         "are removed from disk. This cannot be undone."):
            return False
        try:
            self.workspace.delete_run(run_id)
        except files.FileProblem as exc:  # training in another window
            self.show_message(str(exc), "info")
            return False
        return True

    def export_run(self, run_id: int | None = None, folder: str | None = None) -> list[str]:
        """Write a run's checkpoint and metrics CSV to a folder the user picks (File > Export run…)."""
        if run_id is None:
            run_id = (self.history.current_run_id() if self.history is not None else None
                      ) or self.workspace.state.selected
        if run_id not in self.workspace.runs:
            self.show_message("Select a run to export first.", "info")
            return []
        if folder is None:
            from PySide6.QtWidgets import QFileDialog

            folder = QFileDialog.getExistingDirectory(self, "Export the run to a folder")
            if not folder:
                return []
        try:
            written = [str(p) for p in self.workspace.export_run(run_id, folder)]
        except (OSError, ValueError) as exc:
            self.show_message(f"Could not export the run: {exc}", "error")
            return []
        self.show_message(f"Exported {len(written)} files of {self.workspace.runs[run_id].name} to {folder}.",
                          "info")
        return written

    def use_run_config(self, run_id: int) -> None:
        """Load a run's hyperparameters into the form (then tweak and Train)."""
        run = self.workspace.runs.get(run_id)
        if run is not None:
            self.form.set_values({**run.config, **run.settings, "corpus": run.corpus or ""})
            self._form_to_model()

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

    def _on_app_state(self, state) -> None:
        """Coming back to the app rescans the runs folder (a terminal or another window may add runs)."""
        if state == Qt.ApplicationActive:
            self._scan_timer.start()

    def scan_runs_folder(self) -> None:
        """Read the runs folder in the background; runs other windows or commands made join the list."""
        if self._closed or not self._core_built:
            return
        self._scanner.submit(lambda _job: scan_folder())

    def _on_folder_scanned(self, found: list[PretrainRun]) -> None:
        self.workspace.merge_folder(found)
        self._watch_folders()

    def _watch_folders(self) -> None:
        """Watch the runs folder (runs made or deleted) and the folders of runs trained elsewhere (their
        record is rewritten when they end)."""
        wanted = [str(runs_dir())] if runs_dir().is_dir() else []
        wanted += [str(run_folder(run_id)) for run_id, run in self.workspace.runs.items()
                   if run_id not in self.workspace.training and run.status == "running"]
        watched = set(self._watcher.directories())
        stale = [path for path in watched if path not in wanted]
        if stale:
            self._watcher.removePaths(stale)
        fresh = [path for path in wanted if path not in watched and Path(path).is_dir()]
        if fresh:
            self._watcher.addPaths(fresh)

    def runs(self) -> list[PretrainRun]:
        """All runs, oldest first."""
        return list(self.workspace.runs.values())

    def is_training(self) -> bool:
        """True while a training process is alive."""
        return self._process.is_running()

    def show_message(self, text: str, kind: str = "info") -> None:
        """A message above the plots: error, warning or info (never a traceback)."""
        if not self._core_built:  # the banner is in the training tab: shown when it is built
            self._pending_message = (text, kind)
            return
        self.banner.setText(text)
        self.banner.setProperty("kind", kind)
        style = self._styles.get(kind, self._styles["info"])
        self.banner.setStyleSheet(style + BANNER_BOX)
        self.banner.show()

    def hide_message(self) -> None:
        """Hide the message line."""
        if not self._core_built:
            self._pending_message = None
            return
        self.banner.hide()
        self.banner.setText("")

    # -- panel protocol ---------------------------------------------------------------------------
    def menu_actions(self) -> list[QAction]:
        """Train, Pause, Stop, Retrain as menu actions: they hold the keys the buttons show."""
        return list(self._panel_actions())

    def _ranks(self, settings: dict[str, Any]) -> int:
        """How many ranks a run starts with: the GPUs field, on a device that can be CUDA, else 1."""
        gpus = self.workspace.state.gpus
        cuda_possible = str(settings.get("device", "auto")) in ("auto", "cuda")
        if gpus > 1 and cuda_possible and gpu_count() > 1:
            return gpus
        return 1

    # -- model <-> view ---------------------------------------------------------------------------
    def _subscribe(self) -> None:
        ws = self.workspace
        ws.events.run_added.connect(self._on_run_added)
        ws.events.run_changed.connect(self._on_run_changed)
        ws.events.run_removed.connect(self._on_run_removed)
        ws.events.runs_reset.connect(self._show_runs)
        ws.state.events.selected.connect(self._on_model_selected)
        self.history.list.currentItemChanged.connect(lambda *_: self._selection_to_model())

    def _form_to_model(self) -> None:
        """The user edited the form: a valid form becomes the workspace's configuration."""
        if self._syncing or not self.form.is_valid():
            return
        self._syncing = True
        try:
            self.workspace.state.update({"preset": self.form.preset.currentText(),
                                         "config": self.form.config_dict(),
                                         "settings": self.form.settings_dict(),
                                         "corpus": self.form.corpus_path(),
                                         "gpus": self.form.gpus.value()})
        except ValueError:
            pass  # the form shows the problem itself
        finally:
            self._syncing = False

    def _model_to_form(self) -> None:
        """Code set the configuration (a lesson, a session): the form shows it, preset label included."""
        if self._syncing:
            return
        state = self.workspace.state
        self._syncing = True
        try:
            if state.preset in info.preset_names():
                self.form.apply_preset(state.preset)
            self.form.set_values({**state.config, **state.settings, "corpus": state.corpus or "",
                                  "gpus": state.gpus})
            self.form.show_preset(state.preset)
        finally:
            self._syncing = False

    def _show_runs(self) -> None:
        """Every run anew (a session was opened): each appears exactly once."""
        for run_id in list(self.plots.run_ids()):
            self.plots.remove_run(run_id)
            self.history.remove_run(run_id)
        self.samples.clear()
        self.sample_marks.clear()
        for run in self.workspace.runs.values():
            self.plots.add_run(run)
            self.history.add_run(run)
            # what the panel showed when the run ended: its heading and its samples (a session keeps them)
            self.samples.append(f'<p style="color:{run.color}"><b>{html.escape(run.name)}</b></p>')
            for step, text in run.samples:
                self._append_sample(run, {"step": step, "text": text})
        last = list(self.workspace.runs.values())[-1:]
        if last and last[0].status in ("done", "stopped", "error"):
            self.progress_label.setText(finished_text(last[0]))
        self._show_health_run()
        self._model_to_form()
        self._update_buttons()
        if hasattr(self, "_scan_timer"):  # a session was opened: the folder adds the runs it does not name
            self._scan_timer.start()

    def _on_run_added(self, run_id: int) -> None:
        run = self.workspace.runs[run_id]
        self.plots.add_run(run)
        self.history.add_run(run)
        if run_id in self.workspace.training:  # started here (not found in the folder): its samples follow
            self.samples.append(f'<p style="color:{run.color}"><b>{html.escape(run.name)}</b></p>')
            self._watch_folders()

    def _on_run_changed(self, run_id: int) -> None:
        self.plots.mark_dirty(run_id)
        self.history.update_run(run_id)
        run = self.workspace.runs.get(run_id)
        if run is not None:
            shown = self.health_tab.run
            if shown is None or not (shown.health or shown.histograms):
                self._show_health_run()
            self.health_tab.run_changed(run)
            self.histogram_tab.run_changed(run)

    def _show_health_run(self) -> None:
        """The Network health tab follows the selected run, else the newest."""
        runs = self.workspace.runs
        run = runs.get(self.history.current_run_id()) if self.history.current_run_id() is not None else None
        self.health_tab.show_run(run or (runs[max(runs)] if runs else None))
        self.histogram_tab.show_run(self.health_tab.run)

    def _on_run_removed(self, run_id: int) -> None:
        self.plots.remove_run(run_id)
        self.history.remove_run(run_id)
        self._show_health_run()
        self._update_buttons()

    def _selection_to_model(self) -> None:
        self._show_health_run()
        if not self._syncing:
            self._syncing = True
            try:
                self.workspace.state.selected = self.history.current_run_id()
            finally:
                self._syncing = False

    def _on_model_selected(self, run_id: int | None) -> None:
        if not self._syncing and run_id is not None and run_id != self.history.current_run_id():
            self.history.select_run(run_id)

    def _confirm(self, question: str) -> bool:
        from PySide6.QtWidgets import QApplication, QMessageBox

        if QApplication.platformName() == "offscreen":
            return True  # headless (tests, scripts): nobody to ask
        answer = QMessageBox.question(self, "Autograd Explorer", question,
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def prepare_screenshot(self, preset: str | None = None, example: str | None = None,
                           step: int | None = None) -> None:
        """Headless set-up for `--screenshot`: a preset and a finished run of `step` steps.

        Without `step`, the tiny preset trains SCREENSHOT_STEPS steps (a few seconds on a CPU) so the
        picture shows curves and samples; `--step 0`, or a preset too big for this machine, shows the
        configured form only.
        """
        del example
        self.ensure_core()
        if preset is not None and preset not in info.preset_names():
            names = ", ".join(info.preset_names())
            raise ValueError(f"unknown pretraining preset {preset!r}; choose one of {names}")
        self.workspace.set_preset(preset or "tiny")
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
        idle = not self._process.is_running()
        return self.workspace.flush_files(max(0.0, deadline - time.monotonic())) and idle

    def shutdown(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stop training and background jobs; called when the window closes and when the app quits.

        A run that has trained steps stops after its current one and writes its checkpoint, waited for up
        to `wait_s` seconds with a note in the panel, so the next start lists it and Continue resumes it.
        A run still starting (nothing trained) ends at once. Torch still loading: the tabs are never built.
        """
        self._retrain_pending = self._train_pending = False
        self._closed = True
        if self.core is not None:
            self.core.stop()
        if self._core_built:
            self._scan_timer.stop()
        run = self._active
        if self._process.is_running() and run is not None and run.steps_done() > 0:
            label = run.name.split(" · ")[0]
            note = (f"Saving {label}'s checkpoint before closing: it stops after its current step (waiting "
                    f"at most {wait_s:.0f} s)…")
            self.show_message(note, "info")
            self.progress_label.setText(note)
            self._process.shutdown(timeout=wait_s, paint=True)
        else:
            self._process.shutdown()
        # the run's last files (queued by its end just now) are on disk before the window goes
        self.workspace.flush_files(wait_s)
        if self._core_built:
            self._scanner.shutdown()
            self._sampler.shutdown()
        self.form.shutdown()
        self.estimates.shutdown()
        for tab in self._inspection_tabs:
            if hasattr(tab, "shutdown"):
                tab.shutdown()

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
        self.workspace.add_records(run.run_id, records)
        for record in records:
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

    def _on_finished(self, result: dict[str, Any]) -> None:
        run, self._active = self._active, None
        waiters, self._checkpoint_waiters = self._checkpoint_waiters, []
        for callback in waiters:  # the final checkpoint (if any) is written: inspect that
            QTimer.singleShot(0, callback)
        if run is not None:
            self.workspace.finish_run(run.run_id, result.get("status", "stopped"), result.get("message", ""),
                                      result.get("checkpoint"))
            if run.status == "error" and not self.banner.isVisible():
                self.show_message(f"Training stopped: {run.message}", "error")
            self.history.update_run(run.run_id)
            self.plots.mark_dirty(run.run_id)
            self.progress_label.setText(finished_text(run))
            self.sig_run_finished.emit(run.run_id, run.status)
        self._update_buttons()
        if self._retrain_pending:
            self._retrain_pending = False
            # Let the finished signal settle before the next process starts.
            QTimer.singleShot(0, self.train)

    def _show_start(self, run: PretrainRun, record: dict[str, Any]) -> None:
        params = record.get("parameters")
        vocab = record.get("vocab_size")
        tokenizer = record.get("tokenizer", "char")
        unit = "distinct characters" if tokenizer == "char" else "BPE tokens"
        text = f"Training on {record.get('device', '?')}"
        if record.get("dtype") == "bfloat16":
            text += " in mixed precision (bf16 products, float32 weights)"
        # why this precision ("auto" on a CPU measures bf16 against float32 at the start): while it trains
        why = str(record.get("dtype_note") or "")
        self.progress_label.setToolTip(f"Precision: {why}" if why else "")
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

    def _show_progress(self, run: PretrainRun, record: dict[str, Any]) -> None:
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
                 f"{record['step_s'] * 1000:,.0f} ms/step" if record.get("step_s") else "",
                 f"peak {info.format_bytes(record['peak_memory'])}"
                 + (" (process)" if record.get("peak_memory_kind") == "rss" else "")
                 if record.get("peak_memory") else "",
                 f"on {run.device}" if run.device else ""]
        text = "  ·  ".join(p for p in parts if p)
        if run.status == "paused":
            text += "  ·  paused"
        self.progress_label.setText(text)

    def _append_sample(self, run: PretrainRun, record: dict[str, Any]) -> None:
        step = record.get("step", "?")
        text = html.escape(str(record.get("text", "")))
        self.sample_marks.append(  # appended to self.samples, its place kept for the step cursor
            run.run_id, step,
            f'<div style="margin-top:6px"><span style="color:{run.color}; font-weight:600">step {step}</span>'
            f'<pre style="margin:2px 0 0 0; white-space:pre-wrap">{text}</pre></div>'
        )
        bar = self.samples.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- estimates and buttons --------------------------------------------------------------------
    def _update_estimates(self) -> None:
        messages = self.form.messages()
        settings = self.form.settings_dict()
        if self._core_built and not self._process.is_running() and "steps" not in messages:
            self.progress.setRange(0, int(settings["steps"]))
            self.progress.setValue(0)
        # before torch: the count and the estimate (the device's memory asks torch)
        self._refuse = self.estimates.update_from(self.form.config_dict(), settings, messages,
                                                  vocab_pending=self.form.vocab_pending(),
                                                  with_device=self._core_built)
        self._update_buttons()

    def _update_buttons(self) -> None:
        # Train starts a new run when none is going; Retrain only exists for a run that is going: it
        # stops that run (checkpoint kept) and starts a new one with the form's settings in one click.
        if not self._core_built:
            return
        running = self._process.is_running()
        can_train = self.form.is_valid() and not self._refuse
        self.train_button.setEnabled(not running and can_train)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if self._process.is_paused() else "Pause")
        self.stop_button.setEnabled(running)
        self.retrain_button.setEnabled(running and can_train)
        self.train_reason.setText(self.train_disabled_reason())
        self._colour_train_reason()
        self.form.preset.setEnabled(True)

    def _colour_train_reason(self) -> None:
        """A reason that needs the user to act in the error colour; "a run is going" in the muted one."""
        theme = getattr(self, "_theme", themes.get_theme())
        colour = theme["muted"] if self._process.is_running() else theme["error"]
        self.train_reason.setStyleSheet(f"color: {colour};")

    def train_disabled_reason(self) -> str:
        """Why Train cannot be pressed now, in a few words ("" when it can)."""
        if self._process.is_running():
            return ("A run is going: Pause or Stop it, or Retrain to restart it with the form's settings."
                    if self.form.is_valid() and not self._refuse else "A run is going.")
        messages = self.form.messages()
        if messages:
            return f"Fix the form first: {next(iter(messages.values()))}"
        if self._refuse:
            warning = self.fit_warning.text().lstrip("⚠ ").strip()
            return f"Cannot train here: {warning}" if warning else "This configuration cannot train here."
        return ""

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

    def _add_inspection_tabs(self):
        """Network health, attention, trace, histograms and the lens tabs: one tab per `yield`."""
        from explorer.ui.pretrain.attention import AttentionTab
        from explorer.ui.pretrain.health import HealthTab
        from explorer.ui.pretrain.histograms import HistogramView
        from explorer.ui.pretrain.trace_step import TraceTab

        self.health_tab = HealthTab(self, later=True)
        yield from self.health_tab.build_steps()
        self._inspection_tabs: list[QWidget] = [self.health_tab]
        self.tabs.addTab(self.health_tab, "Network health")
        self.tabs.setTabToolTip(1, "Why a run trains well or badly: each block's gradient norm and "
                                   "update size over the steps, with the steps where clipping acted")
        yield
        attention = AttentionTab(self, later=True)
        yield from attention.build_steps()  # its colour bar is a whole pyqtgraph plot: a piece of its own
        self._inspection_tabs.append(attention)
        self.tabs.addTab(attention, "Attention maps")
        yield
        trace = TraceTab(self)
        self._inspection_tabs.append(trace)
        self.tabs.addTab(trace, "Trace one step")
        yield
        self.histogram_tab = HistogramView(self)
        self._inspection_tabs.append(self.histogram_tab)
        index = self.tabs.addTab(self.histogram_tab, "Histograms")
        self.tabs.setTabToolTip(index, "Each block's activations and gradients as histograms, every "
                                       "hist_every steps, with a step slider")
        yield
        yield from self._add_lens_tabs()

    def _add_lens_tabs(self):
        """The logit lens and the per-token loss (ui/pretrain/lens.py), after the other tabs."""
        from explorer.ui.pretrain.lens import LogitLensTab, TokenLossTab

        self.lens_tab = LogitLensTab(self)
        yield
        self.token_loss_tab = TokenLossTab(self)
        for tab, title, tip in (
                (self.lens_tab, "Logit lens", "What each layer's residual stream would predict, read through "
                 "the final norm and the output head: how the prediction forms block by block"),
                (self.token_loss_tab, "Per-token loss", "The run's validation text coloured by each token's "
                 "loss, with what the model expected under the pointer")):
            self._inspection_tabs.append(tab)
            self.tabs.setTabToolTip(self.tabs.addTab(tab, title), tip)

    def _follow_steps(self) -> None:
        """Hovering or clicking the loss curve moves the cursors, the histograms and the samples."""
        self.step_picker = PlotStepPicker(self.plots.loss_widget, self.step_sync, self.plots.step_at)
        for view in (self.plots, self.health_tab, self.histogram_tab, self.sample_marks):
            self.step_sync.register(view)

    def _focus_run_id(self) -> int | None:
        run = self.health_tab.run if hasattr(self, "health_tab") else None
        return run.run_id if run is not None else None

    def model_source(self) -> dict[str, Any]:
        """What the inspection tabs should look at: the selected (else latest) run with a checkpoint."""
        source = self.workspace.model_source(self.history.current_run_id())
        if source["checkpoint"] is None:
            source.update(config=self.form.config_dict() if self.form.is_valid() else None,
                          settings=self.form.settings_dict(), corpus=self.form.corpus_path())
        return source


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


def finished_text(run: PretrainRun) -> str:
    """The status line of an ended run ("Finished: Run 1 — train loss 2.310, validation loss 2.402."), as the
    panel writes it when the run ends and again when a session brings the run back."""
    train, val = run.final_losses()
    summary = {"done": "Finished", "stopped": "Stopped", "error": "Failed"}.get(run.status, run.status)
    losses = f"train loss {train:.3f}" if train is not None else "no step finished"
    if val is not None:
        losses += f", validation loss {val:.3f}"
    return f"{summary}: {run.name} — {losses}."
