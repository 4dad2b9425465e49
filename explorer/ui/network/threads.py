"""A QThread that runs `explorer.core.mlp.toydata.train_toy` and hands records to the GUI at a bounded rate.

The loop itself knows nothing about Qt; this thread batches its records and emits them at most
`EMIT_HZ` times a second (keeping only the newest decision-boundary grid of each batch), so a fast
producer never floods the GUI thread. A speed limit (steps per second) slows training down to watch it.
`RecordThread` records one traced iteration (`NetSession.run_iteration`) for the phase player.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from PySide6.QtCore import QThread, Signal

from explorer.core.mlp.network import NetSpec
from explorer.core.mlp.toydata import ToyDataset, TrainControl, train_toy

EMIT_HZ = 20
YIELD_S = 0.0003  # GIL release per training step


@contextmanager
def single_torch_thread():
    """Run torch single-threaded for the block, then restore the previous thread count.

    A toy MLP's tensors are far too small to split across threads: intra-op threads only add spin-waits,
    which on a busy machine made training several times slower and starved the GUI thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TrainThread(QThread):
    """Trains one run on toy data; `control` pauses/stops it from the GUI thread."""

    sig_records = Signal(list)
    """A batch of step records (dicts), at most one boundary record, in order."""

    sig_finished = Signal(dict)
    """The final record: {"type": "done" | "stopped" | "error", "step", "message"}."""

    def __init__(
        self,
        spec: NetSpec,
        data: ToyDataset,
        steps: int,
        speed: float = 0.0,
        grid_size: int = 64,
        parent=None,
    ):
        super().__init__(parent)
        self.grid_size = grid_size
        self.spec, self.data, self.steps = spec, data, steps
        self.speed = speed  # steps per second; 0 = as fast as possible (read each step, may change)
        self.control = TrainControl()

    def run(self) -> None:
        """Train; emit batches of records; always end with sig_finished."""
        with single_torch_thread():
            self._train()

    def _train(self) -> None:
        pending: list[dict] = []
        last_emit = time.perf_counter()
        last_step = last_emit
        final = {"type": "error", "step": 0, "message": "training ended unexpectedly"}
        try:
            slow = self.speed and self.speed <= 100
            records = train_toy(
                self.spec,
                self.data,
                self.steps,
                self.control,
                record_every=1,
                boundary_every=5 if slow else 20,
                grid_size=self.grid_size,
            )
            for record in records:
                if record["type"] in ("done", "stopped", "error"):
                    final = record
                    break
                pending.append(record)
                now = time.perf_counter()
                if record["type"] == "step":
                    wait = 1.0 / self.speed - (now - last_step) if self.speed else 0.0
                    # Sleeping releases the GIL: even flat out, the GUI thread gets its turn every step
                    # instead of queueing behind torch's many short GIL hand-offs.
                    time.sleep(min(max(wait, YIELD_S), 0.5))
                    now = last_step = time.perf_counter()
                if now - last_emit >= 1.0 / EMIT_HZ:
                    self._emit(pending)
                    pending = []
                    last_emit = now
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
            final = {"type": "error", "step": 0, "message": f"{type(exc).__name__}: {exc}"}
        if pending:
            self._emit(pending)
        self.sig_finished.emit(final)

    def _emit(self, records: list[dict]) -> None:
        boundaries = [r for r in records if r["type"] == "boundary"]
        kept = [r for r in records if r["type"] != "boundary"]
        if boundaries:
            kept.append(boundaries[-1])
        self.sig_records.emit(kept)


class RecordThread(QThread):
    """Records one iteration of a NetSession (`run_iteration`) off the GUI thread.

    The thread never touches a widget: it reads only the session and the arguments it was given, keeps
    its result on itself (`before`, `iteration`, `error`) and announces it with `sig_done(serial)`.
    """

    sig_done = Signal(int)
    """The request `serial` is finished; its result (or error) is on the thread."""

    def __init__(self, serial: int, session, skip_zero_grad: bool, parent=None):
        super().__init__(parent)
        self.serial = serial
        self.session = session
        self.skip_zero_grad = skip_zero_grad
        self.before = None
        self.iteration = None
        self.error: str | None = None

    def run(self) -> None:
        """Record; always end with sig_done (after torch's thread count is restored)."""
        try:
            with single_torch_thread():  # tiny tensors: extra threads only add spin-waits
                self.before = self.session.param_states()
                self.iteration = self.session.run_iteration(skip_zero_grad=self.skip_zero_grad)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a traceback
            self.error = f"could not run this network: {type(exc).__name__}: {exc}"
        self.sig_done.emit(self.serial)
