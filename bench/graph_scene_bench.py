"""Benchmark of the graph canvas: scene build, player step and paint times for graphs of 10 to 3,000 nodes.

Run: ``.venv/bin/python bench/graph_scene_bench.py [--repeat N]``. Uses the graphs of
``bench/graph_bench.py`` (chains, an MLP, GPT training steps), every module expanded so each traced node
is a card. Prints medians in milliseconds:

- trace: ``explorer.core.autograd.trace.trace``; layout: ``layered_layout`` alone;
- scene: ``GraphScene.set_trace`` (display model, layout, cards and edges);
- total: trace + scene, the time from a callable to a drawn graph (goal: < 1,000 ms at 3,000 nodes);
- step: ``GraphView.set_step`` to a random step (the player's frame work; 50 fps needs < 20 ms);
- paint fit / paint 1:1: one full repaint of a 1200x700 view fitted to the graph / at 100% zoom.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from PySide6.QtWidgets import QApplication  # noqa: E402

from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.core.graph.layout import layered_layout  # noqa: E402
from explorer.ui.graph.view import GraphView  # noqa: E402


def _ms(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):.1f}"


def measure(app, name: str, fn, repeat: int) -> dict:
    """Median timings for one graph."""
    from graph_bench import all_expanded

    trace(fn, max_snapshot_elems=64)  # warm-up
    t_trace, t_layout, t_scene, t_step, t_fit, t_one = [], [], [], [], [], []
    view = GraphView()
    view.resize(1200, 700)
    view.show()
    app.processEvents()
    rng = random.Random(0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        tr = trace(fn)
        t_trace.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        layered_layout(tr.graph)
        t_layout.append(time.perf_counter() - t0)
        view.graph_scene.expanded = set(all_expanded(tr))
        t0 = time.perf_counter()
        view.set_trace(tr)
        t_scene.append(time.perf_counter() - t0)
        for _ in range(20):
            k = rng.randrange(view.step_count + 1)
            t0 = time.perf_counter()
            view.set_step(k)
            t_step.append(time.perf_counter() - t0)
        view.fit()
        t0 = time.perf_counter()
        view.viewport().repaint()
        t_fit.append(time.perf_counter() - t0)
        view.resetTransform()
        view._auto_fit = False
        t0 = time.perf_counter()
        view.viewport().repaint()
        t_one.append(time.perf_counter() - t0)
    nodes = len(tr.nodes)
    total = [a + b for a, b in zip(t_trace, t_scene, strict=True)]
    view.close()
    return {"graph": name, "nodes": nodes, "cards": len(view.graph_scene.cards), "trace": _ms(t_trace),
            "layout": _ms(t_layout), "scene": _ms(t_scene), "total": _ms(total), "step": _ms(t_step),
            "paint fit": _ms(t_fit), "paint 1:1": _ms(t_one)}


def main(argv=None) -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="run only graphs whose name contains this text")
    args = ap.parse_args(argv)
    from graph_bench import cases

    app = QApplication.instance() or QApplication([])
    cols = ["graph", "nodes", "cards", "trace", "layout", "scene", "total", "step", "paint fit", "paint 1:1"]
    print(f"{os.cpu_count()} cpus, Qt platform {QApplication.platformName()}; median of {args.repeat}, ms")
    print(" | ".join(f"{c:>10}" for c in cols))
    for name, fn in cases():
        if args.only not in name:
            continue
        row = measure(app, name, fn, args.repeat)
        print(" | ".join(f"{row[c]!s:>10}" for c in cols), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
