"""The one way the UI runs work off the GUI thread.

Long work is a plain function `fn(job)` that may call `job.progress(record)` and check `job.cancelled`
(the Orange3 / Anki pattern); `Worker` runs it in a thread and turns the outcome into signals on the GUI
thread (through a plain queue, drained by a GUI-thread timer: a worker thread never touches a Qt
object). The newest request wins: submitting while a job runs cancels that job and queues the new one (only
the newest waiting request is kept), and a cancelled job's result is never delivered. Errors come back as
one-line messages, never tracebacks. Progress reaches the GUI at most `progress_hz` times a second, in
batches. Every worker stops when the application quits.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer, Signal

DEFAULT_PROGRESS_HZ = 20.0


class Job:
    """What a running function sees: a cancel flag and a progress channel."""

    def __init__(self, on_progress: Callable[[list], None], hz: float) -> None:
        self._cancel = threading.Event()
        self._on_progress = on_progress
        self._interval = 1.0 / hz if hz > 0 else 0.0
        self._pending: list = []
        self._last = 0.0
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """True once a newer request, `cancel()` or the application's quit superseded this job."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the function to stop at its next check."""
        self._cancel.set()

    def wait_cancelled(self, seconds: float) -> bool:
        """Sleep up to `seconds` (released by a cancel at once); True when cancelled."""
        return self._cancel.wait(seconds)

    def progress(self, record: Any) -> None:
        """Report one progress record; records are batched to the GUI at a bounded rate."""
        with self._lock:
            self._pending.append(record)
            now = time.perf_counter()
            if now - self._last < self._interval:
                return
            batch, self._pending, self._last = self._pending, [], now
        self._on_progress(batch)

    def flush(self) -> None:
        """Send what is pending now (the worker calls it when the function returns)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._on_progress(batch)


# Threads that have not ended yet, so that quitting can wait for them. Worker threads never touch a Qt
# object: they put their outcome into a plain queue that the Worker drains on the GUI thread.
_ALIVE: set[threading.Thread] = set()
_WORKERS: weakref.WeakSet[Worker] = weakref.WeakSet()
POLL_MS = 10


class Worker(QObject):
    """Runs functions off the GUI thread, one at a time, the newest request winning."""

    sig_done = Signal(object)
    """The newest job returned this value."""
    sig_failed = Signal(str)
    """The newest job raised: a one-line message."""
    sig_progress = Signal(list)
    """A batch of progress records of the running job, in order."""
    sig_busy_changed = Signal(bool)
    """A job started (True) or the last one ended with nothing waiting (False)."""

    def __init__(self, parent: QObject | None = None, progress_hz: float = DEFAULT_PROGRESS_HZ,
                 wait_at_quit: bool = True) -> None:
        """`wait_at_quit=False`: quitting does not wait for this worker's thread (`shutdown_all`), for jobs
        that cannot see a cancel and whose end nothing needs (a module import in the background)."""
        super().__init__(parent)
        self._hz = progress_hz
        self._wait_at_quit = wait_at_quit
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # (job, "progress" | "result", ...)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._drain)
        self._job: Job | None = None
        self._thread: threading.Thread | None = None
        self._waiting: Callable[[Job], Any] | None = None
        self._busy = False
        _WORKERS.add(self)
        _connect_quit()

    def submit(self, fn: Callable[[Job], Any]) -> None:
        """Run `fn(job)`; a job still running is cancelled and its result dropped."""
        if self._job is not None:
            self._job.cancel()
            self._waiting = fn
            return
        self._start(fn)

    def cancel(self) -> None:
        """Cancel the running job and drop any waiting request; nothing more is delivered for them."""
        self._waiting = None
        if self._job is not None:
            self._job.cancel()
            self._job = None
            self._thread = None
        self._set_busy(False)

    def is_busy(self) -> bool:
        """True while a job runs or waits."""
        return self._job is not None or self._waiting is not None

    def running_job(self) -> Job | None:
        """The running job (to cancel it), if any."""
        return self._job

    def wait(self, timeout: float = 60.0) -> bool:
        """Process events until no job runs or waits (screenshots, scripts, tests); True when idle."""
        deadline = time.monotonic() + timeout
        while self.is_busy() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 20)
            thread = self._thread
            if thread is not None:
                thread.join(0.01)
            self._drain()
        QCoreApplication.processEvents()
        return not self.is_busy()

    def shutdown(self, timeout_ms: int = 1000) -> None:
        """Cancel everything and wait (briefly) for the running thread; nothing more is delivered."""
        thread = self._thread
        self.cancel()
        if thread is not None:
            thread.join(timeout_ms / 1000)

    # -- internals --------------------------------------------------------------------------------

    def _start(self, fn: Callable[[Job], Any]) -> None:
        inbox = self._inbox
        job = Job(lambda batch: inbox.put((job, "progress", batch)), self._hz)

        def body() -> None:
            try:
                try:
                    result = fn(job)
                except Exception as exc:  # noqa: BLE001 - shown to the user as one line, never a traceback
                    job.flush()
                    inbox.put((job, "result", None, one_line(exc)))
                    return
                job.flush()
                inbox.put((job, "result", result, None))
            finally:
                _ALIVE.discard(threading.current_thread())

        thread = threading.Thread(target=body, name="explorer-worker", daemon=True)
        self._job, self._thread = job, thread
        if self._wait_at_quit:
            _ALIVE.add(thread)
        self._set_busy(True)
        self._timer.start()
        thread.start()

    def _drain(self) -> None:
        """Deliver what the threads reported (GUI thread only)."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            job, kind = item[0], item[1]
            if kind == "progress":
                if job is self._job and not job.cancelled:
                    self.sig_progress.emit(item[2])
            else:
                self._on_result(job, item[2], item[3])
        if self._job is None and self._waiting is None:
            self._timer.stop()

    def _on_result(self, job: Job, result: Any, error: str | None) -> None:
        if job is not self._job:
            return  # a job that cancel() or shutdown() already let go
        self._job = self._thread = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._start(waiting)
        else:
            self._set_busy(False)
        if job.cancelled:
            return
        if error is None:
            self.sig_done.emit(result)
        else:
            self.sig_failed.emit(error)

    def _set_busy(self, on: bool) -> None:
        if on != self._busy:
            self._busy = on
            self.sig_busy_changed.emit(on)


def shutdown_all(timeout_ms: int = 1000) -> None:
    """Stop every worker, then wait for their threads, all within one `timeout_ms` (the app is quitting).

    Every job is cancelled first, so the threads wind down together; a job stuck where it cannot see the
    cancel (a read blocked in the kernel, a long torch call) is left behind after the deadline: its
    thread is a daemon. A job that checks `job.cancelled` stops well within the second.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    for worker in list(_WORKERS):
        try:
            worker.cancel()
        except RuntimeError:  # its QObject is already deleted
            pass
    for thread in list(_ALIVE):
        thread.join(max(0.0, deadline - time.monotonic()))


def left_behind() -> list[threading.Thread]:
    """Worker threads still running (after `shutdown_all`: jobs stuck past the deadline)."""
    return [thread for thread in list(_ALIVE) if thread.is_alive()]


def _connect_quit() -> None:
    app = QCoreApplication.instance()
    if app is not None and not app.property("explorerWorkersOnQuit"):
        app.aboutToQuit.connect(shutdown_all)
        app.setProperty("explorerWorkersOnQuit", True)


def one_line(exc: BaseException) -> str:
    """A message for the user: ValueError's own text, else the type and the first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ValueError) and text:
        return text
    return f"{type(exc).__name__}: {text}".rstrip(": ")
