"""What keeping runs safe costs: a checkpoint's save time per preset, and taking a run folder.

Issue 24: closing the window ended the training process 0.8 s after asking it to stop, while a run about the
size of the `small` preset was still writing its checkpoint. This prints, per preset, the checkpoint's size
and the median time of `Trainer.save_checkpoint` (the atomic write the close now waits for, up to
`CLOSE_WAIT_S`), and the cost of `allocate_run` (exclusive mkdir, then the run-id file, fsync'd) against a
bare `mkdir` measured in the same run.

    python bench/runs_bench.py [--presets tiny small] [--repeats 5] [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def checkpoint_times(preset: str, repeats: int) -> tuple[float, float]:
    """(size in MiB, median save seconds) of a preset's checkpoint after one step on the CPU."""
    from explorer.core.gpt.model import PRESETS
    from explorer.core.gpt.train import TRAIN_PRESETS, Trainer

    settings = TRAIN_PRESETS[preset].replace(steps=1, device="cpu", eval_every=0, sample_every=0)
    trainer = Trainer(PRESETS[preset], settings)
    list(trainer.run())
    folder = tempfile.mkdtemp()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        path = trainer.save_checkpoint(os.path.join(folder, "checkpoint.safetensors"))
        times.append(time.perf_counter() - start)
    return os.path.getsize(path) / 2**20, statistics.median(times)


def allocation_times(runs: int) -> tuple[float, float]:
    """(median ms of a bare mkdir, median ms of allocate_run) over `runs` folders each."""
    os.environ["AUTOGRAD_EXPLORER_DATA"] = tempfile.mkdtemp()
    from explorer.core.workspaces.pretrain import allocate_run, runs_dir

    bare_root = Path(tempfile.mkdtemp())
    bare, taken = [], []
    for i in range(runs):
        start = time.perf_counter()
        os.mkdir(bare_root / f"run-{i}")
        bare.append(time.perf_counter() - start)
    runs_dir().mkdir(parents=True, exist_ok=True)
    for _ in range(runs):
        start = time.perf_counter()
        allocate_run()
        taken.append(time.perf_counter() - start)
    return statistics.median(bare) * 1000, statistics.median(taken) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    from explorer.ui.pretrain.process import CLOSE_WAIT_S, SHUTDOWN_S

    print(f"close waits at most {CLOSE_WAIT_S:.0f} s for a checkpoint (before issue 24: {SHUTDOWN_S} s)")
    for preset in args.presets:
        size, seconds = checkpoint_times(preset, args.repeats)
        print(f"{preset:>10}: checkpoint {size:7.1f} MiB, save median {seconds * 1000:7.0f} ms "
              f"({seconds / SHUTDOWN_S:.1f}x the old {SHUTDOWN_S} s limit)")
    bare, taken = allocation_times(args.runs)
    print(f"taking a run folder: bare mkdir median {bare:.3f} ms, allocate_run median {taken:.3f} ms "
          f"({taken / bare:.0f}x, the fsync'd run-id file)")


if __name__ == "__main__":
    main()
