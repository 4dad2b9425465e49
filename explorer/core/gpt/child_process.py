"""The training process's side of the pretraining worker (no Qt: a spawned child imports only this).

`run_training` is the target of a `multiprocessing` 'spawn' process. It runs the core `Trainer`,
batches its small records so the queue carries at most ~20 messages a second, obeys control
messages (pause, resume, stop, checkpoint) from a listener thread, and always ends by writing the
checkpoint and sending one {"type": "exit"} message.

`train_on_ranks` is the same process's body for a run on several GPUs: it launches `explorer train` on
N ranks through torchrun and relays rank 0's records (JSON lines) into the same queue, so the panel
follows one run whichever way it trains.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import threading
import traceback
from collections import deque
from pathlib import Path
from typing import Any

# Seconds between two batches sent to the GUI: 20 updates a second at most.
FLUSH_INTERVAL_S = 0.05
PARENT_CHECK_S = 0.5  # how often the training process looks whether the GUI process still lives
TERMINAL_TYPES = ("done", "stopped", "error")


def run_training(
    config: dict[str, Any],
    settings: dict[str, Any],
    corpus_path: str | None,
    checkpoint_path: str,
    commands: Any,
    records: Any,
    num_threads: int = 1,
    resume_from: str | None = None,
) -> None:
    """Train a GPT from plain dicts and stream record batches (lists of dicts) into `records`."""
    sender = BatchSender(records)
    trainer = None
    lock = None
    try:
        from explorer.core import files

        # The run's folder is this process's while it lives (the kernel drops the lock when it ends, even
        # by kill -9): other windows see the run as training and never clean or delete its folder.
        lock = files.FolderLock(Path(checkpoint_path).parent)
        import torch

        from explorer.core.gpt.train import keep_cores_for_training

        # The GUI keeps one core for itself: oversubscribing a 2-core machine stalls both sides.
        torch.set_num_threads(max(1, int(num_threads)))
        keep_cores_for_training(num_threads)  # and the batch split's helper processes too
        trainer = make_trainer(config, settings, corpus_path, resume_from)
        # `checkpoint_every` rewrites the run's own checkpoint (atomically) as it trains.
        trainer.checkpoint_target = Path(checkpoint_path)
        wants_checkpoint = threading.Event()
        # Set between the trainer's "paused" and "resumed" records: the loop is blocked and the model
        # is not changing, so the listener may write a checkpoint itself.
        paused = threading.Event()
        # Makes "is the loop paused? else flag the request" (listener) and "mark paused, then look for
        # a request" (loop) atomic, so a request made just as the loop pauses is never lost.
        handoff = threading.Lock()
        listener = threading.Thread(
            target=_listen,
            args=(commands, trainer, wants_checkpoint, paused, handoff, checkpoint_path, sender),
            daemon=True, name="commands",
        )
        listener.start()
        for record in trainer.run():
            sender.add(clean_record(record))
            kind = record.get("type")
            with handoff:
                if kind == "paused":
                    paused.set()
                elif kind == "resumed":
                    paused.clear()
                save_now = wants_checkpoint.is_set()
                wants_checkpoint.clear()
            if save_now:
                _save(trainer, checkpoint_path, sender)
            if record.get("type") in TERMINAL_TYPES:
                break
        sender.flush()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the panel
        sender.add({"type": "error", "message": _describe(exc), "detail": traceback.format_exc(limit=4)})
    finally:
        if trainer is not None:
            _save(trainer, checkpoint_path, sender)
            if hasattr(trainer, "close"):
                trainer.close()  # its helper processes (a batch split over processes) end with the run
        if lock is not None:
            lock.release()
        sender.add({"type": "exit"})
        sender.close()
        if not parent_alive() and hasattr(records, "cancel_join_thread"):
            records.cancel_join_thread()  # nobody reads the queue: never wait on a full pipe to exit


def make_trainer(config: dict[str, Any], settings: dict[str, Any], corpus_path: str | None,
                  resume_from: str | None = None):
    """Build the core Trainer; it reads and checks the corpus file here, never in the GUI.

    With `resume_from`, the trainer continues that checkpoint (weights, optimizer, step) on `corpus_path`
    with `settings` (fine-tuning when the corpus is another text); the checkpoint itself is only read.
    """
    from explorer.core.gpt.train import Trainer, TrainSettings

    if resume_from:
        # The corpus goes in as a file to read (`corpus=` would take the path itself as the text).
        return Trainer.load_checkpoint(resume_from, settings={**settings, "corpus_path": corpus_path or None})

    train_settings = TrainSettings.from_dict({**settings, "corpus_path": corpus_path or None})
    return Trainer(dict(config), train_settings)


def _listen(commands: Any, trainer: Any, wants_checkpoint: threading.Event, paused: threading.Event,
            handoff: threading.Lock, checkpoint_path: str, sender: BatchSender) -> None:
    """Forward control messages from the GUI to the trainer until 'stop' (or the queue dies, or the GUI
    process is gone: killed, its run then stops after its step and writes its checkpoint)."""
    while True:
        try:
            command = commands.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if parent_alive():
                continue
            command = "stop"
        except (EOFError, OSError, ValueError):
            command = "stop"
        if command == "pause":
            trainer.pause()
        elif command == "resume":
            trainer.resume()
        elif command == "checkpoint":
            with handoff:
                save_here = paused.is_set()  # the loop is blocked: nobody else touches the model now
                if not save_here:
                    wants_checkpoint.set()
            if save_here:
                _save(trainer, checkpoint_path, sender)
        elif command == "stop" or command is None:
            trainer.request_stop()
            # A paused loop must wake up to see the stop request.
            if hasattr(trainer, "resume"):
                trainer.resume()
            return


def parent_alive() -> bool:
    """Whether the process that spawned this one still runs (True where that cannot be told)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


def _save(trainer: Any, path: str, sender: BatchSender) -> None:
    """Write the checkpoint (the trainer writes a temporary file and renames it) and say so."""
    try:
        if getattr(trainer, "model", None) is None:
            return
        if getattr(trainer, "updating", False):
            # Interrupted (Ctrl-C in the terminal reaches this process too) inside an optimizer update:
            # half-updated weights would overwrite the last good checkpoint.
            sender.add({"type": "warning", "message": "interrupted during a weight update: the checkpoint "
                        "keeps the last saved state"})
            return
        trainer.save_checkpoint(path)
        sender.add({"type": "checkpoint", "path": path, "step": _trainer_step(trainer)})
    except Exception as exc:  # noqa: BLE001 - a failed save is reported, training already ended
        sender.add({"type": "warning", "message": f"could not save the checkpoint: {_describe(exc)}"})


def _trainer_step(trainer: Any) -> int | None:
    step = getattr(trainer, "step", None)
    return int(step) if isinstance(step, int) else None


def clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Plain picklable numbers and strings only (tensors and numpy scalars become floats)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif hasattr(value, "item"):
            try:
                out[key] = value.item()
            except (ValueError, RuntimeError):
                out[key] = str(value)
        elif isinstance(value, (list, tuple, dict)):
            out[key] = value
        else:
            out[key] = str(value)
    for key in ("train_loss", "val_loss"):
        if isinstance(out.get(key), float) and not math.isfinite(out[key]):
            out[key] = float("nan")
    return out


def _describe(exc: BaseException) -> str:
    """One line for the panel, with advice for the errors a student can fix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return ("the GPU ran out of memory: try a smaller batch size or context length "
                f"(or fewer layers / a narrower model). ({text})")
    if isinstance(exc, UnicodeDecodeError):
        return "the corpus file is not UTF-8 text: choose a plain text file."
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"cannot read the corpus file: {text}"
    return text if isinstance(exc, ValueError) else f"{name}: {text}"


class BatchSender:
    """Coalesces records into one queue message per FLUSH_INTERVAL_S (terminal records go at once).

    A small daemon thread flushes what is pending, so the last records before a slow stretch
    (an evaluation, a sample) are not held back until the next record arrives.
    """

    def __init__(self, records: Any) -> None:
        self._records = records
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True, name="flush")
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record; records that end or mark something send the batch at once."""
        with self._lock:
            self._pending.append(record)
        if record.get("type") in (*TERMINAL_TYPES, "exit", "checkpoint", "start", "paused"):
            self.flush()

    def send(self, record: dict[str, Any]) -> None:
        """Queue one record and send everything pending now."""
        self.add(record)
        self.flush()

    def flush(self) -> None:
        """Send what is pending as one message."""
        # Put under the lock so two flushes can never reorder batches (put does not block).
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._records.put(batch)
            except (ValueError, OSError, queue.Full):  # the GUI side is gone: nothing to tell it
                pass

    def close(self) -> None:
        """Stop the flushing thread and send the rest."""
        self._closed.set()
        self.flush()

    def _tick(self) -> None:
        while not self._closed.wait(FLUSH_INTERVAL_S):
            self.flush()


RANKS_CONFIG = "ranks-config.json"  # the run's fields, written into its folder for the ranks to read


def train_on_ranks(
    nproc: int,
    config: dict[str, Any],
    settings: dict[str, Any],
    corpus_path: str | None,
    checkpoint_path: str,
    commands: Any,
    records: Any,
    num_threads: int = 1,
    resume_from: str | None = None,
) -> None:
    """Train on `nproc` ranks (one per GPU, or CPU ranks on gloo) and stream rank 0's records.

    The ranks are `python -m explorer train --records` under torchrun, writing their checkpoint into the
    run's folder (the folder of `checkpoint_path`). "stop" reaches them as a Ctrl-C: torchrun passes it
    on, every rank stops after its step and rank 0 saves. Pausing needs every rank to wait together,
    which the launcher cannot ask for: a pause or a save-now is answered with a warning.
    """
    from explorer.core.gpt.distributed import torchrun_argv

    sender = BatchSender(records)
    folder = Path(checkpoint_path).parent
    fields = {**settings, "out_dir": str(folder)}
    if corpus_path:
        fields["corpus_path"] = corpus_path
    if not resume_from:
        fields = {**config, **fields}
    args = ["--records", "--threads", str(max(1, int(num_threads)))]
    if resume_from:
        args += ["--resume", resume_from]
    status = {"terminal": None, "stopping": False}
    errors: deque[str] = deque(maxlen=5)
    process = None
    try:
        config_file = folder / RANKS_CONFIG
        config_file.write_text(json.dumps(fields), encoding="utf-8")
        args += ["--config", str(config_file)]
        process = subprocess.Popen(torchrun_argv(nproc, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if threading.current_thread() is threading.main_thread():
            # Terminated by the panel (it gave up waiting): take the ranks down too, never leave them behind.
            signal.signal(signal.SIGTERM, lambda *_: (process.terminate(), os._exit(143)))
        threading.Thread(target=_collect_errors, args=(process.stderr, errors), daemon=True,
                         name="rank errors").start()
        threading.Thread(target=_listen_ranks, args=(commands, process, sender, status), daemon=True,
                         name="commands").start()
        for line in process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # something else printed on stdout: not a record
            if not isinstance(record, dict) or "type" not in record:
                continue
            if record["type"] in TERMINAL_TYPES:
                status["terminal"] = record["type"]
            sender.add(record)
        code = process.wait()
        if status["terminal"] is None:  # no rank said how it ended: say it from the exit status
            if status["stopping"]:
                sender.add({"type": "stopped", "message": "stopped on request"})
            else:
                why = errors[-1] if errors else f"the ranks ended with exit status {code}"
                sender.add({"type": "error", "message": why.removeprefix("error: ")})
        if Path(checkpoint_path).is_file():
            sender.add({"type": "checkpoint", "path": str(checkpoint_path), "step": None})
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the panel
        sender.add({"type": "error", "message": _describe(exc), "detail": traceback.format_exc(limit=4)})
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        sender.add({"type": "exit"})
        sender.close()


def _collect_errors(stream, errors: deque) -> None:
    """Keep the last error lines the ranks print (torchrun's own report is long; ours start 'error')."""
    for line in stream:
        line = line.strip()
        if line.startswith("error"):
            errors.append(line.split(": ", 1)[-1] if line.startswith("error (rank") else line)


def _listen_ranks(commands: Any, process: subprocess.Popen, sender: BatchSender, status: dict) -> None:
    """Forward the panel's commands to the ranks: stop as a Ctrl-C; pause and save-now cannot be done."""
    while process.poll() is None:
        try:
            command = commands.get(timeout=0.2)
        except queue.Empty:
            continue
        except (EOFError, OSError, ValueError):
            command = "stop"
        if command == "stop" or command is None:
            status["stopping"] = True
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            return
        if command in ("pause", "checkpoint"):
            sender.add({"type": "warning", "message": "a run on several GPUs cannot pause or save midway; "
                        "Stop ends it with a checkpoint"})
