"""The Network health tab of the pretraining workspace: per-block gradient norms and update ratios.

One run at a time (the one selected in the run list, else the newest with health records): the
gradient norm of each transformer block over the steps (log axis) under the global norm, with the
steps where clipping scaled the gradient marked, and each block's update-to-weight ratio with the
1e-3 guide line. The figures come from the run's step records (`block_grad_norms`, `update_ratios`,
explorer/core/gpt/health.py) and, for a finished or restored run, from its folder's health.csv.
Non-finite values are gaps. Redraws are coalesced by a timer and skipped while the tab is hidden.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.core.gpt.health import GUIDE_RATIO
from explorer.core.gpt.runs import PretrainRun, health_arrays
from explorer.ui.common import theme as themes
from explorer.ui.common.plot_menus import plot_widget
from explorer.ui.common.step_sync import place_cursor, step_cursor
from explorer.ui.network.health import layer_colour, plottable

REDRAW_MS = 250


class HealthTab(QWidget):
    """Per-block gradient norms (objectName pretrainBlockGradPlot) and update ratios
    (pretrainUpdateRatioPlot) of one run."""

    def __init__(self, parent: QWidget | None = None, later: bool = False) -> None:
        """`later`: build nothing yet; the owner runs `build_steps()` (a panel built in slices)."""
        super().__init__(parent)
        if not later:
            for _ in self.build_steps():
                pass

    def build_steps(self):
        """The gradient-norm plot, then the update-ratio plot and the rest: one piece per `yield`."""
        self.run: PretrainRun | None = None
        self.key = QLabel()
        self.key.setObjectName("pretrainHealthKey")
        self.key.setWordWrap(True)
        self.grad_plot = self._plot(
            "pretrainBlockGradPlot", "gradient norm per block (log)",
            "The gradient norm of each transformer block's parameters, before clipping, measured every "
            "health_every steps (a training setting). Grey: the global norm of every parameter; red "
            "triangles: steps where it exceeded grad_clip, so clipping scaled the whole gradient down.")
        yield
        self.ratio_plot = self._plot(
            "pretrainUpdateRatioPlot", "update / weight per block (log)",
            "|lr·update| / |w|: how much one optimizer step changed each block's weights, relative to their "
            "size. About 1e-3 (dashed) is the usual guide: far above, the learning rate is too high for the "
            "block; far below, it hardly learns. The warm-up and the cosine decay of the lr show here.")
        yield  # the curves, the guide line and the step cursors: a piece after the second plot
        self.global_norm = self.grad_plot.plot([], [], pen=pg.mkPen((148, 163, 184), width=1.5))
        self.clips = pg.ScatterPlotItem(symbol="t", size=8, brush=pg.mkBrush(220, 38, 38), pen=None)
        self.grad_plot.addItem(self.clips)
        self.guide = pg.InfiniteLine(pos=math.log10(GUIDE_RATIO), angle=0,
                                     pen=pg.mkPen((107, 114, 128), width=1, style=Qt.DashLine))
        self.ratio_plot.addItem(self.guide)
        self.block_curves: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        # The step chosen on the loss curve (explorer/ui/common/step_sync.py): a vertical line on both.
        self.cursors = [step_cursor(self.grad_plot), step_cursor(self.ratio_plot)]
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        row = QHBoxLayout()
        row.addWidget(self.grad_plot, 1)
        row.addWidget(self.ratio_plot, 1)
        box = QVBoxLayout(self)
        box.addWidget(self.key)
        box.addLayout(row, 1)
        self.redraw()

    def show_run(self, run: PretrainRun | None) -> None:
        """Show `run` (None: nothing)."""
        self.run = run
        self.redraw()

    def show_step(self, step: int | None) -> None:
        """Mark `step` (None: no mark) with a vertical line on both plots."""
        for line in self.cursors:
            place_cursor(line, step)

    def run_changed(self, run: PretrainRun) -> None:
        """`run` got records: redraw soon if it is the one shown (and the tab is visible)."""
        if run is self.run and not self._timer.isActive():
            self._timer.start()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme."""
        for plot, title in ((self.grad_plot, "gradient norm per block (log)"),
                            (self.ratio_plot, "update / weight per block (log)")):
            themes.style_plot(plot, plot.getPlotItem(), theme, title, "9pt")
        self.guide.setPen(pg.mkPen(theme["muted"], width=1, style=Qt.DashLine))

    def clip_steps(self) -> np.ndarray:
        """The steps of the shown run whose global gradient norm exceeded grad_clip (clip events)."""
        run = self.run
        clip = float((run.settings or {}).get("grad_clip", 0) or 0) if run is not None else 0.0
        if run is None or clip <= 0:
            return np.zeros(0)
        steps, norms = run.steps["step"].view(), run.steps["grad_norm"].view()
        with np.errstate(invalid="ignore"):
            return steps[norms > clip].copy()

    def redraw(self) -> None:
        """Draw the shown run's health now."""
        run = self.run
        if run is None or not run.health:
            self._set_blocks(0)
            self.global_norm.setData([], [])
            self.clips.setData([], [])
            self.key.setText("No health records yet: they come every health_every steps of a run "
                             "(its first step too). Select a run in the list.")
            return
        if not self.isVisible() and self.block_curves:
            return  # drawn when the tab is shown
        steps, norms, grads, ratios = health_arrays(run.health)
        self._set_blocks(grads.shape[1])
        for i, (grad_item, ratio_item) in enumerate(self.block_curves):
            grad_item.setData(steps, plottable(grads[:, i], True), connect="finite")
            ratio_item.setData(steps, plottable(ratios[:, i], True), connect="finite")
        all_steps, all_norms = run.steps["step"].view(), run.steps["grad_norm"].view()
        self.global_norm.setData(all_steps.copy(), plottable(all_norms, True), connect="finite")
        clipped = self.clip_steps()
        if len(clipped):
            lookup = dict(zip(all_steps.tolist(), all_norms.tolist(), strict=True))
            ys = np.array([lookup[s] for s in clipped.tolist()])
            finite = np.isfinite(ys)  # a non-finite norm stopped the run: no marker to place
            self.clips.setData(clipped[finite], np.log10(ys[finite]))
        else:
            self.clips.setData([], [])
        n = grads.shape[1]
        swatches = " ".join(f'<span style="color:{layer_colour(i, n)}">■</span>&nbsp;block {i}'
                            for i in range(n))
        self.key.setText(f"{run.name} · {len(run.health)} measured steps, {len(clipped)} clipped steps · "
                         f"{swatches}")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.redraw()

    def _plot(self, name: str, title: str, tip: str) -> pg.PlotWidget:
        plot = plot_widget(menu=False)
        plot.setObjectName(name)
        plot.setToolTip(tip)
        plot.setTitle(title, size="9pt")
        plot.setLabel("bottom", "step")
        plot.setLogMode(y=True)
        plot.getAxis("left").enableAutoSIPrefix(False)
        return plot

    def _set_blocks(self, n: int) -> None:
        if len(self.block_curves) == n:
            return
        for grad_item, ratio_item in self.block_curves:
            self.grad_plot.removeItem(grad_item)
            self.ratio_plot.removeItem(ratio_item)
        self.block_curves = []
        for i in range(n):
            pen = pg.mkPen(layer_colour(i, n), width=1.5)
            self.block_curves.append((self.grad_plot.plot([], [], pen=pen),
                                      self.ratio_plot.plot([], [], pen=pen)))
