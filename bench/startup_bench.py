"""Benchmark of start-up and quit: launch to first paint, the app against a bare PySide6 window.

Run: ``.venv/bin/python bench/startup_bench.py [--repeat N]`` in a real window system (an X display:
``DISPLAY=:N``; without one it falls back to Qt's offscreen platform, whose figures flatter the app).
Every launch is a fresh process, the cases in turn, in the same run:

- a bare QMainWindow (the baseline), its first paint timed as the app's: the event-loop turn after its
  first paintEvent, when the frame is on screen;
- the app on a first launch (a config folder of its own each time: no saved settings, the Expression
  workspace, the Learn dock offering the lessons);
- the app on a returning user's launch whose saved session names the Expression workspace with a
  program of theirs, one whose saved session names the Network workspace, and one whose saved session names
  the Pretraining workspace with a form of theirs (a custom model; each a QSettings ini in a
  temporary config folder, kept between its launches, so from the second launch on it also holds the
  picture the window grabbed at the last close).

A warm-up launch of each case comes first (file cache, bytecode). The bench drops PYTHONDONTWRITEBYTECODE
(an installed app runs from cached bytecode) and points AUTOGRAD_EXPLORER_DATA at a scratch folder.

Each app launch runs with ``EXPLORER_STARTUP_PROBE=close``; the app prints when:

- "shown": the window's first paint (menus, tabs, the workspace's "Loading…" line), the time the frame
  was on screen (`MainWindow.first_painted_at`), before the slots of `sig_first_painted` run;
- "preview": a returning user's workspace is on screen as it was left: the picture grabbed at the
  last close, under a line saying it turns live once PyTorch has loaded. It is honestly *seen*, not
  *usable*: the numbers and the graph can be read, nothing can be clicked or edited;
- "ready": the visible workspace's panel is built and installed in its tab: its editor, forms and menus
  take input (a trace or training it starts may still be running on its worker). This is what "usable"
  means here. Every panel is built before torch is imported (the graph's place, the network's tabs, the
  pretraining's training and inspection tabs beside its form, say "Loading PyTorch…" until the first
  result);
- "late": the worst delay of a 10 ms timer between "shown" and "ready" (how long the window could not
  answer at a stretch while the panel was built);
- "computed": for a panel built before torch, its first result on screen (the graph drawn; for
  Pretraining, its training tab built: Train can be pressed and the runs are listed), with
  "late-computed", the worst delay of the timer from "ready" to then (what typing meanwhile would feel:
  torch's import holds the GIL in stretches);
- "closing": the probe closes the window 300 ms after "computed" if there is one, else after "ready"
  (the bench notes when the process ended).

With "shown" each process prints "shown-cpu", its CPU time at the first paint (time.process_time): the
column "cpu to paint" is steadier than the wall clock on a shared, loaded machine (the goal is the wall
clock's ratio; the CPU ratio says whether a change helped when the load drowns it).

Prints the medians: first paint against the bare window (goal: at most 1.5x), preview and ready after
launch and ready minus first paint (goal: 1 s), the worst lateness (goal: < 100 ms), computed minus first
paint and its lateness, and close to process end (goal: < 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow


class Window(QMainWindow):
    painted = False

    def paintEvent(self, event):  # the app's definition of its first paint: the turn after its paintEvent
        super().paintEvent(event)
        if not self.painted:
            self.painted = True
            QTimer.singleShot(0, lambda: (print(f"shown {time.time():.6f}", flush=True),
                                          print(f"shown-cpu {time.process_time():.6f}", flush=True),
                                          app.quit()))


app = QApplication([])
w = Window()
w.resize(1440, 860)
w.show()
app.exec()
"""


def launch(cmd: list[str], env: dict) -> dict[str, float]:
    """Seconds from process start to each '<event> <time>' line it printed, and to its end ('end')."""
    start = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    ended = time.time()
    times = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("shown", "preview", "ready", "computed", "closing"):
            times[parts[0]] = float(parts[1]) - start
        elif len(parts) == 2 and parts[0] in ("late", "late-computed"):  # worst event-loop delay, ms
            times[parts[0]] = float(parts[1]) / 1000
        elif len(parts) == 2 and parts[0] == "shown-cpu":  # the process's CPU seconds at the first paint
            times[parts[0]] = float(parts[1])
    if "shown" not in times:
        raise RuntimeError(f"{cmd} printed no 'shown' line: {out.stderr[-500:]}")
    times["end"] = ended - start
    return times


RETURNING_PROGRAM = "x = 1.1\nw = param(0.4)\nb = param(-0.2)\nz = w * x + b\nL = (tanh(z) - 0.5) ** 2\n"


# a returning user's pretraining form: the tiny model made wider and deeper (preset "custom")
RETURNING_PRETRAIN = {"state": {"preset": "custom", "config": {
    "vocab_size": 128, "context_length": 64, "emb_dim": 192, "n_heads": 6, "n_layers": 6, "drop_rate": 0.0}}}


def restored_config(folder: Path, current: str) -> Path:
    """A config folder whose saved session (the app's QSettings ini) names workspace `current` (once: the
    app's own close then saves the session and the picture of its last look there)."""
    from PySide6.QtCore import QSettings

    path = folder / "AutogradExplorer" / "autograd-explorer.ini"
    if path.is_file():
        return folder
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(path), QSettings.IniFormat)
    parts = {"expression": {"source": RETURNING_PROGRAM}, "pretrain": RETURNING_PRETRAIN}
    parts = {current: parts[current]} if current in parts else {}
    settings.setValue("session", json.dumps({"format": "autograd-explorer-session", "version": 2,
                                             "current": current, "workspaces": parts}))
    settings.sync()
    return folder


def main(argv=None) -> int:
    """Print the median times of each case and the ratios to the bare window."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", metavar="WORDS", default="",
                    help="run only the cases whose name holds one of these comma-separated words (e.g. "
                         "'network'); the bare window always runs")
    args = ap.parse_args(argv)
    base = dict(os.environ)
    if not base.get("DISPLAY") and not base.get("WAYLAND_DISPLAY"):
        base.setdefault("QT_QPA_PLATFORM", "offscreen")
    # an installed app runs from cached bytecode: a shell that forbids writing it would time the compiler
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"  # runs and progress: never the user's
        second_dir = Path(scratch) / "returning"
        expression_dir = Path(scratch) / "returning-expression"
        pretrain_dir = Path(scratch) / "returning-pretraining"
        base["AUTOGRAD_EXPLORER_DATA"] = str(data_dir)
        app_env = dict(base, EXPLORER_STARTUP_PROBE="close")
        fresh = iter(range(10**6))

        def first_launch_env() -> dict:  # a config folder of its own each time: really a first launch
            return dict(app_env, XDG_CONFIG_HOME=str(Path(scratch) / f"first{next(fresh)}"))

        cases = {
            "bare PySide6 window": ([sys.executable, "-c", BARE], lambda: base),
            "app, first launch (Expression)": ([sys.executable, "main.py"], first_launch_env),
            "app, restored Expression session": (
                [sys.executable, "main.py"],
                lambda: dict(app_env, XDG_CONFIG_HOME=str(restored_config(expression_dir, "expression")))),
            "app, restored Network session": (
                [sys.executable, "main.py"],
                lambda: dict(app_env, XDG_CONFIG_HOME=str(restored_config(second_dir, "network")))),
            "app, restored Pretraining session": (
                [sys.executable, "main.py"],
                lambda: dict(app_env, XDG_CONFIG_HOME=str(restored_config(pretrain_dir, "pretrain")))),
        }
        words = [w.strip().lower() for w in args.only.split(",") if w.strip()]
        if words:
            cases = {name: case for name, case in cases.items()
                     if name.startswith("bare") or any(w in name.lower() for w in words)}
        for cmd, env in cases.values():  # warm the file cache (and write the bytecode) before measuring
            launch(cmd, env())
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, (cmd, env) in cases.items():
                runs[name].append(launch(cmd, env()))

    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in runs[name] if key in r]
        return statistics.median(values) if values else None

    bare = median("bare PySide6 window", "shown")
    bare_cpu = median("bare PySide6 window", "shown-cpu")
    print(f"platform {base.get('QT_QPA_PLATFORM', 'default')}, median of {args.repeat} launches each")
    def ms(value: float | None) -> str:
        return f"{1000 * value:9.0f} ms" if value is not None else f"{'-':>12s}"

    def after_paint(name: str, key: str) -> float | None:
        values = [r[key] - r["shown"] for r in runs[name] if key in r]
        return statistics.median(values) if values else None

    print(f"{'case':34s} {'first paint':>12s} {'vs bare':>8s} {'preview':>12s} {'panel ready':>12s} "
          f"{'ready-paint':>12s} {'worst late':>12s} {'computed-paint':>14s} {'late->computed':>14s} "
          f"{'close->exit':>12s} {'cpu to paint':>12s} {'vs bare':>8s}")
    for name in cases:
        shown, ready = median(name, "shown"), median(name, "ready")
        exits = [r["end"] - r["closing"] for r in runs[name] if "closing" in r]
        cpu = median(name, "shown-cpu")
        print(f"{name:34s} {ms(shown)} {shown / bare:7.2f}x {ms(median(name, 'preview'))} {ms(ready)} "
              f"{ms(after_paint(name, 'ready'))} {ms(median(name, 'late'))} "
              f"  {ms(after_paint(name, 'computed'))}   {ms(median(name, 'late-computed'))} "
              f"{ms(statistics.median(exits) if exits else None)} {ms(cpu)} "
              f"{f'{cpu / bare_cpu:7.2f}x' if cpu and bare_cpu else '-':>8s}")
    print("goals: first paint <= 1.5x the bare window; ready (or preview, see the docstring) <= 1000 ms "
          "after the paint; worst late < 100 ms; close->exit < 1000 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
