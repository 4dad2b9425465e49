"""What recording the blocks' histograms costs: the same run with and without, in one process.

    python bench/histogram_bench.py [--pairs 7] [--steps 100] [--every 50] [--threads 1] [--device cpu]
                                    [--clock cpu|wall]

Model: the tiny preset (4 layers, 4 heads, 128 wide, context 64, batch 12) on the built-in corpus, no
evaluation, samples or health figures. Each pair trains two fresh trainers from the same seed, one with
`hist_every=0` (off) and one with `--every` (the default interval 50: steps 1, 50 and 100 of 100 record),
in alternating order, so a noisy shared machine slows both alike; the time counted is `Trainer.run()` to
the last step (the trainer is built before the clock starts), on the process's CPU clock by default (on
a machine shared with other work the wall clock measures the neighbours more than the run; `--clock
wall` for a quiet machine or a GPU). Printed: the median time of each, and the
median of the per-pair ratios (on / off) with its cost in percent: the issue's limit is 5% at the
default interval.
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


def timed_run(every: int, steps: int, device: str, clock=time.process_time) -> float:
    """Seconds of `Trainer.run()` for `steps` steps with histograms every `every` steps (0: off)."""
    settings = TRAIN_PRESETS["tiny"].replace(steps=steps, eval_every=0, sample_every=0, health_every=0,
                                             hist_every=every, checkpoint_every=0, device=device, seed=0)
    trainer = Trainer(PRESETS["tiny"], settings)
    start = clock()
    recorded = 0
    for record in trainer.run():
        recorded += record["type"] == "histograms"
        if record["type"] == "error":
            raise SystemExit(record["message"])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = clock() - start
    if every and not recorded:
        raise SystemExit("no step recorded histograms")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    timed_run(args.every, 3, args.device)  # warm-up: first-call costs out of the figures
    off, on, ratios = [], [], []
    for i in range(args.pairs):
        order = (0, args.every) if i % 2 == 0 else (args.every, 0)
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        times = {every: timed_run(every, args.steps, args.device, clock) for every in order}
        off.append(times[0])
        on.append(times[args.every])
        ratios.append(times[args.every] / times[0])
    ratio = statistics.median(ratios)
    figures = {"pairs": args.pairs, "steps": args.steps, "every": args.every, "device": args.device,
               "clock": args.clock, "threads": torch.get_num_threads(),
               "median_off_s": statistics.median(off),
               "median_on_s": statistics.median(on), "median_ratio": ratio, "cost_percent": 100 * (ratio - 1)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"tiny preset, {args.steps} steps, {args.pairs} pairs, {figures['threads']} thread(s), "
              f"{args.device}, {args.clock} clock")
        print(f"  histograms off        median {figures['median_off_s']:.3f} s")
        print(f"  histograms every {args.every:<4d} median {figures['median_on_s']:.3f} s")
        print(f"  on / off (paired)     median {ratio:.4f}  ({figures['cost_percent']:+.1f}% time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
