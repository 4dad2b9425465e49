"""Why a toy run trains well or badly: per-layer health plots and the learning-rate range test.

`HealthView` draws the newest toy run's per-layer figures (explorer/core/mlp/health.py), one line per
layer, coloured from the input (blue) to the output (red): gradient norms and update-to-weight ratios
on log axes (with the 1e-3 guide line), the share of saturated or dead units, and each activation's
mean and spread. Values that are not finite are gaps. `LRTestView` runs the lr range test on the one
Worker class (its own instance, so the test never cancels a training run) and offers "use it".
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.mlp.health import GUIDE_RATIO, LR_RANGE, health_names, layer_index, toy_lr_test
from explorer.core.mlp.network import NetSpec
from explorer.core.mlp.toydata import ToyDataset, check_toy_spec
from explorer.core.numbers import fmt_number
from explorer.core.speed import single_torch_thread
from explorer.core.workspaces.network import ToyRun
from explorer.ui.common import theme as themes
from explorer.ui.common.labels import ElidedLabel
from explorer.ui.common.plot_menus import plot_widget
from explorer.ui.common.step_sync import place_cursor, step_cursor
from explorer.ui.common.worker import Worker

# Input side to output side: a layer's colour says how deep it is.
DEPTH_COLOURS = ("#2563eb", "#0891b2", "#059669", "#65a30d", "#ca8a04", "#ea580c", "#dc2626")
LR_TEST_STEPS = 100
REDRAW_S = 0.25  # at most four redraws a second of a live run's health (some 40 curves)

PLOTS = (
    # objectName, title, figure keys, log y, tooltip
    ("layerGradPlot", "gradient norm (log)", ("grad_norms",), True,
     "The size of each Linear layer's gradient (weight and bias) at each step. In a deep Sigmoid network "
     "it shrinks layer by layer towards the input: the first layers hardly learn (vanishing gradients)."),
    ("updateRatioPlot", "update / weight (log)", ("update_ratios",), True,
     "|lr·update| / |w|: how much one step changes a layer's weights, relative to their size. About 1e-3 "
     "(the dashed line) is the usual guide; far above it the learning rate is too high, far below it the "
     "layer barely moves."),
    ("activationSharePlot", "saturated or dead share", ("saturated", "dead"), False,
     "Sigmoid/Tanh: the share of outputs in the flat tails (derivative under 6 % of its peak), where "
     "almost no gradient passes. ReLU: the share of units that output 0 for every sample of the batch: "
     "dead units get no gradient, so nothing revives them."),
    ("activationMeanPlot", "mean, spread (dashed)", ("act_mean", "act_std"), False,
     "The mean and standard deviation of each hidden activation's outputs over the batch. A spread "
     "collapsing towards 0 means the layer passes almost no signal."),
)


def layer_colour(i: int, n: int) -> str:
    """The colour of layer i of n: spread over the depth palette, first blue, last red."""
    if n <= 1:
        return DEPTH_COLOURS[0]
    return DEPTH_COLOURS[round(i * (len(DEPTH_COLOURS) - 1) / (n - 1))]


def plottable(values: np.ndarray, log: bool) -> np.ndarray:
    """Values a plot can draw: NaN (a gap) for non-finite values, and for log axes for values <= 0."""
    out = np.array(values, dtype=float)
    out[~np.isfinite(out)] = np.nan
    if log:
        out[out <= 0] = np.nan
    return out


class HealthView(QWidget):
    """Per-layer health of the newest toy run, as four live plots."""

    def __init__(self, parent=None, later: bool = False):
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__(parent)
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The key and each plot: one piece per `yield`."""
        self.plots: dict[str, pg.PlotWidget] = {}
        self.curves: dict[str, list[pg.PlotDataItem]] = {}
        self._names: tuple[list[str], list[str]] = ([], [])
        self._cache: dict[str, tuple[ToyRun, np.ndarray]] = {}
        self._run: ToyRun | None = None
        self._dirty = False
        self._last_draw = 0.0
        self._x_max = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._draw)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.key = QLabel()
        self.key.setObjectName("layerHealthKey")
        self.key.setWordWrap(True)
        self.key.setToolTip("One line per layer, coloured by depth: from the input (blue) to the output "
                            "(red). fc2 and its activation (relu2, tanh2, …) share a colour.")
        box.addWidget(self.key)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        box.addLayout(grid, 1)
        for i, (name, title, _keys, log, tip) in enumerate(PLOTS):
            plot = plot_widget(menu=False)
            plot.setObjectName(name)
            plot.setToolTip(tip)
            plot.setTitle(title, size="9pt")
            plot.setLabel("bottom", "step")
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLogMode(y=log)
            plot.setMinimumSize(120, 100)
            plot.enableAutoRange(x=False)
            grid.addWidget(plot, 0, i)
            self.plots[name] = plot
            self.curves[name] = []
            yield
        self.plots["activationSharePlot"].setYRange(0, 1.02, padding=0)
        self.guide = pg.InfiniteLine(pos=math.log10(GUIDE_RATIO), angle=0,
                                     pen=pg.mkPen("#6b7280", width=1, style=Qt.DashLine))
        self.plots["updateRatioPlot"].addItem(self.guide)
        # The step chosen on the loss curve (explorer/ui/common/step_sync.py): a vertical line on each plot.
        self.cursors = [step_cursor(plot) for plot in self.plots.values()]
        self.empty = True
        self._theme = themes.get_theme()
        self._show_key()

    def show_step(self, step: int | None) -> None:
        """Mark `step` (None: no mark) with a vertical line on every plot."""
        for line in self.cursors:
            place_cursor(line, step)

    def show_run(self, run: ToyRun | None) -> None:
        """Draw `run`'s health curves (None or a run without them clears the plots).

        A live run calls this for every batch of records: it draws at once when the last drawing is
        older than REDRAW_S, else once when that time is up (and while hidden, when shown again).
        """
        same, self._run = run is self._run and run is not None, run
        if same and not self.isVisible() and not self.empty:
            self._dirty = True
            return
        wait = self._last_draw + REDRAW_S - time.monotonic()
        if same and wait > 0:
            if not self._timer.isActive():
                self._timer.start(int(wait * 1000) + 1)
            return
        self._draw()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._timer.stop()
        self._dirty = False
        self._last_draw = time.monotonic()
        run = self._run
        if run is None or not run.grad_norms:
            self._ensure_lines([], [])
            self.empty = True
            return
        linears, acts = health_names(run.spec.spec())
        self._ensure_lines(linears, acts)
        n = min(len(run.steps), len(run.grad_norms))
        x = np.asarray(run.steps[:n], dtype=float)
        if self._x_max != run.planned_steps:  # the loss plot's step axis (side by side: not x-linked)
            self._x_max = run.planned_steps
            for plot in self.plots.values():
                plot.setXRange(0, run.planned_steps, padding=0.02)
        for name, _title, keys, log, _tip in PLOTS:
            items = iter(self.curves[name])
            for key in keys:
                table = self._table(run, key, n)
                for col in range(table.shape[1]):
                    item = next(items, None)
                    if item is not None:
                        item.setData(x, plottable(table[:, col], log), connect="finite")
        self.empty = False

    def _table(self, run: ToyRun, key: str, n: int) -> np.ndarray:
        """run.health(key)'s first n rows, converting only the rows added since the last redraw (a live
        run grows by a few rows per redraw; converting all of them each time would grow without bound)."""
        cached = self._cache.get(key)
        if cached is None or cached[0] is not run or len(cached[1]) > n:
            cached = (run, np.zeros((0, 0)))
        table = cached[1]
        rows = getattr(run, key)[len(table):n]
        if rows:
            width = max(table.shape[1] if len(table) else 0, max(len(r) for r in rows))
            new = np.full((len(rows), width), np.nan)
            for i, row in enumerate(rows):
                new[i, : len(row)] = [np.nan if v is None else v for v in row]
            if len(table) and table.shape[1] != width:
                table = run.health(key)[: len(table)]
            table = np.concatenate([table.reshape(-1, width), new]) if len(table) else new
        self._cache[key] = (run, table)
        return table

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the plots for a theme."""
        for name, title, *_ in PLOTS:
            plot = self.plots[name]
            themes.style_plot(plot, plot.getPlotItem(), theme, title, "9pt")
        self.guide.setPen(pg.mkPen(theme["muted"], width=1, style=Qt.DashLine))
        self._theme = theme
        self._show_key()

    def _ensure_lines(self, linears: list[str], acts: list[str]) -> None:
        if (linears, acts) == self._names:
            return
        self._names = (linears, acts)
        self._show_key()
        for name, _title, keys, _log, _tip in PLOTS:
            plot = self.plots[name]
            for item in self.curves[name]:
                plot.removeItem(item)
            self.curves[name] = []
            layers = linears if keys[0] in ("grad_norms", "update_ratios") else acts
            for key in keys:
                for layer in layers:
                    colour = layer_colour(layer_index(layer) - 1, len(linears))
                    style = Qt.DashLine if key == "act_std" else Qt.SolidLine
                    item = plot.plot([], [], pen=pg.mkPen(colour, width=1.6, style=style))
                    item.setDownsampling(auto=True, method="peak")
                    item.setClipToView(True)
                    self.curves[name].append(item)

    def _show_key(self) -> None:
        linears, _acts = self._names
        if not linears:
            self.key.setText("Train a run to see each layer's health here.")
            return
        swatches = " ".join(f'<span style="color:{layer_colour(i, len(linears))}">■</span>&nbsp;{name}'
                            for i, name in enumerate(linears))
        self.key.setText(f"Layers, input to output: {swatches}. Dashed line: the 1e-3 guide.")


class LRTestView(QWidget):
    """The learning-rate range test: loss against an exponentially growing lr, from a copy of the weights."""

    sig_use_lr = Signal(float)
    """The user pressed "Use it": make this the network's learning rate."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.spec: NetSpec | None = None
        self.data: ToyDataset | None = None
        self.result = None
        self._worker = Worker(self)
        self._worker.sig_progress.connect(lambda batch: self.progress.setValue(int(batch[-1])))
        self._worker.sig_done.connect(self._on_done)
        self._worker.sig_failed.connect(lambda m: self._finish(f"The range test failed: {m}", error=True))
        self.run_button = QPushButton("Run LR range test")
        self.run_button.setObjectName("lrTestButton")
        self.run_button.setToolTip(
            "Train a copy of the network's starting weights for 100 steps while the learning rate grows "
            "exponentially from 1e-5 to 10 (Smith 2015; fastai's lr_find). The loss falls once the rate is "
            "large enough and blows up once it is too large; a good rate sits where it falls fastest. The "
            "network itself is not changed.")
        self.run_button.clicked.connect(self.start_or_cancel)
        self.use_button = QPushButton("Use it")
        self.use_button.setObjectName("lrUseButton")
        self.use_button.setToolTip("Set the network's learning rate to the suggested value")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        self.progress = QProgressBar()
        self.progress.setRange(0, LR_TEST_STEPS)
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(120)
        self.progress.hide()
        self.status = ElidedLabel("", lines=2)
        self.status.setObjectName("lrTestStatus")
        self.plot = plot_widget(menu=False)
        self.plot.setObjectName("lrRangePlot")
        self.plot.setLogMode(x=True)
        self.plot.setLabel("bottom", "learning rate (log)")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setToolTip(self.run_button.toolTip())
        self.raw = self.plot.plot([], [], pen=pg.mkPen((148, 163, 184), width=1))
        self.smooth = self.plot.plot([], [], pen=pg.mkPen((37, 99, 235), width=2))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((220, 38, 38), width=1.5, style=Qt.DashLine))
        self.marker.hide()
        self.plot.addItem(self.marker)
        row = QHBoxLayout()
        for w in (self.run_button, self.progress, self.use_button):
            row.addWidget(w)
        row.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.status)
        box.addWidget(self.plot, 1)
        self._error_colour = "#b91c1c"
        self._finish("Which learning rate? Press Run LR range test.")

    def set_problem(self, spec: NetSpec | None, data: ToyDataset | None) -> None:
        """The network and data the next test uses (a change cancels a running test)."""
        if spec != self.spec or data is not self.data:
            if self._worker.is_busy():
                self._worker.cancel()
                self._finish("The network changed: run the test again.")
        self.spec, self.data = spec, data

    def is_running(self) -> bool:
        """True while a test runs."""
        return self._worker.is_busy()

    def start_or_cancel(self) -> None:
        """Run the test, or cancel the one running."""
        if self._worker.is_busy():
            self._worker.cancel()
            self._finish("Cancelled.")
            return
        if self.spec is None or self.data is None:
            return
        try:
            check_toy_spec(self.spec)
        except Exception as exc:  # noqa: BLE001 - a one-line message, never a traceback
            self._finish(f"Cannot run the test on the toy data: {exc}", error=True)
            return
        spec, data = self.spec, self.data

        def job_fn(job):
            with single_torch_thread():
                return toy_lr_test(spec, data, LR_TEST_STEPS, progress=job.progress,
                                   cancelled=lambda: job.cancelled)

        self.result = None
        self.use_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        self.run_button.setText("Cancel")
        self._message("Sweeping the learning rate on a copy of the weights…")
        self._worker.submit(job_fn)

    def stop(self, wait_ms: int = 2000) -> None:
        """Cancel a running test and wait for its thread."""
        self._worker.shutdown(wait_ms)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme."""
        themes.style_plot(self.plot, self.plot.getPlotItem(), theme)
        self._error_colour = theme["error"]

    def show_result(self, result) -> None:
        """Draw a finished test (also used by tests)."""
        self.result = result
        if result is None or not len(result.lrs):
            self.raw.setData([], [])
            self.smooth.setData([], [])
            self.marker.hide()
            return
        lrs = np.asarray(result.lrs, dtype=float)
        self.raw.setData(lrs, plottable(result.losses, False), connect="finite")
        self.smooth.setData(lrs, plottable(result.smoothed, False), connect="finite")
        finite = np.isfinite(result.smoothed)
        if finite.any():
            raw = plottable(result.losses, False)
            low = min(np.nanmin(result.smoothed), np.nanmin(raw) if np.isfinite(raw).any() else np.inf)
            high = np.nanmax(result.smoothed[finite])
            self.plot.setYRange(low, min(high, 4 * low + 0.5), padding=0.05)
        self.plot.setXRange(math.log10(lrs[0]), math.log10(LR_RANGE[1]), padding=0.02)
        if result.suggested is not None:
            self.marker.setPos(math.log10(result.suggested))
            self.marker.show()
        else:
            self.marker.hide()

    # -- private --------------------------------------------------------------------------------------

    def _on_done(self, result) -> None:
        if result is None:
            self._finish("Cancelled.")
            return
        self.show_result(result)
        end = "the loss blew up, so the sweep stopped early" if result.stopped_early else "the sweep ended"
        if result.suggested is None:
            self._finish(f"The loss never fell steadily ({end}): no suggestion.")
        else:
            self._finish(f"Suggested learning rate {fmt_number(result.suggested)}: where the smoothed loss "
                         f"falls fastest ({end}). Press Use it to train with it.")
            self.use_button.setEnabled(True)

    def _finish(self, text: str, error: bool = False) -> None:
        self.progress.hide()
        self.run_button.setText("Run LR range test")
        self._message(text, error)

    def _message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {self._error_colour};" if error else "")

    def _use(self) -> None:
        if self.result is not None and self.result.suggested is not None:
            value = float(f"{self.result.suggested:.2g}")
            self.sig_use_lr.emit(min(max(value, 1e-5), 10.0))
