"""One-shot background jobs for the pretraining panel (attention maps, tracing a step, counting a vocabulary).

The job is a plain function; it runs in a QThread and its result or its error message comes back
as a signal on the GUI thread. Widgets are never touched off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal


class FunctionThread(QThread):
    """Run `fn()` off the GUI thread; emit `sig_done(result)` or `sig_failed(message)`."""

    sig_done = Signal(object)
    """The function returned this value."""
    sig_failed = Signal(str)
    """The function raised: a one-line message for the panel."""

    def __init__(self, fn: Callable[[], Any], parent=None) -> None:
        super().__init__(parent)
        self._fn = fn

    def run(self) -> None:
        """The thread's body: call the function, report the outcome by signal."""
        try:
            result = self._fn()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.sig_failed.emit(text if isinstance(exc, ValueError) and text
                                 else f"{type(exc).__name__}: {text}".rstrip(": "))
            return
        self.sig_done.emit(result)


# Running threads, kept alive here rather than by a parent widget: a widget deleted before its job
# ends must not take a running QThread with it (Qt aborts the process when that happens).
_RUNNING: set[FunctionThread] = set()


class BackgroundJob(QObject):
    """At most one FunctionThread at a time, with the start / finish / shutdown plumbing in one place.

    `start(fn)` runs `fn()` off the GUI thread unless a job is already running; its outcome arrives as
    `sig_done(result)` or `sig_failed(message)`, then `sig_finished()` once the thread is over.
    """

    sig_done = Signal(object)
    """The job returned this value."""
    sig_failed = Signal(str)
    """The job raised: a one-line message."""
    sig_finished = Signal()
    """The job's thread ended (after sig_done or sig_failed); `is_busy()` is False again."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._thread: FunctionThread | None = None

    def is_busy(self) -> bool:
        """True while a job runs."""
        return self._thread is not None

    def start(self, fn: Callable[[], Any]) -> bool:
        """Run `fn()` in a new thread; False (and nothing started) while another job runs."""
        if self._thread is not None:
            return False
        thread = FunctionThread(fn)
        _RUNNING.add(thread)
        thread.sig_done.connect(self.sig_done)
        thread.sig_failed.connect(self.sig_failed)
        thread.finished.connect(self._on_finished)
        self._thread = thread
        thread.start()
        return True

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Wait (up to `timeout_ms`) for a running job; its result is still delivered."""
        if self._thread is not None:
            self._thread.wait(timeout_ms)

    def _on_finished(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            _release_when_done(thread)
        self.sig_finished.emit()


def _release_when_done(thread: FunctionThread) -> None:
    """Drop our reference once the thread has really ended (`finished` comes just before that).

    Never blocks the GUI thread: while the thread is still winding down, look again a little later.
    """
    if thread.isFinished():
        _RUNNING.discard(thread)
    else:
        QTimer.singleShot(10, lambda: _release_when_done(thread))
