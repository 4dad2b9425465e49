"""A part of every training batch computed in another process: every core on one batch, without threads.

    helper = PartProcess(model, autocast_dtype)    # starts `python -m explorer.core.gpt.part_process`
    helper.send_weights(params); helper.start_grad(x_part, y_part, scale, weight)
    ... the caller computes its own part meanwhile ...
    loss, grads = helper.finish_grad()             # the part's loss x weight, its gradients x scale

Why a process: the baby GPT's kernels are too small to split over threads (a fork and a join per
kernel), and two threads in one process, each running whole kernels on its own rows, still share the
interpreter lock for the Python half of every layer and wait for each other at every one. A second
process runs its part on its own core with nothing shared but memory.

The two processes share one block of memory (`multiprocessing.shared_memory`): the weights (copied in
by the caller before each part, so the helper always computes with the caller's current weights, after
any optimizer step, resume or load), the part's token rows, and the part's gradients and loss. The
helper is a plain subprocess (the app's training process is a daemon, which may not start
multiprocessing children): commands go down its stdin and answers come up its stdout, one short line
each. It ends when its stdin closes (the caller ended, was killed, or closed it), and it ignores Ctrl-C,
which the terminal also sends it: the caller decides when training stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from multiprocessing import shared_memory
from pathlib import Path

import torch

# glibc's malloc keeps the memory it frees instead of giving it back to the system (`keep_freed_memory`
# in the caller, these in the helper): by default a part's activations and gradients (blocks of ~100 KB
# to 3 MB) are mapped fresh and handed back every step, and each of their pages faulted in again:
# measured for the baby GPT's split, ~540 page faults a step in the helper and ~1,000 in the caller; none
# in the helper with these. Other C libraries ignore them.
MALLOC_KEEP = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def keep_freed_memory() -> bool:
    """In this process, have glibc's malloc keep what it frees (as MALLOC_KEEP does for a helper), so a
    training step reuses the last step's pages rather than faulting in new ones; False where there is no
    glibc. For processes that train small models step after step: their peak memory stays theirs."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 256 << 20))
    except (OSError, AttributeError):
        return False


class PartProcessError(RuntimeError):
    """The helper process failed or ended early (its message, or its exit status)."""


def _layout(numel: int, rows: int, context: int) -> tuple[int, int, int, int, int]:
    """Byte offsets of (tokens x, tokens y, weights, gradients, loss) and the block's size."""
    tokens = rows * context * 8  # int64 first: every later offset stays 8-byte aligned
    x, y = 0, tokens
    weights = 2 * tokens
    grads = weights + numel * 4
    loss = grads + numel * 4
    return x, y, weights, grads, loss


def _views(buf, numel: int, rows: int, context: int) -> dict[str, torch.Tensor]:
    x, y, weights, grads, loss = _layout(numel, rows, context)
    count = rows * context
    return {"x": torch.frombuffer(buf, dtype=torch.int64, count=count, offset=x).view(rows, context),
            "y": torch.frombuffer(buf, dtype=torch.int64, count=count, offset=y).view(rows, context),
            "weights": torch.frombuffer(buf, dtype=torch.float32, count=numel, offset=weights),
            "grads": torch.frombuffer(buf, dtype=torch.float32, count=numel, offset=grads),
            "loss": torch.frombuffer(buf, dtype=torch.float32, count=1, offset=loss)}


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters a part's gradients are for, in the one order both processes use."""
    return [p for p in model.parameters() if p.requires_grad]


class PartProcess:
    """The caller's side: one helper process computing one part of each batch on one torch thread."""

    def __init__(self, model, rows: int, autocast_dtype: torch.dtype | None = None) -> None:
        """Start the helper for `model` (a GPT on the CPU) and parts of at most `rows` sequences."""
        params = trainable(model)
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params):
            raise ValueError("a part process computes float32 weights on the CPU only")
        self.numel = sum(p.numel() for p in params)
        self.rows, self.context = rows, model.config.context_length
        size = _layout(self.numel, rows, self.context)[-1] + 4
        self._shm = shared_memory.SharedMemory(create=True, size=size)
        self._views = _views(self._shm.buf, self.numel, rows, self.context)
        spec = {"shm": self._shm.name, "config": model.config.to_dict(), "rows": rows,
                "autocast": str(autocast_dtype).removeprefix("torch.") if autocast_dtype else None}
        # The package's folder first on the path: the helper imports this checkout, installed or not.
        root = str(Path(__file__).resolve().parents[3])
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               **MALLOC_KEEP}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "explorer.core.gpt.part_process", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._ready = False
        self._busy = False

    @property
    def pid(self) -> int | None:
        """The helper's process id (None once closed)."""
        return self._process.pid if self._process is not None else None

    # -- the caller's side of one part ---------------------------------------------------------

    def send_weights(self, params: list[torch.Tensor]) -> None:
        """Copy the caller's current weights into the shared block (before each part; ~1 ms for 0.8M)."""
        with torch.no_grad():
            torch.cat([p.detach().reshape(-1) for p in params], out=self._views["weights"])

    def start_grad(self, x: torch.Tensor, y: torch.Tensor, scale: float, weight: float) -> None:
        """Begin the gradients of the part's loss x `scale` (returns at once; see `finish_grad`)."""
        self._start("grad", x, y, scale, weight)

    def finish_grad(self, params: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Wait for the part: (its loss x weight, its gradients x scale, each shaped like its parameter).

        The gradients are views of the shared block, not copies (a copy of every gradient cost ~0.8 ms a
        step for the baby GPT): read them before this helper's next part, which overwrites them."""
        self._finish()
        grads, offset = [], 0
        for p in params:
            grads.append(self._views["grads"][offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return self._views["loss"][0].clone(), grads

    def start_loss(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> None:
        """Begin the part's evaluation loss x `weight` (no gradients; see `finish_loss`)."""
        self._start("loss", x, y, 1.0, weight)

    def finish_loss(self) -> torch.Tensor:
        """Wait for the part's evaluation loss x weight."""
        self._finish()
        return self._views["loss"][0].clone()

    def close(self) -> None:
        """End the helper (closing its stdin) and free the shared block; safe to call twice."""
        process, self._process = getattr(self, "_process", None), None
        if process is not None:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shm, self._shm = getattr(self, "_shm", None), None
        if shm is not None:
            self._views = {}
            try:
                shm.close()
                shm.unlink()
            except (BufferError, FileNotFoundError, OSError):
                pass

    def __del__(self) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _start(self, kind: str, x: torch.Tensor, y: torch.Tensor, scale: float, weight: float) -> None:
        if self._process is None:
            raise PartProcessError("the part process was closed")
        if self._busy:
            raise PartProcessError("the part process is still busy with its last part")
        if not self._ready:
            self._read_line()  # its "ready", once, after it imported torch and built the model
            self._ready = True
        rows = len(x)
        if rows > self.rows or x.shape != y.shape or x.shape[1] != self.context:
            raise ValueError(f"a part of {tuple(x.shape)} tokens does not fit ({self.rows}, {self.context})")
        self._views["x"][:rows].copy_(x)
        self._views["y"][:rows].copy_(y)
        self._write(f"{kind} {rows} {scale!r} {weight!r}\n")
        self._busy = True

    def _finish(self) -> None:
        self._busy = False
        line = self._read_line()
        if line != "ok":
            raise PartProcessError(line.removeprefix("error ") or "the part process failed")

    def _write(self, line: str) -> None:
        try:
            self._process.stdin.write(line.encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise PartProcessError(self._ended()) from None

    def _read_line(self) -> str:
        line = self._process.stdout.readline() if self._process is not None else b""
        if not line:
            raise PartProcessError(self._ended())
        return line.decode(errors="replace").strip()

    def _ended(self) -> str:
        # Called when its pipe broke or closed: it has ended or is ending; its exit status says how.
        if self._process is None:
            return "the part process was closed"
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the part process stopped answering"
        return f"the part process ended (exit status {code})"


# -- the helper's side ---------------------------------------------------------------------------------


def attach(name: str) -> shared_memory.SharedMemory:
    """The caller's shared block, not tracked here: the caller made it and unlinks it (Python before 3.13
    would have this process's resource tracker unlink it too, and warn of a leak, when the helper ends)."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:  # Python before 3.13: no `track`; this process is the helper, its tracker is ours
        from multiprocessing import resource_tracker

        register = resource_tracker.register
        resource_tracker.register = lambda *args, **kwargs: None
        try:
            return shared_memory.SharedMemory(name=name)
        finally:
            resource_tracker.register = register


def serve(spec: dict, commands, answers) -> None:
    """The helper's loop: build the model on the shared weights, then answer one command per line."""
    from explorer.core.gpt.model import GPT, GPTConfig

    torch.set_num_threads(1)
    shm = attach(spec["shm"])
    try:
        model = GPT(GPTConfig.from_dict(spec["config"]))
        params = trainable(model)
        numel = sum(p.numel() for p in params)
        views = _views(shm.buf, numel, spec["rows"], model.config.context_length)
        offset = 0
        for p in params:  # the model computes straight from the caller's weights, never a copy
            p.data = views["weights"][offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        autocast = getattr(torch, spec["autocast"]) if spec.get("autocast") else None
        answers.write(b"ready\n")
        answers.flush()
        for raw in commands:
            try:
                kind, rows, scale, weight = raw.decode().split()
                _answer(model, params, views, kind, int(rows), float(scale), float(weight), autocast)
                answers.write(b"ok\n")
            except Exception as exc:  # noqa: BLE001 - told to the caller, which raises it there
                answers.write(f"error {type(exc).__name__}: {exc}".replace("\n", " ").encode() + b"\n")
            answers.flush()
    finally:
        del params, model
        views = None
        shm.close()


def _answer(model, params, views, kind: str, rows: int, scale: float, weight: float, autocast) -> None:
    x, y = views["x"][:rows], views["y"][:rows]
    ctx = torch.autocast("cpu", dtype=autocast, enabled=autocast is not None)
    if kind == "loss":
        model.eval()
        try:
            with torch.no_grad(), ctx:
                views["loss"][0] = model.loss(x, y).float() * weight
        finally:
            model.train()
        return
    if kind != "grad":
        raise ValueError(f"unknown command {kind!r}")
    with ctx:
        loss = model.loss(x, y)
    grads = torch.autograd.grad(loss * scale, params, allow_unused=True)
    with torch.no_grad():
        offset = 0
        for p, g in zip(params, grads, strict=True):
            target = views["grads"][offset:offset + p.numel()]
            if g is None:
                target.zero_()
            else:
                target.copy_(g.reshape(-1))
            offset += p.numel()
        views["loss"][0] = loss.detach().float() * weight


def main(argv: list[str] | None = None) -> int:
    """The helper process: `python -m explorer.core.gpt.part_process SPEC_JSON`."""
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the caller, which stops the run
    spec = json.loads((argv if argv is not None else sys.argv[1:])[0])
    serve(spec, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
