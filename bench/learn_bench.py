"""Benchmark of the Learn panel: how long the GUI thread is busy when the student opens each lesson step.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/learn_bench.py [--repeat N]``. For every step of
every lesson it times `LearnPanel.open_step` (the step's action through the models and the workspace views
that follow them, the Markdown, the exercise widgets, the step's figure) and, as the baseline measured in
the same process, the lessons core alone (`run_step` on models of its own, through the same sequence of
steps). One warm-up pass over all steps comes first (torch's first optimizer and the workspaces' first
computations are paid there). Prints medians in ms; the difference is what the views and the panel add.
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
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["AUTOGRAD_EXPLORER_DATA"] = tempfile.mkdtemp(prefix="learn-bench-")  # no ticks of the user's


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer.core.lessons import run_step
    from explorer.ui.main_window import MainWindow

    app = QApplication([sys.argv[0]])
    window = MainWindow(settings=QSettings(os.path.join(os.environ["AUTOGRAD_EXPLORER_DATA"], "s.ini"),
                                           QSettings.IniFormat), persist=False)
    window.resize(1600, 900)
    window.show()
    app.processEvents()
    dock = window.learn
    dock.show()
    dock.ensure_built()
    steps = [(i, j, f"{lesson.id}/{step.id}") for i, lesson in enumerate(dock.catalog.lessons)
             for j, step in enumerate(lesson.steps)]
    for i, j, _name in steps:  # warm-up: first imports, first computations, panels built
        dock.open_step(i, j)
        dock.wait_opened()
        for _ in range(3):
            app.processEvents()
    core: dict[str, list[float]] = {name: [] for *_ij, name in steps}
    panel: dict[str, list[float]] = {name: [] for *_ij, name in steps}
    from explorer.core.workspaces.session import Workspaces

    headless = Workspaces()  # the baseline's own models: both passes see the same sequence of states
    for _i, _j, _name in steps:
        run_step(dock.catalog.lessons[_i].steps[_j], headless)
    for _ in range(args.repeat):
        for i, j, name in steps:
            t = time.perf_counter()
            run_step(dock.catalog.lessons[i].steps[j], headless)
            core[name].append((time.perf_counter() - t) * 1000)
        for i, j, name in steps:
            t = time.perf_counter()
            dock.open_step(i, j)
            dock.wait_opened()  # an expression step traces on the Worker first: until it is shown
            panel[name].append((time.perf_counter() - t) * 1000)
            app.processEvents()
    print(f"{'step':44} {'core run_step':>14} {'open_step':>10} {'panel adds':>11}   (median ms)")
    for *_ij, name in steps:
        c, p = statistics.median(core[name]), statistics.median(panel[name])
        print(f"{name:44} {c:14.1f} {p:10.1f} {p - c:11.1f}")
    worst = max(steps, key=lambda s: statistics.median(panel[s[2]]))[2]
    total_c = sum(statistics.median(v) for v in core.values())
    total_p = sum(statistics.median(v) for v in panel.values())
    print(f"all {len(steps)} steps: core {total_c:.0f} ms, open_step {total_p:.0f} ms; slowest step {worst} "
          f"({statistics.median(panel[worst]):.0f} ms)")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
