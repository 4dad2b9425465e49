"""Building a big panel over several event-loop turns, so that no single turn freezes the window.

A panel writes its construction as a generator that yields between pieces (a plot, a tab). `Slices`
runs that generator either whole at once (`finish`: a test or a script gets a complete panel) or one
piece per event-loop turn (`start`: the user's first visit of a workspace; the window keeps answering
between the pieces). `finish` may also be called while the pieces run one by one: it runs the rest now.
"""

from __future__ import annotations

from collections.abc import Iterator

from PySide6.QtCore import QObject, QTimer, Signal

# A piece's turn is a 1 ms timer, not a 0 ms one: Qt 6 posts a 0 ms single shot as an event, and events
# posted while posted events are handled may run in the same pass, back to back, before any timer (a
# repaint, the user's input) gets its turn; a timer waits for the next pass of the event loop.
TURN_MS = 1


class Slices(QObject):
    """The pieces of one construction, run whole (`finish`) or one per event-loop turn (`start`)."""

    sig_done = Signal()
    """Every piece has run (emitted once, by `finish` or by the last turn)."""

    sig_failed = Signal(object)
    """A piece raised during `start`'s turns (the exception); no piece runs after it."""

    def __init__(self, steps: Iterator, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._steps = steps
        self._done = False
        self._announced = False  # sig_done was emitted
        self.error: BaseException | None = None
        self.count = 0  # pieces run so far (a test reads how many turns a visit took)
        self.turns = 0  # pieces run by `start`'s event-loop turns (not by `finish`)

    @classmethod
    def run(cls, steps: Iterator, parent: QObject, sliced: bool) -> Slices:
        """The pieces of `steps`, begun: one per turn from the next turn (`sliced`), else all now."""
        building = cls(steps, parent)
        if sliced:
            building.start()
        else:
            building.finish()
        return building

    def is_done(self) -> bool:
        """Whether every piece has run (or one failed)."""
        return self._done

    def start(self) -> None:
        """Run the pieces one per event-loop turn, starting with the next turn."""
        if not self._done:
            QTimer.singleShot(TURN_MS, self, self._next)

    def finish(self) -> None:
        """Run every piece left now (raises what a piece raises, or the error a turn met)."""
        if self.error is not None:
            raise self.error
        if not self._done:
            for _ in self._steps:
                self.count += 1
            self._done = True
        self._announce()  # at once, also when the turn that would announce it has not come yet

    def _next(self) -> None:
        if self._done:
            return
        try:
            next(self._steps)
        except StopIteration:  # the owner's work on sig_done (installing, showing) gets a turn of its own
            self._done = True
            QTimer.singleShot(TURN_MS, self, self._announce)
            return
        except Exception as exc:  # the owner shows it (the main window: in the workspace's tab)
            self.error = exc
            self._done = True
            self.sig_failed.emit(exc)
            return
        self.count += 1
        self.turns += 1
        QTimer.singleShot(TURN_MS, self, self._next)

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            self.sig_done.emit()
