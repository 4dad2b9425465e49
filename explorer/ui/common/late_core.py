"""The part of a panel that waits for torch, when the panel was built before torch was imported.

Network and Pretraining build their form right after the first paint; what computes with torch (their
tabs) is built later: the panel's own Worker imports the modules it needs, then the pieces are built one
per event-loop turn, and `sig_built` comes after the last piece, so a slot that quits (and shuts the panel
down) finds the construction whole rather than half-way through a piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtCore import QObject, QTimer, Signal

from explorer.ui.common.slices import Slices
from explorer.ui.common.worker import Worker, one_line


class LateCore(QObject):
    """Import with `load()` on a Worker of its own, then build `build()`'s pieces in slices."""

    sig_built = Signal()
    """Every piece is built (not after `stop()`)."""
    sig_failed = Signal(str)
    """The import or a piece failed: one line for the user."""

    def __init__(self, owner: QObject, load: Callable[[], None], build: Callable[[], Iterator]) -> None:
        super().__init__(owner)
        self._load, self._build = load, build
        self.building: Slices | None = None
        self._requested = False  # the import was handed to the Worker
        self._stopped = False
        self._worker = Worker(self, wait_at_quit=False)  # an import cannot stop: the quit goes on
        self._worker.sig_done.connect(self._loaded)
        self._worker.sig_failed.connect(self.sig_failed)

    def request_after(self, building: Slices | None) -> None:
        """Start the import at the turn after `building` is done (or the next turn): a panel finished and
        stopped at once (a close) starts none."""
        if building is not None and not building.is_done():
            building.sig_done.connect(lambda: QTimer.singleShot(0, self, self.request))
        else:
            QTimer.singleShot(0, self, self.request)

    def request(self) -> None:
        """Start the import now (once)."""
        if not self._stopped and not self._requested:
            self._requested = True
            self._worker.submit(lambda _job: self._load())

    def finish(self, timeout: float = 600.0) -> None:
        """Import and build everything now (screenshots, scripts, tests)."""
        self.request()
        self._worker.wait(timeout)
        if self.building is not None:
            self.building.finish()

    def is_built(self) -> bool:
        """Whether every piece has run."""
        return self.building is not None and self.building.is_done()

    def stop(self) -> None:
        """Never build (the import goes on unseen), or finish what is half-built: a half-made widget at exit
        crashes."""
        self._stopped = True
        self._worker.cancel()
        if self.building is not None and not self.building.is_done():
            self.building.finish()

    def _loaded(self, _result=None) -> None:
        if not self._stopped and self.building is None:
            self.building = Slices(self._build(), self)
            self.building.sig_failed.connect(lambda exc: self.sig_failed.emit(one_line(exc)))
            self.building.sig_done.connect(self._built)
            self.building.start()

    def _built(self) -> None:
        if not self._stopped:
            self.sig_built.emit()
