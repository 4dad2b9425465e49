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
