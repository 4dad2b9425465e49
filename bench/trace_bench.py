"""Benchmark of the trace stage alone (issue 21): ``trace(fn)`` of one GPT training step with every module
recorded, against the floor of the same step run plainly (forward, then ``loss.backward()``), in one run.

Run: ``PYTHONPATH=. .venv/bin/python bench/trace_bench.py`` (``--sizes 2500,10000`` nodes, ``--repeat 3``,
``--clock wall`` for wall time, ``--threads N`` for torch's intra-op threads, 1 by default: the step's
tensors are tiny, and on a loaded machine idle OpenMP workers spinning would count as CPU time;
``--baseline FILE`` also times another version of ``explorer/core/autograd/trace.py`` (say, main's, from
``git show main:explorer/core/autograd/trace.py > /tmp/trace_main.py``; ``--baseline-saved FILE`` gives it
its own ``saved.py`` of the same commit, which it imports instead of ours) interleaved with this one, in
the same process, which of the two runs first alternating from run to run, and prints ``base`` (its median)
and ``t/base``, the median over the runs of each run's trace / baseline ratio).

For each size it prints the median of ``--repeat`` runs of: ``trace`` = ``trace(fn, max_snapshot_elems=2048)``
as the trace tab calls it; ``plain`` = the same step without recording (forward + ``backward()``); their
ratio (the recording's overhead factor); and ``inspect`` = reading every value and gradient as the inspector
would (``Snapshot.data``), which the trace leaves for the first read. The growth line is the largest size's
time over the smallest's, scaled by their node counts (1.0 is linear).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from graph_bench import gpt_step_fn  # noqa: E402

from explorer.core.autograd.trace import trace  # noqa: E402

CLOCK = [time.process_time]
BASELINE: list = []  # the trace function of --baseline, when given


def load_baseline(path: str, saved_path: str | None = None):
    """``trace`` of another copy of the tracer's module, imported under a name of its own; with
    ``saved_path``, that copy imports that copy of ``explorer/core/autograd/saved.py`` instead of ours."""
    import importlib.util

    def load(name, file):
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module

    ours = "explorer.core.autograd.saved"
    current = sys.modules.get(ours)
    if saved_path:
        sys.modules[ours] = load("trace_baseline_saved", saved_path)
    try:
        return load("trace_baseline", path).trace
    finally:
        if saved_path:
            sys.modules[ours] = current


def layers_for(nodes: int) -> int:
    """Blocks of the bench's GPT that give about ``nodes`` traced nodes (measured on 1 and 3 blocks)."""
    small, big = (len(trace(gpt_step_fn(k), max_snapshot_elems=16).nodes) for k in (1, 3))
    per_block = (big - small) / 2
    return max(1, round((nodes - (small - per_block)) / per_block))


def read_everything(tr) -> int:
    """Touch every snapshot's values, as inspecting every card, event and saved tensor would."""
    count = 0
    for node in tr.nodes.values():
        for snap in (node.value, node.grad):
            if snap is not None and snap.data is not None:
                count += 1
    for ev in tr.backward_events:
        for snap in (*ev.grad_outputs, *ev.grad_inputs, ev.grad_before, ev.grad_after):
            if snap is not None and snap.data is not None:
                count += 1
    return count


def row(nodes: int, repeat: int) -> dict:
    """Median seconds of the trace, the plain step and a full read of the values, at about ``nodes``."""
    fn = gpt_step_fn(layers_for(nodes))

    def plain():
        loss, _ = fn()
        loss.backward()

    trace(fn, max_snapshot_elems=2048)  # warm-up (first calls of each op, module paths)
    if BASELINE:
        BASELINE[0](fn, max_snapshot_elems=2048)  # (its own caches: a cold first run is no part of a ratio)
    plain()
    spent: dict[str, list[float]] = {"trace": [], "plain": [], "inspect": [], "base": []}
    ratios: list[float] = []
    for k in range(repeat):  # interleaved, so a burst of load on a shared machine hits both alike
        if BASELINE and k % 2 == 0:  # the baseline first on even runs, second on odd ones
            t0 = CLOCK[0]()
            BASELINE[0](fn, max_snapshot_elems=2048)
            spent["base"].append(CLOCK[0]() - t0)
        t0 = CLOCK[0]()
        tr = trace(fn, max_snapshot_elems=2048)
        spent["trace"].append(CLOCK[0]() - t0)
        if BASELINE and k % 2 == 1:
            t0 = CLOCK[0]()
            BASELINE[0](fn, max_snapshot_elems=2048)
            spent["base"].append(CLOCK[0]() - t0)
        if BASELINE:
            ratios.append(spent["trace"][-1] / spent["base"][-1])
        t0 = CLOCK[0]()
        read_everything(tr)
        spent["inspect"].append(CLOCK[0]() - t0)
        t0 = CLOCK[0]()
        plain()
        spent["plain"].append(CLOCK[0]() - t0)
    out = {k: statistics.median(v) for k, v in spent.items() if v}
    if ratios:
        out["ratio"] = statistics.median(ratios)  # of each run's pair: steadier than a ratio of medians
    out["nodes"] = len(tr.nodes)
    out["events"] = len(tr.backward_events)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2500,10000", help="graph sizes in nodes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (the median is shown)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="CPU seconds of this process (default) or wall seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--baseline", help="another trace.py to time interleaved with this one")
    parser.add_argument("--baseline-saved", help="the saved.py that --baseline imports (default: ours)")
    args = parser.parse_args(argv)
    if args.baseline:
        BASELINE.append(load_baseline(args.baseline, args.baseline_saved))
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"trace of one GPT training step, every module recorded; median of {args.repeat}, "
          f"{args.clock} ms, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}")
    base_head = f" | {'base':>7} {'t/base':>6}" if BASELINE else ""
    print(f"{'nodes':>7} {'events':>7} | {'trace':>7} {'plain':>7} {'ratio':>6} | {'inspect':>7}{base_head}")
    rows = []
    for size in sizes:
        r = row(size, args.repeat)
        rows.append(r)
        print(f"{r['nodes']:>7,} {r['events']:>7,} | {1000 * r['trace']:7.0f} {1000 * r['plain']:7.0f} "
              f"{r['trace'] / r['plain']:6.1f} | {1000 * r['inspect']:7.0f}"
              + (f" | {1000 * r['base']:7.0f} {r['ratio']:6.2f}" if BASELINE else ""), flush=True)
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        growth = (b["trace"] / a["trace"]) / (b["nodes"] / a["nodes"])
        print(f"growth: {b['trace'] / a['trace']:.2f}x the time for {b['nodes'] / a['nodes']:.2f}x the nodes "
              f"({growth:.2f} of linear)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
