"""Benchmark of the lessons core: how long the Learn panel's calls block the GUI thread.

Run: ``.venv/bin/python bench/lessons_bench.py [--repeat N]``. For every step of lessons 1-5 it times
opening the step, `run_step` plus `figure_data` (its actions and figure, computed in the calling thread),
and `expected` (the answer computed from the state, which `check` calls), and prints the median of the
slowest step per lesson. The baseline, measured
in the same run, is one `compute_now` of the seed program: what the expression workspace itself does on
every edit. Lesson 6 needs trained runs, so it is left out here.
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
os.environ.setdefault("AUTOGRAD_EXPLORER_DATA", tempfile.mkdtemp(prefix="lessons-bench-"))

from explorer.core.lessons import expected, figure_data, load_catalog, run_step  # noqa: E402
from explorer.core.workspaces.session import Workspaces  # noqa: E402


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _show(step, ws) -> None:
    """What the panel does when it opens a step: run its actions and compute its figure."""
    run_step(step, ws)
    if step.figure:
        figure_data(step, ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ws = Workspaces()
    ws.expression.compute_now()  # warm torch up before anything is timed
    baseline = statistics.median(_ms(ws.expression.compute_now) for _ in range(args.repeat * 4))
    print(f"baseline: compute_now of the seed program {baseline:8.2f} ms")
    print(f"{'lesson':24} {'steps':>5}  {'slowest open (step)':30} {'slowest expected (step)':30} "
          f"{'x baseline':>10}")
    catalog = load_catalog()
    for lesson in catalog.lessons[:5]:
        run_times: dict[str, list[float]] = {s.id: [] for s in lesson.steps}
        exp_times: dict[str, list[float]] = {s.id: [] for s in lesson.steps}
        for _ in range(args.repeat):
            fresh = Workspaces()
            for step in lesson.steps:
                run_times[step.id].append(_ms(lambda s=step, w=fresh: _show(s, w)))
                if step.exercise is not None:
                    exp_times[step.id].append(_ms(lambda s=step, w=fresh: expected(s, w)))
        slow_run = max((statistics.median(v), k) for k, v in run_times.items())
        slow_exp = max((statistics.median(v), k) for k, v in exp_times.items() if v)
        worst = max(slow_run[0], slow_exp[0])
        print(f"{lesson.id:24} {len(lesson.steps):5}  {slow_run[0]:7.1f} ms {slow_run[1]:19.19} "
              f"{slow_exp[0]:7.1f} ms {slow_exp[1]:19.19} {worst / baseline:10.1f}x")


if __name__ == "__main__":
    main()
