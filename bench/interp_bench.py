"""Benchmark of the PyTorch-language interpreter against CPython on the corpus (issue 19 §6).

Run: ``.venv/bin/python bench/interp_bench.py [--repeat N] [-k NAME]``. For each snippet of
``tests/corpus/`` it times, in this one process, after a warm-up run of each:

- CPython running the same trusted file (``runpy.run_path``, the project's own test files: the app never
  runs a program this way): the baseline, measured in the same run;
- the interpreter without tracing: ``parse(source).run()``;
- the interpreter with tracing: ``compute(source)`` (parse, run, trace forward and backward).

Prints the median of N runs per snippet and the ratios to CPython, then over all snippets that both ran:
the geometric mean of the ratios and the ratio of the total times. Goal: the interpreter without tracing
at most 3x CPython. Printed output of the programs is discarded on both sides. The micrograd snippets'
baseline is micrograd itself (pure-Python floats, no torch), while the app backs each Value with a torch
scalar, so their ratios are printed apart from the torch snippets' too. A snippet the interpreter
refuses is listed with its error and left out of the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import runpy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core.lang.program import ExprError, parse  # noqa: E402
from explorer.core.workspaces.expression import compute  # noqa: E402
from tests.corpus_reference import extend_micrograd  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"
GOAL = 3.0  # the interpreter without tracing, against CPython


def median_ms(fn, repeat: int) -> float:
    """Median wall time of fn() in milliseconds after one warm-up call; printed output is discarded."""
    with contextlib.redirect_stdout(io.StringIO()):
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def cpython(path: Path):
    return lambda: runpy.run_path(str(path), run_name="__main__")


def interpreted(source: str):
    return lambda: parse(source).run()


def traced(source: str):
    def fn():
        r = compute(source)
        if r.error:
            raise ExprError(r.error)

    return fn


def first_error(fn) -> str | None:
    """None when fn() runs; else its one-line error (an ExprError, or anything else, marked as foreign)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
    except ExprError as exc:
        return str(exc).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 -- a bench reports, it does not stop
        return f"FOREIGN {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per snippet and way (median)")
    ap.add_argument("-k", default="", help="only the snippets whose name contains this")
    args = ap.parse_args()
    paths = [p for p in sorted(CORPUS.glob("*.py")) if args.k in p.stem]
    extend_micrograd()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(paths)} snippets, "
          f"median of {args.repeat} runs after a warm-up; ratios against CPython running the same file")
    print(f"\n{'snippet':30s}{'CPython':>10s}{'run':>10s}{'ratio':>8s}{'compute':>11s}{'ratio':>8s}")
    rows, refused = [], []
    for path in paths:
        source = path.read_text()
        base = median_ms(cpython(path), args.repeat)
        error = first_error(interpreted(source))
        if error:
            refused.append((path.stem, "run", error))
            print(f"{path.stem:30s}{base:8.2f}ms   refused: {error[:70]}")
            continue
        run = median_ms(interpreted(source), args.repeat)
        error = first_error(traced(source))
        if error:
            refused.append((path.stem, "compute", error))
            comp = float("nan")
        else:
            try:
                comp = median_ms(traced(source), args.repeat)
            except ExprError as exc:  # a repeat can cross the wall-time limit on a busy machine
                refused.append((path.stem, "compute", str(exc)))
                comp = float("nan")
        rows.append((path.stem, base, run, comp))
        print(f"{path.stem:30s}{base:8.2f}ms{run:8.2f}ms{run / base:7.2f}x{comp:9.2f}ms{comp / base:7.2f}x")

    print(f"\n{len(rows)} of {len(paths)} snippets ran in the interpreter")
    if rows:
        run_ratios = [r / b for _, b, r, _ in rows]
        comp_rows = [(b, c) for _, b, _, c in rows if not math.isnan(c)]
        total_b = sum(b for _, b, _, _ in rows)
        total_r = sum(r for _, _, r, _ in rows)
        print(f"without tracing (parse + run): geometric mean {geomean(run_ratios):.2f}x CPython, "
              f"total {total_r:.1f} ms against {total_b:.1f} ms = {total_r / total_b:.2f}x, "
              f"worst {max(run_ratios):.2f}x ({rows[run_ratios.index(max(run_ratios))][0]})")
        if comp_rows:
            comp_ratios = [c / b for b, c in comp_rows]
            total_cb, total_c = sum(b for b, _ in comp_rows), sum(c for _, c in comp_rows)
            print(f"with tracing (compute):        geometric mean {geomean(comp_ratios):.2f}x CPython, "
                  f"total {total_c:.1f} ms against {total_cb:.1f} ms = {total_c / total_cb:.2f}x")
        for label, keep in (("torch snippets", False), ("micrograd snippets", True)):
            part = [x for (name, *_), x in zip(rows, run_ratios, strict=True)
                    if name.startswith("micrograd") == keep]
            if part:
                print(f"  {label:28s} geometric mean {geomean(part):.2f}x CPython ({len(part)} snippets)")
        met = geomean(run_ratios) <= GOAL
        print(f"goal: at most {GOAL:g}x CPython without tracing (geometric mean): "
              f"{'met' if met else 'NOT met'}; snippets over it: "
              f"{sum(x > GOAL for x in run_ratios)} of {len(run_ratios)}")
    else:
        print(f"goal: at most {GOAL:g}x CPython without tracing: not measurable, no snippet ran")
    for name, way, error in refused:
        print(f"refused ({way}): {name}: {error}")


if __name__ == "__main__":
    main()
