"""Benchmark of a first visit of another workspace some seconds after a first launch.

Run: ``.venv/bin/python bench/visit_bench.py [--repeat N] [--idle S] [--to network|pretrain]`` in a real
window system (``DISPLAY=:N``). Each launch is a fresh process (a config folder of its own: a first
launch on Expression) that shows the window as the app does (with the app's start-up preloading, where
the tree has one), waits until the Expression panel shows its first result and then ``--idle`` seconds
more (a user reading the graph; the window may import the other workspaces meanwhile), then switches to
the workspace ``--to`` with a 10 ms timer pinging the event loop.

Prints the medians of: "visit", the switch to that panel built (its modules imported and built in slices),
and "worst late", the worst delay of a ping meanwhile (how long the window could not answer at a stretch:
goal < 100 ms). It uses only the window's public API, so the same script times any tree put first on
PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication
from explorer.ui import app as app_module
from explorer.ui import main_window as mw
from explorer.ui.common import theme

idle_s, target = float(sys.argv[2]), sys.argv[3]
app = QApplication([])
window = mw.MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat))
theme.apply_theme(app, window.theme_name)
if hasattr(app_module, "_preload_heavy_modules"):  # the app's own start-up work, where the tree has it
    window.sig_first_painted.connect(app_module._preload_heavy_modules)
ping = QTimer(window)
ping.setTimerType(Qt.PreciseTimer)
ping.setInterval(10)
last, worst, switched = [0.0], [0.0], [0.0]

def pinged():
    now = time.perf_counter()
    worst[0] = max(worst[0], now - last[0] - 0.010)
    last[0] = now

ping.timeout.connect(pinged)

def visit():
    last[0] = switched[0] = time.perf_counter()
    ping.start()
    window.show_workspace(target)

def ready(key):
    if key == target:
        pinged()
        print(f"visit {time.perf_counter() - switched[0]:.4f}", flush=True)
        print(f"late {worst[0]:.4f}", flush=True)
        window.persist = False
        window.close()
        app.quit()

def wait_for_result():
    panel = window.panel("expression", create=False)
    if panel is None or panel.result is None:
        QTimer.singleShot(50, wait_for_result)
        return
    QTimer.singleShot(int(1000 * idle_s), visit)

window.sig_panel_ready.connect(ready)
window.sig_first_painted.connect(lambda: QTimer.singleShot(50, wait_for_result))
window.show()
app.exec()
"""


def main(argv=None) -> int:
    """Print the median visit time and worst lateness of `--repeat` launches."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=float, default=15.0)
    ap.add_argument("--to", choices=("network", "pretrain"), default="network")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    visits, lates = [], []
    with tempfile.TemporaryDirectory() as scratch:
        env["AUTOGRAD_EXPLORER_DATA"] = str(Path(scratch) / "data")
        for i in range(args.repeat + 1):  # the first launch warms the file cache
            ini = str(Path(scratch) / f"first{i}" / "settings.ini")
            out = subprocess.run([sys.executable, "-c", CHILD, ini, str(args.idle), args.to], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=600)
            times = dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)
            if "visit" not in times:
                raise RuntimeError(f"no visit: {out.stderr[-800:]}")
            if i:
                visits.append(float(times["visit"]))
                lates.append(float(times["late"]))
            time.sleep(0.5)
    visit, late = 1000 * statistics.median(visits), 1000 * statistics.median(lates)
    each = ", ".join(f"{1000 * v:.0f}" for v in lates)
    print(f"first visit of {args.to}, {args.idle:.0f} s after the first result, median of {args.repeat}: "
          f"visit {visit:.0f} ms, worst late {late:.0f} ms (each launch's worst late: {each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
