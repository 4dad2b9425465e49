"""Learning by doing: gradient descent steps with a loss plot, and .grad accumulating on repeat backward."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

from explorer.ui.common import actions
from explorer.ui.common import theme as themes
from explorer.ui.graph.items import fmt_number


class LearningBox(QGroupBox):
    """A 'gradient descent step' button with a learning rate, a loss plot, and 'backward again'."""

    sig_descent_requested = Signal(float)
    """The user asked for one step p -= lr * p.grad with this learning rate."""

    sig_backward_again = Signal()
    """The user asked to call backward once more without zeroing the gradients."""

    def __init__(self, parent=None):
        super().__init__("Learning by doing", parent)
        self.setObjectName("learningBox")
        self.lr = QDoubleSpinBox()
        self.lr.setObjectName("learningRate")
        self.lr.setDecimals(3)
        self.lr.setRange(0.001, 100.0)
        self.lr.setSingleStep(0.1)
        self.lr.setValue(1.0)
        self.lr.setToolTip("Learning rate: how far each step moves the parameters against the gradient")
        self.step_button = QPushButton("Gradient descent step")
        self.step_button.setObjectName("descentButton")
        self._step_tip = actions.tooltip("expression.descent_step")
        self.step_button.setToolTip(self._step_tip)
        self.step_button.clicked.connect(lambda: self.sig_descent_requested.emit(self.lr.value()))
        self.again_button = QPushButton("Backward again without zeroing")
        self.again_button.setObjectName("backwardAgainButton")
        self._again_tip = actions.tooltip("expression.backward_again") + "."
        self.again_button.setToolTip(self._again_tip)
        self.again_button.clicked.connect(self.sig_backward_again.emit)
        self.accum_label = QLabel("")
        self.accum_label.setObjectName("accumulationLabel")
        self.accum_label.setWordWrap(True)
        self.loss_label = QLabel("")
        self.loss_label.setObjectName("lossLabel")
        self.loss_label.setWordWrap(True)
        self.loss_label.setToolTip("The output of the program (the loss) now, and how many descent steps "
                                   "led here. Moving a slider starts the count again.")
        self.losses: list[float] = []
        # The loss plot (pyqtgraph: ~0.4 s of CPU to import) is made with the first loss, after torch; the
        # panel is built and takes input before that. A box of its size holds its place (nothing moves).
        self._plot = None
        self._plot_made = False
        self._plot_slot = QWidget()
        self._plot_slot.setMinimumHeight(110)
        self._plot_slot.setMaximumHeight(150)
        grid = QGridLayout(self)
        self._grid = grid
        lr_label = QLabel("lr")
        lr_label.setToolTip(self.lr.toolTip())
        # the step button under the learning rate, not beside it: side by side they set the program
        # column's width (with the theme's spin boxes ~325 px), and the canvas lost what they took
        grid.addWidget(lr_label, 0, 0)
        grid.addWidget(self.lr, 0, 1)
        grid.setColumnStretch(2, 1)
        grid.addWidget(self.step_button, 1, 0, 1, 3)
        grid.addWidget(self.loss_label, 2, 0, 1, 3)
        grid.addWidget(self._plot_slot, 3, 0, 1, 3)
        grid.addWidget(self.again_button, 4, 0, 1, 3)
        grid.addWidget(self.accum_label, 5, 0, 1, 3)

    def set_available(self, available: bool) -> None:
        """Enable the buttons only for a program with params and a backward pass; say why otherwise."""
        self.step_button.setEnabled(available)
        self.again_button.setEnabled(available)
        why = "" if available else ("\n\nNot available now: the program has no param(...) leaf, so "
                                    "backward() computes no gradient to step along.")
        self.step_button.setToolTip(self._step_tip + why)
        self.again_button.setToolTip(self._again_tip + why)

    def show_losses(self, losses: list[float]) -> None:
        """The loss history: the program's loss, then the loss after each descent step."""
        self.losses = list(losses)
        self._redraw()

    def show_accumulation(self, history: dict[str, list]) -> None:
        """Show .grad of each param after each backward call."""
        lines = []
        for name, values in history.items():
            shown = [fmt_number(v) if isinstance(v, float) else "tensor" for v in values]
            lines.append(f"{name}.grad: " + " → ".join(shown))
        calls = max((len(v) for v in history.values()), default=0)
        head = f"after {calls} backward() calls without zero_grad(): gradients add up"
        self.accum_label.setText(head + "\n" + "\n".join(lines))

    @property
    def plot(self):
        """The loss plot (a pyqtgraph PlotWidget, made now if it was not; None without pyqtgraph)."""
        if not self._plot_made:
            self._plot_made = True
            self._plot = self._make_plot()
            if self._plot is not None:
                self._grid.replaceWidget(self._plot_slot, self._plot)
                self._plot_slot.deleteLater()
                self._plot.show()  # in a box that may be on screen already
            else:
                self._plot_slot.hide()
        return self._plot

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the loss plot."""
        if self._plot is None:  # not made yet (it takes the current theme then), or no pyqtgraph
            return
        import pyqtgraph as pg

        self.plot.setBackground(theme["panel"])
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setPen(theme["muted"])
            self.plot.getAxis(axis).setTextPen(theme["muted"])
            self.plot.getAxis(axis).label.setDefaultTextColor(pg.mkColor(theme["muted"]))
        self._curve.setPen(pg.mkPen(theme["output"], width=2))
        self._curve.setSymbolBrush(theme["output"])
        self._curve.setSymbolPen(theme["output"])

    def _make_plot(self):
        try:
            import pyqtgraph as pg

            from explorer.ui.common.plot_menus import plot_widget
        except Exception:  # the plot is a bonus: without pyqtgraph the label shows the numbers
            return None
        theme = themes.get_theme()
        plot = plot_widget(background=theme["panel"])
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(theme["muted"])
            plot.getAxis(axis).setTextPen(theme["muted"])
            plot.getAxis(axis).enableAutoSIPrefix(False)
        plot.setObjectName("lossPlot")
        plot.setMinimumHeight(110)
        plot.setMaximumHeight(150)
        plot.setLabel("bottom", "descent step")
        plot.setLabel("left", "loss")
        plot.showGrid(x=True, y=True, alpha=0.3)
        plot.setToolTip("Loss after each gradient descent step: it should go down while the learning "
                        "rate is small enough, and jump around when it is too large")
        colour = theme["output"]
        self._curve = plot.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                                symbolBrush=colour, symbolPen=colour)
        return plot

    def _redraw(self) -> None:
        if self.losses:
            steps = len(self.losses) - 1
            when = ("before any descent step" if steps == 0
                    else f"after {steps} descent step{'s' if steps > 1 else ''}")
            text = f"loss {fmt_number(self.losses[-1])} {when}"
            if steps and self.losses[-1] > self.losses[-2]:
                text += ": it went up, the step overshot; try a smaller lr"
            self.loss_label.setText(text)
        else:
            self.loss_label.setText("")
        if (self.losses or self._plot is not None) and self.plot is not None:
            self._curve.setData(list(range(len(self.losses))), self.losses)
            self.plot.setXRange(0, max(5, len(self.losses) - 1), padding=0.05)
            if self.losses:
                lo, hi = min(self.losses), max(self.losses)
                pad = max(1e-3, 0.1 * (hi - lo), 0.1 * abs(hi))  # one point must not sit on the edge
                self.plot.setYRange(min(0.0, lo - pad), hi + pad, padding=0)
