"""The Histograms tab of the pretraining workspace: each block's activations and gradients at one step.

One run at a time (the one the Network health tab shows: the selected run, else the newest). Every
`hist_every` steps the run records, per transformer block, a 64-bin histogram of the block's output
(the residual stream) and one of its parameters' gradients (explorer/core/gpt/histograms.py). The tab
draws one small plot per block and kind, and a slider (objectName histogramStepSlider) walks through the
recorded steps; the loss curve's step cursor moves it too (`show_step`, explorer/ui/common/step_sync.py).
Values that were NaN or infinite are in no bin: their count is named in red above the block's plot.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QScrollArea, QSlider, QVBoxLayout, QWidget

from explorer.core.gpt.histograms import KINDS
from explorer.core.gpt.runs import PretrainRun
from explorer.core.numbers import fmt_number
from explorer.ui.common import theme as themes
from explorer.ui.common.plot_menus import add_plot
from explorer.ui.network.health import layer_colour

REDRAW_MS = 250
ROW_HEIGHT = 118  # pixels per block: enough for a readable shape and its axis
TITLES = {"activation": "activations: block output (residual stream)",
          "gradient": "gradients: block parameters, before clipping"}
TIPS = {
    "activation": "How the values of the block's output are spread over one batch: the residual stream "
                  "each block adds to. A spread that grows block after block, or a few huge values, is "
                  "what makes training unstable; all values at one point would mean no signal.",
    "gradient": "How the gradients of the block's parameters are spread: a narrow spike at 0 that gets "
                "narrower towards the first blocks means vanishing gradients; wide tails mean large, "
                "noisy updates (clipping then scales them all down).",
}


class HistogramView(QWidget):
    """Activation and gradient histograms per block of one run (objectName histogramView), with a
    slider over the recorded steps (histogramStepSlider) and a "step S of T" label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("histogramView")
        self.run: PretrainRun | None = None
        self._follow_newest = True  # a live run's newest record is shown until the user picks a step
        self._chosen: int | None = None  # the step chosen on the loss curve: later records may be nearer
        self._moving = False
        self._theme = themes.get_theme()
        self.key = QLabel()
        self.key.setObjectName("histogramKey")
        self.key.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("histogramStepSlider")
        self.slider.setToolTip("Walk through the steps at which the run recorded its histograms (every "
                               "hist_every steps, a training setting). Hovering or clicking the loss curve "
                               "moves it too.")
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel("no histograms yet")
        self.step_label.setObjectName("histogramStepLabel")
        self.step_label.setMinimumWidth(170)
        self.log_counts = QCheckBox("log counts")
        self.log_counts.setObjectName("histogramLogCounts")
        self.log_counts.setToolTip("A logarithmic count axis: the rare values in the tails, which a linear "
                                   "axis hides beside the peak, become visible.")
        self.log_counts.setChecked(True)  # the tails (where trouble starts) beside a narrow peak
        self.log_counts.toggled.connect(lambda _on: self.redraw())
        row = QHBoxLayout()
        row.addWidget(QLabel("Step"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        row.addWidget(self.log_counts)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setObjectName("histogramCanvas")
        self.canvas.ci.setSpacing(2)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.canvas)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.plots: list[dict[str, pg.PlotItem]] = []
        self.items: list[dict[str, pg.PlotDataItem]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.refresh)
        box = QVBoxLayout(self)
        box.addWidget(self.key)
        box.addLayout(row)
        box.addWidget(self.scroll, 1)
        self.set_theme(self._theme)
        self.refresh()

    # -- public API -------------------------------------------------------------------------------
    def show_run(self, run: PretrainRun | None) -> None:
        """Show `run` (None: nothing), at its newest recorded step."""
        if run is not self.run:
            self.run = run
            self._follow_newest, self._chosen = True, None
        self.refresh()

    def run_changed(self, run: PretrainRun) -> None:
        """`run` got records: refresh soon if it is the one shown."""
        if run is self.run and not self._timer.isActive():
            self._timer.start()

    def recorded_steps(self) -> list[int]:
        """The steps of the shown run that have histograms."""
        return [e.step for e in self.run.histograms] if self.run is not None else []

    def shown_step(self) -> int | None:
        """The recorded step the plots show (None: none)."""
        steps = self.recorded_steps()
        return steps[self.slider.value()] if steps else None

    def show_step(self, step: int | None) -> None:
        """Move to the recorded step nearest `step` (None: the newest) - the loss curve's cursor."""
        self._follow_newest = step is None
        self._chosen = step
        self.refresh()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour for a theme."""
        self._theme = theme
        self.canvas.setBackground(theme["panel"])
        for plots in self.plots:
            for plot in plots.values():
                themes.style_plot(None, plot, theme)
        self.redraw()

    def refresh(self) -> None:
        """Take the shown run's records into the slider and draw."""
        self._timer.stop()
        self._take_steps()
        self.redraw()

    def redraw(self) -> None:
        """Draw the histograms of the slider's step."""
        run = self.run
        entry = run.histograms[self.slider.value()] if run is not None and run.histograms else None
        if entry is None:
            self._set_blocks(0)
            self.step_label.setText("no histograms yet")
            every = (run.settings or {}).get("hist_every") if run is not None else None
            self.key.setText("No histograms yet: a run records them at its first step and every "
                             "hist_every steps" + (f" ({every})" if every else "") + ". "
                             + ("Set hist_every above 0 to record them." if every == 0 else
                                "Select a run in the list."))
            return
        if not self.isVisible() and self.plots:
            return  # drawn when the tab is shown
        self._set_blocks(entry.blocks)
        total = int((run.settings or {}).get("steps") or 0) or run.steps_done()
        count = len(run.histograms)
        self.step_label.setText(f"step {entry.step} of {total}  ·  record {self.slider.value() + 1}/{count}")
        log = self.log_counts.isChecked()
        for i in range(entry.blocks):
            for kind in KINDS:
                edges, counts = entry.edges[kind][i], entry.counts[kind][i].astype(float)
                if log:
                    counts = np.log10(counts + 1)
                self.items[i][kind].setData(edges, counts, stepMode="center", fillLevel=0)
                plot = self.plots[i][kind]
                bad = int(entry.nonfinite[kind][i])
                text = f"block {i}" + (f" · range {fmt_number(edges[0])} … {fmt_number(edges[-1])}")
                if bad:
                    text += f' · <span style="color:{self._theme["error"]}">{bad:,} NaN/inf</span>'
                plot.setTitle(text, color=self._theme["muted"], size="8pt")
        counts = "log₁₀(1 + count)" if log else "count"
        self.key.setText(f"{run.name} · {count} recorded steps · left: {TITLES['activation']}; right: "
                         f"{TITLES['gradient']}. Up: {counts} of values per bin; across: each record's own "
                         "range.")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.redraw()

    # -- internals --------------------------------------------------------------------------------
    def _on_slider(self, _value: int) -> None:
        if not self._moving:  # the user moved it: stay at that record
            steps = self.recorded_steps()
            self._chosen = None
            self._follow_newest = bool(steps) and self.slider.value() == len(steps) - 1
        self.redraw()

    def _take_steps(self) -> None:
        steps = self.recorded_steps()
        self._moving = True
        try:
            self.slider.setRange(0, max(0, len(steps) - 1))
            self.slider.setEnabled(len(steps) > 1)
            if self._chosen is not None and steps:
                self.slider.setValue(int(np.abs(np.asarray(steps) - self._chosen).argmin()))
            elif self._follow_newest and steps:
                self.slider.setValue(len(steps) - 1)
        finally:
            self._moving = False

    def _set_blocks(self, n: int) -> None:
        if len(self.plots) == n:
            return
        self.canvas.ci.clear()
        self.plots, self.items = [], []
        for i in range(n):
            plots, items = {}, {}
            colour = pg.mkColor(layer_colour(i, n))
            fill = pg.mkColor(colour)
            fill.setAlpha(90)
            for column, kind in enumerate(KINDS):
                plot = add_plot(self.canvas.ci, menu=False, row=i, col=column)
                plot.hideButtons()
                plot.setMouseEnabled(x=False, y=False)
                plot.getAxis("left").setWidth(46)
                plot.getAxis("bottom").enableAutoSIPrefix(False)
                plot.getAxis("left").enableAutoSIPrefix(False)
                plot.setToolTip(TIPS[kind])
                themes.style_plot(None, plot, self._theme)
                item = pg.PlotDataItem([0, 1], [0], stepMode="center", fillLevel=0, brush=fill,
                                       pen=pg.mkPen(colour, width=1))
                plot.addItem(item)
                plots[kind], items[kind] = plot, item
            self.plots.append(plots)
            self.items.append(items)
        self.canvas.setMinimumHeight(n * ROW_HEIGHT)
