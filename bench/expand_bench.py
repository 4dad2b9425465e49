"""Expanding one module of a ~10,000-node graph, against a baseline checkout in the same run.

Each checkout (this one and, with ``--base DIR``, another one: say an exported earlier commit) runs in a
long-lived process of its own that traces the bench's GPT training step once (``--blocks``; 285 gives
~10,000 nodes), shows every module expanded but one block on a lazy canvas showing that block's
neighbourhood (as a view at 100 % does), and, when asked, expands the block (``GraphScene.toggle_module``,
CPU ms). The processes are asked in turn (ABAB, then BABA), one block after another, so both see the same
load; the medians and their ratio are printed. Slow: each process builds the 10,000-node scene first.

    PYTHONPATH=. python bench/expand_bench.py --base ../base-checkout --rounds 8
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time


def worker(blocks: int) -> None:
    """Build the scene, then expand block `i` for each number `i` read from stdin; print its CPU ms."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import graph_bench as gb
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QApplication

    from explorer.core.autograd.trace import trace
    from explorer.ui.graph.view import GraphScene

    _app = QApplication.instance() or QApplication([])
    tr = trace(gb.gpt_step_fn(blocks), max_snapshot_elems=64)
    every = gb.all_expanded(tr)
    scene = GraphScene()
    scene.lazy, scene.aspect = True, 1000 / 700
    scene.expanded = set(every)
    scene.set_trace(tr)
    print(f"ready {len(tr.nodes)}", flush=True)
    for line in sys.stdin:
        block = f"blocks.{int(line)}"
        scene.expanded = {p for p in every if p != block and not p.startswith(block + ".")}
        step = scene.step
        scene._rebuild(reuse=True)  # noqa: SLF001 (the bench sets the expanded modules up directly)
        scene.set_step(step)
        card = next(d for d, info in scene.model.info.items() if info.get("path") == block)
        x, y = scene.model.positions[card]
        scene.show_region(QRectF(x - 500, y - 350, 1000, 700))
        gc.collect()
        t0 = time.process_time()
        scene.toggle_module(card)
        spent = time.process_time() - t0
        scene.show_region(QRectF(x - 500, y - 350, 1000, 700))
        print(f"{1000 * spent:.1f} {len(scene.model.info)}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a baseline checkout's root, run in turn with this one")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--blocks", type=int, default=285)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.blocks)
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"this": here} | ({"base": os.path.abspath(args.base)} if args.base else {})
    procs = {}
    for name, root in roots.items():
        env = {**os.environ, "PYTHONPATH": root}
        command = [sys.executable, os.path.abspath(__file__), "--worker", "--blocks", str(args.blocks)]
        procs[name] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env=env, cwd=root)
    for name, proc in procs.items():
        print(f"{name}: {proc.stdout.readline().split()[1]} nodes traced", flush=True)
    spent: dict[str, list[float]] = {name: [] for name in roots}
    cards = 0
    for r in range(args.rounds):
        order = list(roots) if r % 2 == 0 else list(roots)[::-1]
        for name in order:
            procs[name].stdin.write(f"{args.blocks // 2 + r}\n")
            procs[name].stdin.flush()
            ms, cards = procs[name].stdout.readline().split()
            spent[name].append(float(ms))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"expanding one block of {int(cards):,} cards, every other module expanded, CPU ms "
          f"(median of {args.rounds}; goal <= 100):")
    for name, samples in spent.items():
        print(f"  {name}: {statistics.median(samples):.0f} ({', '.join(f'{s:.0f}' for s in samples)})")
    if "base" in spent:
        ratio = statistics.median(spent["this"]) / statistics.median(spent["base"])
        print(f"  ratio this / base: {ratio:.2f}")


if __name__ == "__main__":
    main()
