"""The iterations of a training loop: a slider over the backward() calls and the loss over iterations.

Shown only when a program's loop ran backward more than once; each iteration has its own graph and passes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from explorer.core.numbers import fmt_number
from explorer.ui.common import theme as themes


class IterationBar(QWidget):
    """Slider "iteration k of N" and a small loss-over-iterations plot with a marker at k."""

    sig_iteration = Signal(int)
    """The user picked iteration k (0-based)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("iterationBar")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("iterationSlider")
        self.slider.setToolTip(
            "Each backward() call of the program's loop made a new graph: pick which iteration the player\n"
            "shows. The program is not run again; every iteration was recorded in the one run.")
        self.slider.setPageStep(1)
        self.slider.setFocusPolicy(Qt.ClickFocus)  # the player keys stay with the graph
        self.label = QLabel("")
        self.label.setObjectName("iterationLabel")
        self.label.setMinimumWidth(150)
        self.slider.valueChanged.connect(self._on_slider)
        # the plot (pyqtgraph: ~0.4 s of CPU to import) is made when a program first loops, after torch
        self._plot = None
        self._plot_made = False
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.slider, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addLayout(row)
        self._layout = lay
        self._losses: list[float | None] = []
        self.setVisible(False)

    def set_iterations(self, losses: list[float | None], index: int) -> None:
        """N iterations with their losses, iteration `index` selected; hidden for one iteration."""
        self._losses = list(losses)
        n = len(self._losses)
        self.setVisible(n > 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(max(0, min(index, n - 1)))
        self.slider.blockSignals(False)
        if (n > 1 or self._plot is not None) and self.plot is not None:
            xs = [i + 1 for i, v in enumerate(self._losses) if v is not None]
            ys = [v for v in self._losses if v is not None]
            self._curve.setData(xs, ys)
        self._show(self.slider.value())

    def index(self) -> int:
        """The selected iteration (0-based)."""
        return self.slider.value()

    @property
    def plot(self):
        """The loss-over-iterations plot (a pyqtgraph PlotWidget, made now if it was not; None without
        pyqtgraph)."""
        if not self._plot_made:
            self._plot_made = True
            self._plot = self._make_plot()
            if self._plot is not None:
                self._layout.addWidget(self._plot)
                self._plot.show()  # added to a bar that may be on screen already
        return self._plot

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the plot."""
        if self._plot is None:  # not made yet (it takes the current theme then), or no pyqtgraph
            return
        import pyqtgraph as pg

        themes.style_plot(self.plot, self.plot.getPlotItem(), theme)
        self._curve.setPen(pg.mkPen(theme["output"], width=2))
        self._marker.setPen(pg.mkPen(theme["muted"], width=1))

    def _on_slider(self, k: int) -> None:
        self._show(k)
        self.sig_iteration.emit(k)

    def _show(self, k: int) -> None:
        n = len(self._losses)
        text = f"iteration {k + 1} of {n}"
        if 0 <= k < n and self._losses[k] is not None:
            text += f"\nloss {fmt_number(self._losses[k])}"
        self.label.setText(text)
        if self._plot is not None:
            self._marker.setValue(k + 1)

    def _make_plot(self):
        try:
            import pyqtgraph as pg

            from explorer.ui.common.plot_menus import plot_widget
        except Exception:  # the plot is a bonus: the label shows the loss
            return None
        theme = themes.get_theme()
        plot = plot_widget()
        plot.setObjectName("iterationLossPlot")
        themes.style_plot(plot, plot.getPlotItem(), theme)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).enableAutoSIPrefix(False)
        plot.setFixedHeight(90)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.setToolTip("The program's output (its loss) at each backward() call of the loop; the line marks "
                        "the iteration shown")
        self._curve = plot.plot([], [], pen=pg.mkPen(theme["output"], width=2))
        self._marker = pg.InfiniteLine(pos=1, angle=90, movable=False, pen=pg.mkPen(theme["muted"], width=1))
        plot.addItem(self._marker)
        return plot
