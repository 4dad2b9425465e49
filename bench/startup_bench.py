"""Benchmark of start-up: launch to window shown, the app against a bare QApplication window.

Run: ``.venv/bin/python bench/startup_bench.py [--repeat N]``. Both are launched as fresh processes, in
turn, in the same run; each prints the wall-clock time once its window is shown (the app through
``EXPLORER_STARTUP_PROBE=1``) and quits. Prints the median launch-to-shown times and their ratio
(goal: at most 1.5x, which needs torch and networkx to load only after the window is up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow()
w.resize(1440, 860)
w.show()
QTimer.singleShot(0, lambda: (print(f"shown {time.time():.6f}", flush=True), app.quit()))
app.exec()
"""


def launch(cmd: list[str], env: dict) -> float:
    """Seconds from process start to its 'shown <time>' line."""
    start = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("shown "):
            return float(line.split()[1]) - start
    raise RuntimeError(f"{cmd} printed no 'shown' line: {out.stderr[-500:]}")


def main(argv=None) -> int:
    """Print median launch-to-shown times and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    env = dict(os.environ, EXPLORER_STARTUP_PROBE="1")
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    app_cmd = [sys.executable, "main.py"]
    bare_cmd = [sys.executable, "-c", BARE]
    launch(bare_cmd, env)  # warm the file cache for both before measuring
    launch(app_cmd, env)
    bare, app = [], []
    for _ in range(args.repeat):
        bare.append(launch(bare_cmd, env))
        app.append(launch(app_cmd, env))
    b, a = statistics.median(bare), statistics.median(app)
    print(f"platform {env.get('QT_QPA_PLATFORM', 'default')}, median of {args.repeat} launches each")
    print(f"bare QApplication window: {1000 * b:7.1f} ms")
    print(f"Autograd Explorer window: {1000 * a:7.1f} ms")
    print(f"ratio: {a / b:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
