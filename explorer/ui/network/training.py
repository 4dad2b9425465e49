"""Training on toy 2-D data: dataset controls, train/pause/reset, boundary scatter and live curves.

Plot items are created once and updated with setData; records arrive from the one Worker already
batched (at most ~30 batches a second), so each batch is one redraw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.core.mlp.network import NetSpec, NetSpecError, build_model
from explorer.core.mlp.toydata import (
    DATASET_LABELS,
    EXTENT,
    ToyDataset,
    TrainControl,
    check_toy_spec,
    decision_grid,
    make_dataset,
    train_paced,
)
from explorer.core.speed import single_torch_thread
from explorer.core.workspaces.network import NetworkWorkspace, ToyRun
from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel
from explorer.ui.common.plot_menus import plot_widget
from explorer.ui.common.step_sync import nearest_step, place_cursor, step_cursor
from explorer.ui.common.worker import Worker
from explorer.ui.network.health import HealthView, LRTestView
from explorer.ui.network.landscape import LandscapeView

CLASS_COLORS = ((37, 99, 235), (234, 88, 12))  # class 0 blue, class 1 orange
SPEEDS = (
    ("slow: 20 steps/s", 20.0),
    ("medium: 100 steps/s", 100.0),
    ("fast: 500 steps/s", 500.0),
    ("max", 0.0),
)
RUN_COLORS = ((220, 38, 38), (37, 99, 235), (22, 163, 74), (147, 51, 234), (202, 138, 4), (8, 145, 178))
MAX_OLD_RUNS = 5


def run_colour(number: int, theme: dict[str, str]) -> tuple[int, int, int]:
    """Run `number`'s curve colour as it reads on `theme`'s plots (contrast at least 3, theme.plot_colour)."""
    r, g, b = RUN_COLORS[(number - 1) % len(RUN_COLORS)]
    shown = themes.plot_colour(f"#{r:02x}{g:02x}{b:02x}", theme).lstrip("#")
    return int(shown[0:2], 16), int(shown[2:4], 16), int(shown[4:6], 16)
GRID = 96  # decision-boundary image resolution (cells per side)


@dataclass
class RunCurves:
    """The plot items of one toy run; the data behind them is the workspace's ToyRun."""

    run: ToyRun
    color: tuple[int, int, int]
    items: list = field(default_factory=list)  # train loss, test loss, train acc, test acc curves

    @property
    def number(self) -> int:
        """The run's number (1, 2, ...)."""
        return self.run.number

    @property
    def label(self) -> str:
        """The legend's text."""
        return self.run.label

    @property
    def planned_steps(self) -> int:
        """Steps the run was started for."""
        return self.run.planned_steps

    @property
    def steps(self) -> list[int]:
        """Recorded steps."""
        return self.run.steps

    def curves(self) -> tuple[list[float], ...]:
        """Train loss, test loss, train accuracy, test accuracy."""
        return self.run.train_loss, self.run.test_loss, self.run.train_acc, self.run.test_acc


class TrainView(QWidget):
    """Toy-data training workspace; `set_spec` gives it the network to train."""

    sig_use_toy_preset = Signal()
    """The user asked to switch the form to the toy-2d preset (this network cannot train on 2-D data)."""

    sig_dataset_changed = Signal(dict)
    """The user changed the dataset settings (name, noise, count, test_fraction, seed, steps, speed)."""

    sig_running_changed = Signal(bool)
    """Training started (True) or ended/paused (False)."""

    def __init__(self, parent=None, later: bool = False):
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__(parent)
        self.spec: NetSpec | None = None
        self.data: ToyDataset | None = None
        self.control: TrainControl | None = None  # the running run's pause/stop flags
        self._speed = 0.0  # steps per second of the running run (read by the worker each step)
        self._worker = Worker(self)
        self._worker.sig_progress.connect(self._on_progress)
        self._worker.sig_done.connect(self._on_finished)
        self._worker.sig_failed.connect(lambda m: self._on_finished({"type": "error", "message": m}))
        self.runs: list[RunCurves] = []
        self.workspace = NetworkWorkspace()  # replaced by bind()
        self._showing = False
        self.last_record: dict | None = None
        self._stale = True  # the next Train press starts a new run
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The controls, each plot and each side tab, then the layout: one piece per `yield`."""
        self._build_controls()
        yield
        yield from self._build_plots()
        self._layout()
        yield
        self.regenerate()

    # -- public API ------------------------------------------------------------------------------

    def set_spec(self, spec: NetSpec) -> None:
        """The network to train next; a change makes the next Train press start a new run."""
        self.spec = spec
        self._stale = True
        self.lr_test.set_problem(spec, self.data)
        self.landscape.set_problem(spec, self.data)
        if self.is_training():
            self._stop_thread()
            self._message("The settings changed, so this run stopped. Press Train to start a new run.")
        if not self.runs:
            self._show_untrained_boundary()
        self._update_trainable()

    def is_training(self) -> bool:
        """True from Train until the run ends (paused included)."""
        return self.control is not None and self._worker.is_busy()

    def is_running(self) -> bool:
        """True while a run trains (not paused, not finished)."""
        return self.is_training() and not self.control.paused

    def train_or_pause(self) -> None:
        """The Train button: start a run, pause it, or resume it."""
        if self.is_training():
            if self.control.paused:
                self.control.resume()
                self._set_state("running")
            else:
                self.control.pause()
                self._set_state("paused")
            return
        self.start_run()

    def start_run(self) -> None:
        """Start a new run from fresh weights; earlier runs stay, dimmed."""
        if self.spec is None or self.data is None:
            return
        try:
            check_toy_spec(self.spec)
        except NetSpecError as exc:
            self._message(f"Cannot train on the toy data: {exc}. The toy-2d preset fits it.", error=True)
            return
        self._stop_thread()
        self._new_run(self.steps.value())
        self._speed = SPEEDS[self.speed.currentIndex()][1]
        control = self.control = TrainControl()
        spec, data, steps = self.spec, self.data, self.steps.value()

        def train(job):
            def report(record: dict) -> None:
                if job.cancelled:
                    control.request_stop()
                job.progress(record)

            return train_paced(spec, data, steps, control, lambda: self._speed, report, GRID)

        self._stale = False
        self._set_state("running")
        self._worker.submit(train)

    def bind(self, workspace: NetworkWorkspace) -> None:
        """Keep the runs in `workspace` (and draw the ones it already has)."""
        self.workspace = workspace
        workspace.events.runs_changed.connect(self._sync_runs)
        self._sync_runs()

    def dataset_settings(self) -> dict:
        """The dataset controls as the workspace saves them."""
        return {"name": self.dataset.currentData(), "noise": self.noise.value(), "count": self.count.value(),
                "test_fraction": self.split.value(), "seed": self.data_seed.value(),
                "steps": self.steps.value(), "speed": self.speed.currentIndex()}

    def show_dataset(self, settings: dict) -> None:
        """Put saved dataset settings into the controls (one regeneration, no echo)."""
        if settings == self.dataset_settings():
            return
        self._showing = True
        try:
            index = self.dataset.findData(settings.get("name"))
            if index >= 0:
                self.dataset.setCurrentIndex(index)
            for widget, key in ((self.noise, "noise"), (self.count, "count"), (self.split, "test_fraction"),
                                (self.data_seed, "seed"), (self.steps, "steps")):
                widget.setValue(settings[key])
            self.speed.setCurrentIndex(int(settings.get("speed", 1)))
        finally:
            self._showing = False
        self.regenerate()

    def reset(self) -> None:
        """Stop training and forget every run's curves."""
        self._stop_thread()
        self.workspace.clear_runs()
        self._stale = True
        self._set_state("idle")
        self._show_untrained_boundary()
        self._message("Reset: no runs yet. Press Train.")

    def regenerate(self) -> None:
        """Make the dataset from the controls and draw its points."""
        if self._showing:
            return
        self._stop_thread()
        self.sig_dataset_changed.emit(self.dataset_settings())
        try:
            self.data = make_dataset(
                self.dataset.currentData(),
                n=self.count.value(),
                noise=self.noise.value(),
                test_fraction=self.split.value(),
                seed=self.data_seed.value(),
            )
        except ValueError as exc:
            self._message(str(exc), error=True)
            return
        self._stale = True
        self.lr_test.set_problem(self.spec, self.data)
        self.landscape.set_problem(self.spec, self.data)
        self._draw_points()
        self._show_untrained_boundary()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the plots for a theme of explorer.ui.common.theme."""
        titles = {
            self.loss_plot: "loss (solid: train, dashed: test)",
            self.acc_plot: "accuracy (solid: train, dashed: test)",
        }
        for plot in (self.boundary_plot, self.loss_plot, self.acc_plot):
            themes.style_plot(plot, plot.getPlotItem(), theme, titles.get(plot), "10pt")
        self._error_colour = theme["error"]
        self.health.set_theme(theme)
        self.lr_test.set_theme(theme)
        self.landscape.set_theme(theme)
        self._apply_boundary_colours(theme)
        if self.runs:  # the runs' curves again, in their colours as they read on this theme
            for curves in self.runs:
                self._remove_run(curves)
            self.runs = []
            self._sync_runs()
        if self.status.property("error"):
            self.status.setStyleSheet(f"color: {self._error_colour};")

    def _apply_boundary_colours(self, theme: dict[str, str]) -> None:
        """Class 0 blue, class 1 orange, undecided in the plot's own background: pale tints on light,
        deep ones on dark, so the points (saturated) stand out on both."""
        if theme.get("name") == "dark":
            stops = [(38, 62, 110), pg.mkColor(theme["panel"]).getRgb()[:3], (112, 62, 28)]
            line = pg.mkColor(theme["text"])
        else:
            stops = [(147, 180, 245), (250, 250, 250), (253, 186, 140)]
            line = pg.mkColor(30, 30, 30)
        cmap = pg.ColorMap([0.0, 0.5, 1.0], stops)
        self.image.setLookupTable(cmap.getLookupTable(0.0, 1.0, 256))
        if hasattr(self, "contour"):
            self.contour.setPen(pg.mkPen(line, width=2))

    def stop(self, wait_ms: int = 5000) -> None:
        """Stop the worker threads (used by shutdown)."""
        self._stop_thread(wait_ms)
        self.lr_test.stop(wait_ms)
        self.landscape.stop(wait_ms)

    def train_blocking(self, steps: int) -> None:
        """Train a new run to the end on the calling thread (headless screenshots only)."""
        if self.spec is None or self.data is None:
            return
        from explorer.core.mlp.toydata import train_toy

        self._stop_thread()
        self._new_run(steps)
        try:
            with single_torch_thread():
                records = list(
                    train_toy(
                        self.spec, self.data, steps, record_every=2, boundary_every=steps, grid_size=GRID
                    )
                )
        except NetSpecError as exc:
            self._message(str(exc), error=True)
            return
        self._on_records([r for r in records if r["type"] in ("step", "boundary")])
        self._on_finished(records[-1])

    # -- building ----------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self.dataset = QComboBox()
        self.dataset.setObjectName("datasetCombo")
        for key, label in DATASET_LABELS.items():
            self.dataset.addItem(label, key)
        self.dataset.setToolTip("Toy 2-D dataset of two classes, generated in the app")
        self.noise = _double(
            0.0, 0.5, 0.1, 0.05, "Noise: standard deviation of the jitter added to each point"
        )
        self.count = _int(40, 2000, 200, "Number of points (train + test)")
        self.split = _double(0.1, 0.5, 0.25, 0.05, "Fraction of the points held out as test data")
        self.data_seed = _int(0, 9999, 0, "Seed of the dataset's random generator")
        for w in (self.noise, self.count, self.split, self.data_seed):
            w.valueChanged.connect(self.regenerate)
        self.dataset.currentIndexChanged.connect(self.regenerate)
        self.train_button = QPushButton("▶ Train")
        self.train_button.setObjectName("networkTrainButton")
        actions.describe_button(self.train_button, "network.train")
        self.train_button.clicked.connect(self.train_or_pause)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setObjectName("networkResetButton")
        actions.describe_button(self.reset_button, "network.reset_training")
        self.reset_button.clicked.connect(self.reset)
        self.steps = _int(10, 50000, 1000, "Training steps (mini-batches) per run")
        self.steps.setObjectName("networkSteps")
        self.steps.valueChanged.connect(self._settings_edited)
        self.speed = QComboBox()
        self.speed.setObjectName("networkSpeed")
        for label, _ in SPEEDS:
            self.speed.addItem(label)
        self.speed.setCurrentIndex(1)
        self.speed.setToolTip("How fast to train: slow enough to watch the boundary move, or flat out")
        self.speed.currentIndexChanged.connect(self._apply_speed)
        self.speed.currentIndexChanged.connect(self._settings_edited)
        self.status = ElidedLabel("", lines=2)  # a fixed height: a long message moves no plot
        self.status.setObjectName("trainStatus")
        self.use_toy_button = QPushButton("Use the toy-2d preset")
        self.use_toy_button.setObjectName("useToyPresetButton")
        self.use_toy_button.setToolTip("Switch the network on the left to the toy-2d preset: 2 inputs "
                                       "(the x and y of a point), one output (the probability of class 1)")
        self.use_toy_button.clicked.connect(self.sig_use_toy_preset.emit)
        self.use_toy_button.hide()
        self._error_colour = "#b91c1c"

    def _build_plots(self):
        """The plots and side tabs, one piece per `yield`."""
        self.boundary_plot = plot_widget()
        self.boundary_plot.setObjectName("boundaryPlot")
        self.boundary_plot.setToolTip(
            "The data (filled: train, hollow: test) over the network's output: the colour is the predicted "
            "probability of class 1 (orange) against class 0 (blue); the boundary is where it is 50 %."
        )
        self.boundary_plot.setBackground("w")
        self.boundary_plot.setAspectLocked(True)
        self.boundary_plot.setRange(xRange=EXTENT[:2], yRange=EXTENT[2:], padding=0)
        self.boundary_plot.setMouseEnabled(False, False)
        self.boundary_plot.hideButtons()
        self.image = pg.ImageItem()
        self._apply_boundary_colours(themes.get_theme())
        self.image.setLevels((0.0, 1.0))
        self.boundary_plot.addItem(self.image)
        self.train_points = pg.ScatterPlotItem(size=7, antialias=True, pen=pg.mkPen("w", width=0.8))
        self.test_points = pg.ScatterPlotItem(size=7, antialias=True, brush=pg.mkBrush(255, 255, 255))
        self.boundary_plot.addItem(self.train_points)
        self.boundary_plot.addItem(self.test_points)
        self.contour = pg.IsocurveItem(level=0.5, pen=pg.mkPen((30, 30, 30), width=2))
        self.contour.setParentItem(self.image)
        yield
        self.loss_plot = plot_widget()
        self.loss_plot.setObjectName("networkLossPlot")
        self.loss_plot.setBackground("w")
        self.loss_plot.setTitle("loss (solid: train, dashed: test)", color="#374151", size="10pt")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.loss_plot.setToolTip(
            "Training and test loss of this run; earlier runs stay dimmed for comparison"
        )
        yield
        self.acc_plot = plot_widget()
        self.acc_plot.setObjectName("networkAccuracyPlot")
        self.acc_plot.setBackground("w")
        self.acc_plot.setTitle("accuracy (solid: train, dashed: test)", color="#374151", size="10pt")
        self.acc_plot.setLabel("bottom", "step")
        self.acc_plot.setYRange(0.0, 1.02, padding=0)
        self.acc_plot.showGrid(x=True, y=True, alpha=0.2)
        self.acc_plot.setXLink(self.loss_plot)
        self.acc_plot.setMouseEnabled(x=True, y=False)
        self.loss_plot.enableAutoRange(x=False, y=True)
        self.acc_plot.setToolTip("Fraction of points classified correctly, train and test")
        # The step chosen on the loss curve (explorer/ui/common/step_sync.py), None: none marked.
        self.cursors = [step_cursor(self.loss_plot), step_cursor(self.acc_plot)]
        yield
        self.health = HealthView(later=True)
        yield from self.health.build_steps()
        self.health.setObjectName("layerHealth")
        self.health.plots["layerGradPlot"].setXLink(self.loss_plot)
        yield
        self.lr_test = LRTestView()
        yield
        self.side_tabs = QTabWidget()
        self.side_tabs.setObjectName("networkHealthTabs")
        self.side_tabs.addTab(self.health, "Layer health")
        self.side_tabs.addTab(self.lr_test, "LR range test")
        yield
        self.landscape = LandscapeView(later=True)
        yield from self.landscape.build_steps()
        self.landscape.setObjectName("lossLandscape")
        self.side_tabs.addTab(self.landscape, "Loss landscape")
        self.side_tabs.setTabToolTip(2, "The loss on a plane through the newest run's weights, with the path "
                                        "training took: a slice of a surface over hundreds of dimensions")
        self.side_tabs.setTabToolTip(0, "Why a run trains well or badly: per-layer gradients, update sizes "
                                        "and activations of the newest run, one line per layer")
        self.side_tabs.setTabToolTip(1, "Find a learning rate before training: sweep it on a copy of the "
                                        "weights and read where the loss falls fastest")

    def step_at(self, x: float) -> int | None:
        """The recorded step of the newest run nearest to the loss plot's x coordinate `x`."""
        return nearest_step(self.runs[-1].steps, x) if self.runs else None

    def show_step(self, step: int | None) -> None:
        """Mark `step` (None: no mark) on the loss and accuracy plots."""
        for line in self.cursors:
            place_cursor(line, step)

    def _layout(self) -> None:
        data_box = QGroupBox("Toy data")
        grid = QGridLayout(data_box)
        for col, (label, widget) in enumerate(
            (("Dataset", self.dataset), ("Noise", self.noise), ("Points", self.count), ("Test", self.split),
             ("Seed", self.data_seed))
        ):
            grid.addWidget(_label(label, widget), 0, 2 * col)
            grid.addWidget(widget, 0, 2 * col + 1)
        run_row = QHBoxLayout()
        for widget in (self.train_button, self.reset_button, _label("Steps", self.steps), self.steps,
                       _label("Speed", self.speed)):
            run_row.addWidget(widget)
        run_row.addWidget(self.speed)
        run_row.addStretch(1)
        plots = QGridLayout()
        # The data and the curves on top, each layer's health below them across the whole width; the
        # user can move the line between them.
        top = QWidget()
        top_row = QHBoxLayout(top)
        top_row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.boundary_plot, self.loss_plot, self.acc_plot):
            top_row.addWidget(widget, 1)
        self.plot_splitter = QSplitter(Qt.Vertical)
        self.plot_splitter.setObjectName("networkPlotSplitter")
        self.plot_splitter.setChildrenCollapsible(False)
        self.plot_splitter.addWidget(top)
        self.plot_splitter.addWidget(self.side_tabs)
        self.plot_splitter.setSizes([1000, 1100])
        plots.addWidget(self.plot_splitter, 0, 0)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(data_box)
        box.addLayout(run_row)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.use_toy_button)
        box.addLayout(status_row)
        box.addLayout(plots, 1)

    # -- runs --------------------------------------------------------------------------------------

    def _settings_edited(self, *_args) -> None:
        if not self._showing:
            self.sig_dataset_changed.emit(self.dataset_settings())

    def _new_run(self, steps: int) -> None:
        self.workspace.start_run(steps)  # emits runs_changed: _sync_runs draws it

    def _sync_runs(self) -> None:
        """Draw the workspace's runs: the newest bright, earlier ones dimmed; curves follow their data."""
        model_runs = list(self.workspace.state.runs)
        if [r.run for r in self.runs] != model_runs:
            for curves in self.runs:
                self._remove_run(curves)
            self.runs = [self._make_curves(run) for run in model_runs]
            for curves in self.runs[:-1]:  # dim every earlier run
                for item in curves.items:
                    pen = item.opts["pen"]
                    style = pen.style() if pen is not None else Qt.SolidLine
                    item.setPen(pg.mkPen((*curves.color, 70), width=1, style=style))
            if self.runs:
                # A fixed step axis per run: re-ranging x on every update would redraw the axes each time.
                self.loss_plot.setXRange(0, max(r.planned_steps for r in self.runs), padding=0.02)
                self._show_ended_run(model_runs[-1])
            else:
                self._show_untrained_boundary()
        for curves in self.runs[-1:]:
            x = np.asarray(curves.steps, dtype=float)
            for item, ys in zip(curves.items, curves.curves(), strict=True):
                item.setData(x, np.asarray(ys, dtype=float))
        self.health.show_run(self.runs[-1].run if self.runs else None)
        self.landscape.show_run(self.runs[-1].run if self.runs else None)

    def _show_ended_run(self, run: ToyRun) -> None:
        """A run brought back by a session: its last boundary and its last status line, as it was left."""
        if run.status == "running" or self.control is not None or not run.steps:
            return
        if run.boundary is not None:
            self._set_boundary(np.asarray(run.boundary, dtype=float))
        last = {"step": run.steps[-1], "train_loss": run.train_loss[-1], "test_loss": run.test_loss[-1],
                "train_acc": run.train_acc[-1], "test_acc": run.test_acc[-1]}
        verb = {"done": "finished", "error": "failed"}.get(run.status, "stopped")
        self._message(f"{self._progress_text(run.number, last)} · {verb}. Change a setting and press Train "
                      "to compare a new run.")

    def _make_curves(self, run: ToyRun) -> RunCurves:
        color = run_colour(run.number, themes.get_theme())
        curves = RunCurves(run, color)
        solid, dashed = pg.mkPen(color, width=2), pg.mkPen(color, width=2, style=Qt.DashLine)
        curves.items = [
            self.loss_plot.plot([], [], pen=solid, name=run.label),
            self.loss_plot.plot([], [], pen=dashed),
            self.acc_plot.plot([], [], pen=solid),
            self.acc_plot.plot([], [], pen=dashed),
        ]
        for item in curves.items:
            # Long runs: draw at most about one point per pixel, and only what is in view.
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
        x = np.asarray(run.steps, dtype=float)
        for item, ys in zip(curves.items, curves.curves(), strict=True):
            item.setData(x, np.asarray(ys, dtype=float))
        return curves

    def _remove_run(self, curves: RunCurves) -> None:
        for plot, item in zip(
            (self.loss_plot, self.loss_plot, self.acc_plot, self.acc_plot), curves.items, strict=True
        ):
            plot.removeItem(item)

    def _on_records(self, records: list[dict]) -> None:
        if not self.runs:
            return
        for record in records:
            if record["type"] == "step":
                self.last_record = record
            elif record["type"] == "boundary":
                self._set_boundary(record["grid"])
        self.workspace.add_records(records)
        if self.last_record is not None:
            self._message(self._progress_text(self.runs[-1].number, self.last_record))

    def _on_finished(self, record: dict) -> None:
        self.control = None
        self._set_state("idle")
        kind = record.get("type")
        self.workspace.finish_run(kind)
        if kind == "error":
            self._message(f"Training stopped: {record.get('message')}", error=True)
        elif self.last_record is not None and self.runs:
            verb = "finished" if kind == "done" else "stopped"
            text = self._progress_text(self.runs[-1].number, self.last_record)
            self._message(f"{text} · {verb}. Change a setting and press Train to compare a new run.")
        self._stale = True

    def _progress_text(self, number: int, r: dict) -> str:
        n_train = len(self.data.x_train) if self.data is not None else 1
        epochs = r["step"] * min(self.spec.batch_size, n_train) / n_train if self.spec else 0
        return (
            f"Run {number} · step {r['step']} ({epochs:.1f} epochs) · train loss {r['train_loss']:.4f}, "
            f"accuracy {r['train_acc']:.1%} · test loss {r['test_loss']:.4f}, accuracy {r['test_acc']:.1%}"
        )

    # -- drawing -----------------------------------------------------------------------------------

    def _draw_points(self) -> None:
        def spots(x, y, filled: bool):
            brushes = [pg.mkBrush(*CLASS_COLORS[int(c)]) if filled else pg.mkBrush(255, 255, 255) for c in y]
            pens = [
                pg.mkPen("w", width=0.8) if filled else pg.mkPen(*CLASS_COLORS[int(c)], width=2) for c in y
            ]
            return {"x": x[:, 0].numpy(), "y": x[:, 1].numpy(), "brush": brushes, "pen": pens}

        d = self.data
        self.train_points.setData(**spots(d.x_train, d.y_train, True))
        self.test_points.setData(**spots(d.x_test, d.y_test, False))

    def _set_boundary(self, grid: np.ndarray) -> None:
        # ImageItem indexes [x, y]; the grid is [row = y, col = x].
        self.image.setImage(grid.T, levels=(0.0, 1.0), autoLevels=False)
        x0, x1, y0, y1 = EXTENT
        self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.contour.setData(grid.T)
        self.boundary_grid = grid

    def _show_untrained_boundary(self) -> None:
        if self.spec is None:
            return
        try:
            check_toy_spec(self.spec)
        except NetSpecError as exc:
            self.image.clear()
            self.contour.setData(None)
            self._message(
                f"This network cannot classify the toy data: {exc}. The toy-2d preset can.", error=True
            )
            return
        self._set_boundary(decision_grid(self.spec, build_model(self.spec), GRID))
        if not self.runs:
            self._message("The colours show the untrained network's guess. "
                          f"Press Train ({actions.key_text('network.train')}).")

    def _message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {self._error_colour};" if error else "")
        self.status.setProperty("error", error)

    def _update_trainable(self) -> None:
        """Train only for a network that fits the 2-D toy data; otherwise offer the preset that does."""
        try:
            check_toy_spec(self.spec)
            fits = True
        except NetSpecError:
            fits = False
        self.train_button.setEnabled(fits or self.is_training())
        self.train_button.setToolTip(
            actions.tooltip("network.train") if fits else
            "This network does not take 2-D points (input size 2): change it, or use the toy-2d preset."
        )
        self.use_toy_button.setVisible(not fits)

    def _set_state(self, state: str) -> None:
        self.train_button.setText({"running": "❚❚ Pause", "paused": "▶ Resume"}.get(state, "▶ Train"))
        self.sig_running_changed.emit(state == "running")

    def _apply_speed(self) -> None:
        self._speed = SPEEDS[self.speed.currentIndex()][1]

    def _stop_thread(self, wait_ms: int = 2000) -> None:
        control, self.control = self.control, None
        if control is None:
            return
        control.request_stop()
        self._worker.shutdown(wait_ms)
        self._set_state("idle")

    def _on_progress(self, records: list[dict]) -> None:
        boundaries = [r for r in records if r["type"] == "boundary"]
        kept = [r for r in records if r["type"] != "boundary"]
        self._on_records(kept + boundaries[-1:])


def _label(text: str, buddy) -> QLabel:
    """A field's label that explains the field like the field itself does."""
    label = QLabel(text)
    label.setToolTip(buddy.toolTip())
    label.setBuddy(buddy)
    return label


def _int(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def _double(lo: float, hi: float, value: float, step: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
