"""What a loss landscape of a toy run costs, against training that run, in one process.

    python bench/landscape_bench.py [--pairs 5] [--steps 1000] [--preset toy-2d] [--size 31]

The Loss landscape tab replays the run (the toy runs keep no weights) and then evaluates the loss on a
size x size grid. Each pair times, in alternating order so a busy machine slows both alike:
    train      train_toy for --steps steps as the app records them (every step measured), single-threaded
    landscape  toy_landscape: the replay with its snapshots, then the grid (random directions)
Printed: the median seconds of each, the grid's share of the landscape's time, and the median of the
per-pair ratios (landscape / train).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.mlp.landscape import loss_landscape, replay_toy_run, toy_train_loss  # noqa: E402
from explorer.core.mlp.network import preset_spec  # noqa: E402
from explorer.core.mlp.toydata import make_dataset, single_torch_thread, train_toy  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--preset", default="toy-2d")
    parser.add_argument("--size", type=int, default=31)
    args = parser.parse_args()
    spec, data = preset_spec(args.preset), make_dataset("moons", 200, 0.1, 0.25, 0)
    trains, replays, grids, ratios = [], [], [], []
    for pair in range(args.pairs):
        def train() -> float:
            start = time.perf_counter()
            with single_torch_thread():
                for _ in train_toy(spec, data, args.steps, record_every=1, boundary_every=20, grid_size=64):
                    pass
            return time.perf_counter() - start

        def landscape() -> tuple[float, float]:
            start = time.perf_counter()
            model, steps, vectors = replay_toy_run(spec, data, args.steps)
            middle = time.perf_counter()
            loss_landscape(model, toy_train_loss(spec, data), size=args.size, path=(steps, vectors))
            return middle - start, time.perf_counter() - middle

        if pair % 2:
            (replay, grid), t = landscape(), train()
        else:
            t, (replay, grid) = train(), landscape()
        trains.append(t)
        replays.append(replay)
        grids.append(grid)
        ratios.append((replay + grid) / t)
    total = [r + g for r, g in zip(replays, grids, strict=True)]
    print(f"{args.preset}, {args.steps} steps, grid {args.size}x{args.size}, {args.pairs} pairs")
    print(f"train (as the app records it)  median {statistics.median(trains):.2f} s")
    print(f"landscape (replay + grid)      median {statistics.median(total):.2f} s "
          f"(replay {statistics.median(replays):.2f} s, grid {statistics.median(grids):.2f} s)")
    print(f"landscape / train              median ratio {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
