"""Live training curves: train/validation loss, learning rate and gradient norm, one colour per run.

pyqtgraph rules followed here: every curve is created once and fed with `setData`; clip-to-view and
automatic peak downsampling keep a million-point curve cheap; redraws are coalesced by a timer to at
most 30 a second, however fast records arrive.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from explorer.core.gpt.runs import PretrainRun, ema
from explorer.ui.common import theme as themes
from explorer.ui.common.plot_menus import plot_widget
from explorer.ui.common.step_sync import place_cursor, step_cursor

# At most 10 redraws a second: a loss curve looks live at that rate, and each redraw repaints three
# plots whose growing ranges make pyqtgraph regenerate axis labels (the bulk of a repaint's cost).
REDRAW_MS = 100
# No grid lines: pyqtgraph draws them through the axes, and on a software-rendered 1000 x 330 plot
# they cost 7-15 ms of the GUI thread per repaint against ~1.5 ms for the whole plot without them.


class _RunCurves:
    """The plot items of one run (raw and smoothed train loss, validation, lr, grad norm)."""

    def __init__(self, run: PretrainRun, loss: pg.PlotItem, lr: pg.PlotItem, grad: pg.PlotItem) -> None:
        self.run_colour = run.color
        self.shown_colour = themes.plot_colour(run.color, themes.get_theme())  # readable on the plot
        color = pg.mkColor(self.shown_colour)
        faint = pg.mkColor(self.shown_colour)
        faint.setAlpha(55)
        # Antialiasing per curve, not pyqtgraph's global option, which would change other panels' plots.
        self.train_raw = loss.plot(pen=pg.mkPen(faint, width=1), antialias=True)
        # Dense curves keep 1-px pens: an antialiased 2-px pen over 2,000 noisy points costs ~60 ms
        # per repaint in Qt's raster engine, a 1-px one ~0.4 ms. Only the sparse validation curve is thick.
        self.train = loss.plot(pen=pg.mkPen(color, width=1), name=run.name, antialias=True)
        self.val = loss.plot(pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine), symbol="o",
                             symbolSize=6, symbolBrush=color, symbolPen=None, antialias=True)
        self.lr = lr.plot(pen=pg.mkPen(color, width=1), antialias=True)
        self.grad = grad.plot(pen=pg.mkPen(color, width=1), antialias=True)
        self.items = [(loss, self.train_raw), (loss, self.train), (loss, self.val), (lr, self.lr),
                      (grad, self.grad)]
        for _, item in self.items:
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
        self.smoothed: np.ndarray | None = None
        self.smoothed_weight = -1.0

    def set_theme(self, theme: dict[str, str]) -> None:
        """Redraw the run's curves in its colour as it reads on this theme's plots."""
        self.shown_colour = themes.plot_colour(self.run_colour, theme)
        color = pg.mkColor(self.shown_colour)
        faint = pg.mkColor(self.shown_colour)
        faint.setAlpha(55)
        self.train_raw.setPen(pg.mkPen(faint, width=1))
        for item in (self.train, self.lr, self.grad):
            item.setPen(pg.mkPen(color, width=1))
        self.val.setPen(pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine))
        self.val.setSymbolBrush(color)

    def set_visible(self, visible: bool) -> None:
        """Show or hide every curve of the run."""
        for _, item in self.items:
            item.setVisible(visible)

    def remove(self) -> None:
        """Take the curves off their plots."""
        for plot, item in self.items:
            plot.removeItem(item)


class TrainingPlots(QWidget):
    """Loss plot (objectName pretrainLossPlot) over learning-rate and gradient-norm plots."""

    sig_redrawn = Signal()
    """Emitted after each coalesced redraw (tests and the benchmark count them)."""

    def __init__(self, parent: QWidget | None = None, later: bool = False) -> None:
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__(parent)
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The controls and each plot: one piece per `yield`."""
        self._runs: dict[int, PretrainRun] = {}
        self._curves: dict[int, _RunCurves] = {}
        self._dirty: set[int] = set()
        self.redraw_count = 0
        self._x_label = ""
        self._follow_x = True
        self._planned_x = 0.0

        controls = QHBoxLayout()
        controls.addWidget(QLabel("x axis"))
        self.x_axis = QComboBox()
        self.x_axis.addItems(["step", "tokens seen"])
        self.x_axis.setToolTip("Plot against optimizer steps, or against how many tokens the model has read "
                               "(compares runs with different batch sizes or context lengths fairly).")
        self.x_axis.currentIndexChanged.connect(self._on_x_axis)
        controls.addWidget(self.x_axis)
        controls.addSpacing(12)
        controls.addWidget(QLabel("smoothing"))
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setFixedWidth(120)
        self.smoothing.setToolTip("Exponential moving average of the training loss: each batch's loss is "
                                  "noisy, the trend is what matters. The faint line is the raw loss.")
        self.smoothing_label = QLabel()
        self.smoothing.valueChanged.connect(self._on_smoothing)
        controls.addWidget(self.smoothing)
        controls.addWidget(self.smoothing_label)
        controls.addSpacing(12)
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setToolTip("Logarithmic loss axis: late improvements stay visible next to the "
                                  "steep start.")
        self.log_scale.toggled.connect(self._on_log)
        controls.addWidget(self.log_scale)
        controls.addStretch(1)
        yield
        self.loss_widget = plot_widget()
        self.loss_widget.setObjectName("pretrainLossPlot")
        self.loss_widget.setBackground("w")
        self.loss = self.loss_widget.getPlotItem()
        self.loss.setTitle("Loss  (solid: train, smoothed · dashed ○: validation)", size="10pt")
        self.loss.setLabel("left", "cross-entropy loss")
        self.loss.addLegend(offset=(-10, 10))
        self.loss_widget.setToolTip("Cross-entropy of predicting the next token. Random guessing over V "
                                    "tokens gives ln V; lower means the model predicts the text better.")
        yield
        self.lr_widget = plot_widget()
        self.lr_widget.setBackground("w")
        self.lr_plot = self.lr_widget.getPlotItem()
        self.lr_plot.setTitle("Learning rate (warm-up, then cosine decay)", size="9pt")
        self.lr_widget.setToolTip("The step size AdamW used at each step: it rises during warm-up, then "
                                  "decays along a cosine.")
        yield
        self.grad_widget = plot_widget()
        self.grad_widget.setBackground("w")
        self.grad_plot = self.grad_widget.getPlotItem()
        self.grad_plot.setTitle("Gradient norm (before clipping)", size="9pt")
        self.grad_widget.setToolTip("The length of the whole gradient vector: spikes warn of instability; "
                                    "clipping caps it at 1.")
        yield  # the layout, the step cursors and the first smoothing: a piece after the last plot
        for widget in (self.lr_widget, self.grad_widget):
            widget.setMinimumHeight(110)
        self.loss_widget.setMinimumHeight(220)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.loss_widget, 3)
        small = QHBoxLayout()
        small.addWidget(self.lr_widget)
        small.addWidget(self.grad_widget)
        layout.addLayout(small, 1)

        for plot in (self.loss, self.lr_plot, self.grad_plot):
            plot.getViewBox().sigRangeChangedManually.connect(self._on_manual_range)
        # The step the workspace's views show (explorer/ui/common/step_sync.py), None: the newest.
        self.cursors = [step_cursor(plot) for plot in (self.loss, self.lr_plot, self.grad_plot)]
        self.cursor_step: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._redraw_dirty)
        self._on_smoothing(self.smoothing.value())

    # -- public API -------------------------------------------------------------------------------
    def add_run(self, run: PretrainRun) -> None:
        """Take a run onto the plots and draw what it has.

        A hidden run gets its curves (and legend entry) only when it is first shown: a session of a
        thousand runs, most of them hidden, then opens in about the time of its visible few.
        """
        self._runs[run.run_id] = run
        if run.visible:
            self._curves_of(run)
        self.mark_dirty(run.run_id)

    def run_ids(self) -> list[int]:
        """The runs on the plots (shown or hidden)."""
        return list(self._runs)

    def remove_run(self, run_id: int) -> None:
        """Delete a run's curves and its legend entry."""
        curves = self._curves.pop(run_id, None)
        self._runs.pop(run_id, None)
        self._dirty.discard(run_id)
        if curves is not None:
            legend = self.loss.legend
            if legend is not None:
                legend.removeItem(curves.train)
            curves.remove()

    def set_visible(self, run_id: int, visible: bool) -> None:
        """Show or hide one run's curves."""
        run = self._runs.get(run_id)
        if run is None:
            return
        run.visible = visible
        if visible or run_id in self._curves:
            self._curves_of(run).set_visible(visible)
            self.mark_dirty(run_id)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour backgrounds, axes, titles and legend for a theme of explorer.ui.common.theme."""
        titles = {self.loss: "Loss  (solid: train, smoothed · dashed ○: validation)",
                  self.lr_plot: "Learning rate (warm-up, then cosine decay)",
                  self.grad_plot: "Gradient norm (before clipping)"}
        for widget, plot in ((self.loss_widget, self.loss), (self.lr_widget, self.lr_plot),
                             (self.grad_widget, self.grad_plot)):
            themes.style_plot(widget, plot, theme, titles[plot], "10pt" if plot is self.loss else "9pt")
        for curves in self._curves.values():
            curves.set_theme(theme)

    def mark_dirty(self, run_id: int) -> None:
        """New data for a run: it is redrawn at the next tick (at most ~30 a second)."""
        self._dirty.add(run_id)
        if not self._timer.isActive():
            self._timer.start()

    def curve_count(self) -> int:
        """How many runs have visible, non-empty train-loss curves."""
        count = 0
        for curves in self._curves.values():
            x, _ = curves.train.getOriginalDataset()  # not the clipped, downsampled display data
            if curves.train.isVisible() and x is not None and len(x):
                count += 1
        return count

    def curves(self, run_id: int) -> _RunCurves:
        """The plot items of a run (tests read their data); created now if it had none yet."""
        return self._curves_of(self._runs[run_id])

    def flush(self) -> None:
        """Redraw now what is pending (for screenshots and tests)."""
        self._timer.stop()
        self._redraw_dirty()

    def step_at(self, x: float) -> int | None:
        """The recorded step of a visible run nearest to the x coordinate `x` (a step, or tokens seen)."""
        key = "tokens" if self.x_axis.currentIndex() == 1 else "step"
        best, best_distance = None, np.inf
        for run in self._runs.values():
            if not run.visible:
                continue
            xs = run.steps[key].view()
            finite = np.isfinite(xs)
            if not finite.any():
                continue
            distances = np.where(finite, np.abs(xs - x), np.inf)
            i = int(distances.argmin())
            if distances[i] < best_distance:
                best, best_distance = int(run.steps["step"].view()[i]), distances[i]
        return best

    def show_step(self, step: int | None) -> None:
        """Draw the step cursor at `step` (None: none) on the three plots."""
        self.cursor_step = step
        x = None if step is None else float(step)
        if step is not None and self.x_axis.currentIndex() == 1:  # at the tokens seen by that step
            x = None
            for run in self._runs.values():
                steps = run.steps["step"].view()
                hits = np.flatnonzero(steps == step)
                if run.visible and len(hits):
                    x = float(run.steps["tokens"].view()[hits[0]])
                    break
        for line in self.cursors:
            place_cursor(line, x)

    # -- internals --------------------------------------------------------------------------------
    def _curves_of(self, run: PretrainRun) -> _RunCurves:
        """The run's plot items, created on first need."""
        curves = self._curves.get(run.run_id)
        if curves is None:
            curves = self._curves[run.run_id] = _RunCurves(run, self.loss, self.lr_plot, self.grad_plot)
            curves.set_visible(run.visible)
        return curves

    def _on_smoothing(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self._redraw_all()

    def _on_x_axis(self, *_: object) -> None:
        self.show_step(self.cursor_step)
        self._follow_x = True
        self._planned_x = 0.0
        self._redraw_all()

    def _on_log(self, on: bool) -> None:
        self.loss.setLogMode(y=on)

    def _fit_x(self, by_tokens: bool) -> None:
        """Fix the x range to the planned length of the visible runs, so it does not grow every step.

        A range that changes on every redraw makes each axis re-measure its tick labels; a planned
        range changes once per run. Once the user zooms or pans, the view is left alone.
        """
        if not self._follow_x:
            return
        planned = 0.0
        for run in self._runs.values():
            if not run.visible:
                continue
            done = run.steps["tokens" if by_tokens else "step"].view()
            # A run still going is shown at its planned length; a finished one at what it did.
            going = run.status in ("starting", "running", "paused")
            settings = run.settings
            steps = float(settings.get("steps") or 0) if going else 0.0
            if by_tokens:
                steps *= float(settings.get("batch_size") or 0) * float(run.config.get("context_length") or 0)
                steps *= float(settings.get("grad_accum_steps") or 1)
            planned = max(planned, steps, float(done[-1]) if len(done) else 0.0)
        if planned > 0 and planned != self._planned_x:
            self._planned_x = planned
            for plot in (self.loss, self.lr_plot, self.grad_plot):
                plot.getViewBox().setXRange(0, planned, padding=0.02)

    def _on_manual_range(self, *_: object) -> None:
        self._follow_x = False

    def _redraw_all(self, *_: object) -> None:
        for run_id in self._curves:
            self.mark_dirty(run_id)

    def _redraw_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        by_tokens = self.x_axis.currentIndex() == 1
        weight = self.smoothing.value() / 100
        for run_id in dirty:
            run, curves = self._runs.get(run_id), self._curves.get(run_id)
            if run is None or curves is None:  # gone, or hidden since it came (drawn when first shown)
                continue
            self._draw(run, curves, by_tokens, weight)
        label = "tokens seen" if by_tokens else "step"
        if label != self._x_label:  # setting it re-lays out the plot: only when it changes
            self._x_label = label
            self.loss.setLabel("bottom", label)
        self._fit_x(by_tokens)
        self.redraw_count += 1
        self.sig_redrawn.emit()

    @staticmethod
    def _draw(run: PretrainRun, curves: _RunCurves, by_tokens: bool, weight: float) -> None:
        steps = run.steps
        x = steps["tokens" if by_tokens else "step"].view()
        loss = steps["train_loss"].view()
        n = len(loss)
        if curves.smoothed is None or curves.smoothed_weight != weight or len(curves.smoothed) > n:
            curves.smoothed = ema(loss, weight)
            curves.smoothed_weight = weight
        elif len(curves.smoothed) < n:
            # Extend the moving average with only the new points (continuing from the last value).
            curves.smoothed = _extend_ema(curves.smoothed, loss, weight)
        finite = np.isfinite(loss)
        if n:
            curves.train_raw.setData(x[finite], loss[finite])
            curves.train.setData(x[finite], curves.smoothed[finite])
            curves.lr.setData(x, steps["lr"].view(), connect="finite")
            curves.grad.setData(x, steps["grad_norm"].view(), connect="finite")
        else:
            for item in (curves.train_raw, curves.train, curves.lr, curves.grad):
                item.setData([], [])
        evals = run.evals
        ex = evals["tokens" if by_tokens else "step"].view()
        ev = evals["val_loss"].view()
        ok = np.isfinite(ev) & np.isfinite(ex)
        curves.val.setData(ex[ok], ev[ok])


def _extend_ema(previous: np.ndarray, values: np.ndarray, weight: float) -> np.ndarray:
    """The debiased EMA of `values`, reusing `previous` (the EMA of its first len(previous) values)."""
    # Recover the un-normalised accumulator from the last debiased value and the count of finite points.
    start = len(previous)
    counted = int(np.isfinite(values[:start]).sum())
    norm = 1 - weight**counted if weight > 0 else 1.0
    last = previous[start - 1] if start else np.nan
    acc = (last * norm) if (start and last == last) else 0.0
    out = np.empty(len(values))
    out[:start] = previous
    for i in range(start, len(values)):
        v = values[i]
        if v == v:
            acc = weight * acc + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out[i] = acc / norm if norm else np.nan
    return out
