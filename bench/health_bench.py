"""What recording a run's health figures costs: the same run with and without, in one process.

    python bench/health_bench.py [--record health|histograms] [--pairs 7] [--steps N] [--every N]
                                 [--threads 1] [--device cpu] [--clock cpu|wall] [--json]

`--record health` (the default): per-block gradient norms and update ratios, `health_every` (default
interval 10, 40 steps). `--record histograms`: per-block activation and gradient histograms, `hist_every`
(default interval 50, 100 steps: steps 1, 50 and 100 record); `bench/histogram_bench.py` is this with
`--record histograms`.

Model: the tiny preset (4 layers, 4 heads, 128 wide, context 64, batch 12) on the built-in corpus, no
evaluation, samples, checkpoints or other recording. Each pair trains two fresh trainers from the same
seed, one with the interval 0 (off) and one with `--every`, in alternating order, so a noisy shared
machine slows both alike; the time counted is `Trainer.run()` to the last step (the trainer is built
before the clock starts), on the process's CPU clock by default (on a machine shared with other work the
wall clock measures the neighbours more than the run; `--clock wall` for a quiet machine or a GPU).
Printed: the median time of each, and the median of the per-pair ratios (on / off) with its cost in
percent: the issue's limit is 5% at the default interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt.model import PRESETS  # noqa: E402
from explorer.core.gpt.train import TRAIN_PRESETS, Trainer  # noqa: E402

# what is recorded: its TrainSettings field, default steps and interval, and how a record shows it
RECORDS = {
    "health": ("health_every", 40, 10, lambda r: r["type"] == "step" and "block_grad_norms" in r),
    "histograms": ("hist_every", 100, 50, lambda r: r["type"] == "histograms"),
}


def timed_run(what: str, every: int, steps: int, device: str, clock=time.process_time) -> float:
    """Seconds of `Trainer.run()` for `steps` steps with `what` recorded every `every` steps (0: off)."""
    off = {field: 0 for field, *_rest in RECORDS.values()}
    field, _steps, _every, recorded_in = RECORDS[what]
    settings = TRAIN_PRESETS["tiny"].replace(steps=steps, eval_every=0, sample_every=0, checkpoint_every=0,
                                             device=device, seed=0, **{**off, field: every})
    trainer = Trainer(PRESETS["tiny"], settings)
    start = clock()
    recorded = 0
    for record in trainer.run():
        recorded += bool(recorded_in(record))
        if record["type"] == "error":
            raise SystemExit(record["message"])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = clock() - start
    if every and not recorded:
        raise SystemExit(f"no step recorded the {what} figures")
    return elapsed


def main(argv=None, record: str = "health") -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", choices=sorted(RECORDS), default=record)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=None, help="default: 40 (health), 100 (histograms)")
    parser.add_argument("--every", type=int, default=None, help="default: 10 (health), 50 (histograms)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    _field, default_steps, default_every, _recorded_in = RECORDS[args.record]
    steps = args.steps if args.steps is not None else default_steps
    every = args.every if args.every is not None else default_every
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    timed_run(args.record, every, 3, args.device)  # warm-up: first-call costs out of the figures
    off, on, ratios = [], [], []
    for i in range(args.pairs):
        order = (0, every) if i % 2 == 0 else (every, 0)
        times = {e: timed_run(args.record, e, steps, args.device, clock) for e in order}
        off.append(times[0])
        on.append(times[every])
        ratios.append(times[every] / times[0])
    ratio = statistics.median(ratios)
    figures = {"record": args.record, "pairs": args.pairs, "steps": steps, "every": every,
               "device": args.device, "clock": args.clock, "threads": torch.get_num_threads(),
               "median_off_s": statistics.median(off), "median_on_s": statistics.median(on),
               "median_ratio": ratio, "cost_percent": 100 * (ratio - 1)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"tiny preset, {steps} steps, {args.pairs} pairs, {figures['threads']} thread(s), "
              f"{args.device}, {args.clock} clock")
        rows = ((f"{args.record} off", "median_off_s"), (f"{args.record} every {every}", "median_on_s"))
        for label, key in rows:
            print(f"  {label:<21}median {figures[key]:.3f} s")
        print(f"  on / off (paired)    median {ratio:.4f}  ({figures['cost_percent']:+.1f}% time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
