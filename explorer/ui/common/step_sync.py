"""One training step chosen on a loss curve, shown by every view of the run.

A workspace owns one `StepSync`. The loss plot calls `choose(step)` when the pointer hovers or clicks a
step (and `choose(None)` when it leaves, meaning "the newest step"); every registered view gets
`show_step(step)`. A view is any object with a `show_step(step: int | None) -> None` method: health
plots draw a cursor line, histograms move their slider, the loss landscape marks the trajectory point,
the samples list scrolls to the nearest sample. Views are held weakly, so a closed view needs no
unregistering.
"""

from __future__ import annotations

import weakref
from typing import Protocol

from PySide6.QtCore import QObject, Signal


class StepView(Protocol):
    def show_step(self, step: int | None) -> None: ...


class StepSync(QObject):
    """The step a workspace's views show; None means the newest (live) step."""

    step_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._views: list[weakref.ref] = []
        self._step: int | None = None

    @property
    def step(self) -> int | None:
        return self._step

    def register(self, view: StepView) -> None:
        """Show `view` the chosen step now and on every later choice."""
        self._views.append(weakref.ref(view))
        view.show_step(self._step)

    def choose(self, step: int | None) -> None:
        """Move every view to `step` (None: back to the newest step). Repeats are ignored."""
        step = None if step is None else int(step)
        if step == self._step:
            return
        self._step = step
        alive = []
        for ref in self._views:
            view = ref()
            if view is not None:
                alive.append(ref)
                view.show_step(step)
        self._views = alive
        self.step_changed.emit(step)


def nearest_step(steps, x: float) -> int | None:
    """The value of `steps` (recorded step numbers, any order) nearest to `x`; None when there is none."""
    import numpy as np

    values = np.asarray(steps, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values) or x != x:
        return None
    return int(values[np.abs(values - x).argmin()])


class PlotStepPicker(QObject):
    """Hovering a plot chooses the step under the pointer on a StepSync; a click pins it (the view stays
    there when the pointer leaves), a second click unpins. Leaving the plot's data area chooses None.

    `step_at(x)` turns the plot's x coordinate into a recorded step (None: no step there). The mouse
    handlers take scene positions, so tests can call them with mapped coordinates.
    """

    def __init__(self, plot_widget, sync: StepSync, step_at) -> None:
        super().__init__(plot_widget)
        self.plot_widget = plot_widget
        self.sync = sync
        self.step_at = step_at
        self.pinned: int | None = None
        scene = plot_widget.scene()
        scene.sigMouseMoved.connect(self.moved)
        scene.sigMouseClicked.connect(self._clicked)
        plot_widget.viewport().installEventFilter(self)

    def moved(self, scene_pos) -> None:
        """The pointer is at `scene_pos`: choose its step (unless one is pinned)."""
        if self.pinned is None:
            self.sync.choose(self._step_of(scene_pos))

    def clicked(self, scene_pos) -> None:
        """A click at `scene_pos`: pin its step, or unpin when one is pinned."""
        if self.pinned is not None:
            self.pinned = None
            self.sync.choose(self._step_of(scene_pos))
            return
        step = self._step_of(scene_pos)
        if step is not None:
            self.pinned = step
            self.sync.choose(step)

    def left(self) -> None:
        """The pointer left the plot: back to the newest step unless a click pinned one."""
        if self.pinned is None:
            self.sync.choose(None)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.Leave:
            self.left()
        return False

    def _clicked(self, event) -> None:
        from PySide6.QtCore import Qt

        if event.button() == Qt.MouseButton.LeftButton and not event.double():
            self.clicked(event.scenePos())

    def _step_of(self, scene_pos) -> int | None:
        box = self.plot_widget.getPlotItem().getViewBox()
        if not box.sceneBoundingRect().contains(scene_pos):
            return None
        return self.step_at(box.mapSceneToView(scene_pos).x())


def step_cursor(plot, colour: str = "#f59e0b"):
    """A hidden vertical line on a pyqtgraph plot (PlotWidget or PlotItem) that marks the chosen step."""
    import pyqtgraph as pg

    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(colour, width=1.5))
    line.setZValue(50)
    line.setVisible(False)
    plot.addItem(line, ignoreBounds=True)
    return line


def place_cursor(line, x: float | None) -> None:
    """Show the cursor line at `x`, or hide it (None)."""
    if x is None or x != x:
        line.setVisible(False)
    else:
        line.setValue(float(x))
        line.setVisible(True)
