"""Runs the core Trainer in a spawned process and feeds its records to the GUI thread.

Why a process and not a QThread: measured on 2 cores, training in a Python thread cost 24% of its
speed (GIL contention) and stalled the GUI up to 186 ms; a spawned process fed through a queue kept
a GUI probe timer's p99 at ~19 ms and trained at 1.05x a plain loop. The child (pretrain_child.py,
Qt-free) batches its records; a QTimer here drains the queue and emits at most one `sig_records`
per poll (20 a second by default), so the panel never sees a flood.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer, Signal

from explorer.core.gpt.child_process import run_training, train_on_ranks

POLL_MS = 50
SHUTDOWN_S = 0.8  # a run with nothing to save (still starting) ends within this on quit (issue 8: ~5 s)
# Closing the window while a run trains: it stops after its step and writes its checkpoint, waited for up to
# this long (the window says so); then the process is ended and the last periodic checkpoint is the run's.
CLOSE_WAIT_S = 30.0


def default_num_threads() -> int:
    """Torch threads for the training process: every core but one, which stays with the GUI."""
    return max(1, (os.cpu_count() or 2) - 1)


class TrainProcess(QObject):
    """One training run in a child process: start, pause, resume, stop, and a clean shutdown."""

    sig_records = Signal(list)
    """A batch of record dicts from the trainer (step, eval, sample, checkpoint, ...), in order."""
    sig_finished = Signal(dict)
    """The run ended: {"status": "done"|"stopped"|"error", "message": str, "checkpoint": path|None}."""

    def __init__(self, parent: QObject | None = None, poll_ms: int = POLL_MS,
                 backend: str = "process") -> None:
        """`backend` "thread" runs the same loop in a Python thread: only for the benchmark's comparison."""
        super().__init__(parent)
        if backend not in ("process", "thread"):
            raise ValueError(f"backend must be process or thread, got {backend!r}")
        self._backend = backend
        self._ctx = mp.get_context("spawn")
        self._process = None
        self._commands = None
        self._records = None
        self._paused = False
        self._result: dict[str, Any] = {}
        self._join_s = 2.0  # how long the end waits for a child that has said "exit" before ending it
        self._exit_deadline: float | None = None  # set once the child said "exit": its end is polled for
        self._end_stage = 0  # after "exit": 0 waiting for the child to end, 1 terminated, 2 killed
        self.blocking_joins = 0  # joins of a live child on the GUI thread (the freeze guards count them)
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)

    # -- public API -------------------------------------------------------------------------------
    def start(
        self,
        config: dict[str, Any],
        settings: dict[str, Any],
        checkpoint_path: str,
        corpus_path: str | None = None,
        num_threads: int | None = None,
        resume_from: str | None = None,
        nproc: int = 1,
    ) -> None:
        """Spawn the training process (returns at once; records arrive through `sig_records`).

        With `nproc` > 1 the process launches the run on that many ranks through torchrun and relays
        rank 0's records (core.gpt.child_process.train_on_ranks).
        """
        if self.is_running():
            raise RuntimeError("a training run is already going")
        threaded = self._backend == "thread"
        self._commands = _ThreadQueue() if threaded else self._ctx.Queue()
        self._records = _ThreadQueue() if threaded else self._ctx.Queue()
        self._paused = False
        self._exit_deadline = None
        self._result = {"status": "stopped", "message": "", "checkpoint": None}
        args = (dict(config), dict(settings), corpus_path, checkpoint_path,
                self._commands, self._records, num_threads or default_num_threads(), resume_from)
        if threaded:
            self._process = _ThreadHandle(args)
        elif nproc > 1:
            self._process = self._ctx.Process(target=train_on_ranks, args=(int(nproc), *args),
                                              name="explorer-train-ranks", daemon=True)
        else:
            self._process = self._ctx.Process(target=run_training, args=args, name="explorer-train",
                                              daemon=True)
        try:
            self._process.start()
        except Exception:
            self._process = None
            raise
        self._timer.start()

    def is_running(self) -> bool:
        """True from `start` until `sig_finished` has been emitted."""
        return self._process is not None

    def is_paused(self) -> bool:
        """True between `pause` and `resume`."""
        return self._paused

    def pause(self) -> None:
        """Hold the training loop between two steps."""
        self._send("pause")
        self._paused = self.is_running()

    def resume(self) -> None:
        """Continue a paused run."""
        self._send("resume")
        self._paused = False

    def stop(self) -> None:
        """Ask the run to stop after its current step; it saves its checkpoint, then finishes."""
        self._send("stop")
        self._paused = False

    def request_checkpoint(self) -> None:
        """Ask the running trainer to write its checkpoint now (a 'checkpoint' record follows)."""
        self._send("checkpoint")

    def shutdown(self, timeout: float = SHUTDOWN_S, paint: bool = False) -> bool:
        """Stop the run and end its process within about `timeout` s (window close, app quit).

        On "stop" the child writes its checkpoint and says "exit"; from then on it holds nothing of
        ours, so it is terminated instead of waited for (its interpreter's teardown alone takes about a
        second). A child that has not said "exit" by the deadline (still importing torch, or writing a
        large checkpoint) is terminated too: the checkpoint is written to a temporary file and renamed,
        so the last complete one survives. True when the child said "exit" in time. With `paint`, the
        wait lets the window repaint (a note about the wait stays visible; user input waits).
        """
        if self._process is None:
            return True
        if self._exit_deadline is not None:  # it said "exit" already and is winding down: end it now
            clean = self._process.exitcode == 0 if not self._process.is_alive() else True
            self._finish()
            return clean
        self._send("stop")
        self._join_s = 0.0
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                # Keep draining: a child whose queue pipe is full cannot exit.
                self._drain()
                if self._process is None:
                    return True
                if not self._process.is_alive():
                    break
                if paint:
                    QCoreApplication.processEvents(QEventLoop.ExcludeUserInputEvents, 20)
                    if self._process is None:
                        return True
                self._process.join(0.02)
            self._drain()
            if self._process is None:
                return True
            clean = not self._process.is_alive() and self._process.exitcode == 0
            self._finish()
            return clean
        finally:
            self._join_s = 2.0

    # -- internals --------------------------------------------------------------------------------
    def _send(self, command: str) -> None:
        if self._commands is None or self._process is None:
            return
        try:
            self._commands.put(command)
        except (ValueError, OSError):
            pass

    def _poll(self) -> None:
        self._drain()
        process = self._process
        if process is not None and self._exit_deadline is not None:
            # The child said "exit" and holds nothing of ours; its interpreter is winding down (about a
            # second). Polled here instead of joined: the GUI thread never waits for it, and the run is
            # reported ended (sig_finished, then run.json) only once the process, and its folder lock,
            # are gone, so no other window scanning the folder sees the run as still training.
            if not process.is_alive():
                self._finish()
            elif time.monotonic() >= self._exit_deadline:
                # past its grace: terminate, then kill, each given a second (polled, never joined here)
                self._end_stage += 1
                self._exit_deadline = time.monotonic() + 1.0
                if self._end_stage == 1:
                    process.terminate()
                elif self._end_stage == 2:
                    process.kill()
                else:
                    self._finish()  # still there after a kill: reported ended anyway
            return
        if process is not None and not process.is_alive():
            # Died without its exit message (killed, crashed in C): collect what is left, then report.
            self._drain()
            if self._process is not None:
                if process.exitcode not in (0, None):
                    self._result = {**self._result, "status": "error",
                                    "message": f"the training process ended unexpectedly "
                                               f"(exit code {process.exitcode})"}
                self._finish()

    def _drain(self) -> None:
        if self._records is None:
            return
        batch: list[dict[str, Any]] = []
        finished = False
        while True:
            try:
                chunk = self._records.get_nowait()
            except (queue.Empty, EOFError, OSError, ValueError):
                break
            for record in chunk:
                kind = record.get("type")
                if kind == "exit":
                    finished = True
                    continue
                self._note(record)
                batch.append(record)
        if batch:
            self.sig_records.emit(batch)
        if finished and self._process is not None:
            if self._join_s <= 0 or not self._process.is_alive():
                self._finish()  # shutting down (the child is ended at once), or already gone
            elif self._exit_deadline is None:
                self._exit_deadline = time.monotonic() + self._join_s  # _poll reports the end
                self._end_stage = 0

    def _note(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind in ("done", "stopped", "error"):
            self._result["status"] = kind
            self._result["message"] = str(record.get("message", "") or "")
        elif kind == "checkpoint":
            self._result["checkpoint"] = record.get("path")

    def _finish(self) -> None:
        self._timer.stop()
        process, self._process = self._process, None
        self._exit_deadline = None
        if process is not None and process.pid is not None:
            # The end is reported once the child is gone (polled by _poll after its "exit"), so its folder
            # lock is released before the run's record says it ended. A child still alive here is past its
            # deadline or the window is closing: it is ended (terminate, then kill).
            if process.is_alive():
                self.blocking_joins += 1
            _end_process(process, 0.0)
        for q in (self._commands, self._records):
            if q is not None:
                q.cancel_join_thread()
                q.close()
        self._commands = self._records = None
        self._paused = False
        self.sig_finished.emit(dict(self._result))


def _end_process(process, wait_s: float) -> None:
    """Join `process` for up to `wait_s` seconds, then terminate it, then kill it (each waited 1 s)."""
    process.join(wait_s)
    if process.is_alive():
        process.terminate()
        process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)


class _ThreadQueue(queue.Queue):
    """queue.Queue with the two multiprocessing.Queue methods the bridge calls on shutdown."""

    def cancel_join_thread(self) -> None:
        pass

    def close(self) -> None:
        pass


class _ThreadHandle:
    """The part of multiprocessing.Process the bridge uses, over a thread (benchmark comparison only)."""

    def __init__(self, args: tuple) -> None:
        self._thread = threading.Thread(target=run_training, args=args, name="explorer-train", daemon=True)
        self.pid: int | None = None

    def start(self) -> None:
        self._thread.start()
        self.pid = os.getpid()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self._thread.is_alive() else 0

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def terminate(self) -> None:  # a thread cannot be killed; the stop command ends it
        pass

    kill = terminate
