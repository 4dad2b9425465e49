"""Does the GUI thread freeze? The lateness of a 10 ms timer during each user action, against idle.

One process, one main window (temporary settings and data folder). A QTimer of 10 ms runs on the GUI
thread the whole time; each tick notes how late it fired (interval - 10 ms). Per action the window of
ticks from the action's start until the app has been quiet again is kept, and the bench prints the
worst and the p99 lateness of that window beside the same figures for an idle stretch measured in the
same run (the machine's own noise). The goal (issue 20): no action's worst lateness over 100 ms.

Actions: switching the theme (the View menu's action: both ways; before and after every workspace is
built), switching workspaces (first visit: the panel is built; then a visit to a built one), opening a
lesson step (Learn panel), and the end of a short pretraining run (tiny model, a few steps).

    python bench/freeze_bench.py [--rounds 2] [--settle 1.5] [--no-train] [--preimport] [--theme-only] [--cpu]

`--cpu` adds the GUI thread's CPU time of the longest single event it handled in each action's window
(a timer's turn, a posted event, a repaint; `time.thread_time`): on a shared machine the wall-clock
lateness mostly measures how long the thread waited for a core, while this column is what the app itself
spent, nearly independent of the load (the lateness is still what a user would feel).

Offscreen unless DISPLAY is set (then a real X window: e.g. `Xvfb :1 & DISPLAY=:1 python ...`).
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
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# a pretraining run small enough to end in a few seconds (its end is what is measured)
TINY_RUN = {"context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
            "batch_size": 4, "steps": 30, "warmup_steps": 2, "eval_every": 10, "sample_every": 15,
            "lr": 0.001, "sample_tokens": 30, "eval_batches": 2}


class Pinger:
    """A 10 ms QTimer on the GUI thread: (time, lateness in ms) of every tick."""

    def __init__(self, interval_ms: int = 10):
        from PySide6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000.0
        self.ticks: list[tuple[float, float]] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append((now, max(0.0, (now - self._last - self.interval) * 1000.0)))
        self._last = now

    def since(self, start: float) -> list[float]:
        """Lateness (ms) of the ticks after `start` (the first tick after it carries any stall)."""
        return [late for t, late in self.ticks if t > start]


def timed_application(argv: list[str]):
    """A QApplication that notes the thread CPU time of every event it handles at the top level."""
    from PySide6.QtWidgets import QApplication

    class Timed(QApplication):
        def __init__(self, args) -> None:
            super().__init__(args)
            self.turns: list[tuple[float, float]] = []  # (end time, CPU ms) of each top-level event
            self._depth = 0

        def notify(self, receiver, event):  # noqa: D102 - Qt's
            if self._depth:
                return super().notify(receiver, event)
            self._depth = 1
            start = time.thread_time()
            try:
                return super().notify(receiver, event)
            finally:
                self._depth = 0
                self.turns.append((time.perf_counter(), (time.thread_time() - start) * 1000.0))

    return Timed(argv)


def spin(seconds: float) -> None:
    """Run the event loop for `seconds`."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def spin_until(predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        spin(0.02)
    return predicate()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] if ordered else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="how often each action is repeated")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds measured after each action")
    ap.add_argument("--no-train", action="store_true", help="leave out the end of a pretraining run")
    ap.add_argument("--preimport", action="store_true",
                    help="import every workspace's core modules (torch's) before the window: a first visit "
                         "then measures building the panel only, not the import's stalls")
    ap.add_argument("--theme-only", action="store_true",
                    help="only the idle baseline and the theme switches (the panels are built unmeasured)")
    ap.add_argument("--cpu", action="store_true",
                    help="also print the GUI thread's CPU time of the longest event in each action's window")
    args = ap.parse_args(argv)

    scratch = tempfile.mkdtemp(prefix="freeze-bench-")
    os.environ["AUTOGRAD_EXPLORER_DATA"] = scratch
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer.ui.common import theme as themes
    from explorer.ui.main_window import MainWindow

    app = QApplication.instance() or (timed_application([]) if args.cpu else QApplication([]))
    cpu = args.cpu and hasattr(app, "turns")
    if args.preimport:
        import importlib

        from explorer.ui.main_window import CORE_MODULES

        for names in CORE_MODULES.values():
            for name in names:
                importlib.import_module(name)
    window = MainWindow(settings=QSettings(str(Path(scratch) / "settings.ini"), QSettings.IniFormat))
    themes.apply_theme(app, window.theme_name)
    window.show()
    pinger = Pinger()
    spin_until(lambda: "expression" in window.panels, 300)
    expression = window.panels["expression"]
    spin_until(lambda: getattr(expression, "result", None) is not None, 120)
    spin(2.0)  # let start-up work (preloads, the first layout) finish

    results: dict[str, list[list[float]]] = {}
    cpu_worst: dict[str, list[float]] = {}

    def measure(name: str, action, done=lambda: True, timeout: float = 120.0) -> None:
        start = time.perf_counter()
        action()
        spin_until(done, timeout)
        spin(args.settle)
        results.setdefault(name, []).append(pinger.since(start))
        if cpu:
            cpu_worst.setdefault(name, []).append(max((ms for t, ms in app.turns if t > start), default=0.0))

    def theme(name: str):  # the user's path: the View menu's action (a staged switch where there is one)
        from PySide6.QtGui import QAction

        from explorer.ui.common import actions

        wanted = f"app.theme_{name}"
        found = [a for a in window.findChildren(QAction) if a.property(actions.ACTION_ID) == wanted]
        return found[0].trigger

    for _ in range(args.rounds):
        measure("idle (baseline)", lambda: None)
        measure("theme: light -> dark", theme("dark"))
        measure("theme: dark -> light", theme("light"))

    def visit(key: str):
        return lambda: window.show_workspace(key)

    if args.theme_only:  # visited as a user would, unmeasured
        for key in ("network", "pretrain"):
            window.show_workspace(key)
            spin_until(lambda key=key: key in window.panels, 300)
            spin(args.settle)
    else:
        measure("workspace: Network, first visit", visit("network"), lambda: "network" in window.panels)
        measure("workspace: Pretraining, first visit", visit("pretrain"), lambda: "pretrain" in window.panels)
        for _ in range(args.rounds):
            measure("workspace: Expression (built)", visit("expression"))
            measure("workspace: Network (built)", visit("network"))
    window.show_workspace("expression")
    spin(args.settle)
    for _ in range(args.rounds):  # the switch the user timed at 1.19 s: every workspace built
        measure("theme: light -> dark (all built)", theme("dark"))
        measure("theme: dark -> light (all built)", theme("light"))

    learn = window.learn
    window.toggle_learn() if learn.isHidden() else None
    learn.ensure_built()
    for _ in range(0 if args.theme_only else args.rounds):
        for lesson, step in ((0, 0), (1, 1), (2, 2), (3, 0)):
            measure(f"lesson step {lesson + 1}.{step + 1}", lambda lesson=lesson, step=step:
                    learn.open_step(lesson, step), lambda: not getattr(learn, "is_opening", bool)())

    if not args.no_train and not args.theme_only:
        window.show_workspace("pretrain")
        panel = window.panels["pretrain"]
        for _ in range(args.rounds):
            panel.form.set_values(dict(TINY_RUN))
            spin(0.5)
            finished: list[int] = []
            panel.sig_run_finished.connect(lambda run_id, _status, into=finished: into.append(run_id))
            if not panel.train():
                print("the pretraining run did not start:", panel.train_disabled_reason())
                break
            spin_until(lambda: panel.is_training(), 120)
            # from the last progress on: the window in which the run ends and its results are shown
            spin_until(lambda: not panel.is_training() or _steps_left(panel) <= 3, 300)
            measure("end of a pretraining run", lambda: None, lambda into=finished: bool(into), 300)
            panel.sig_run_finished.disconnect()

    platform = QApplication.platformName()
    print(f"platform {platform}, {args.rounds} rounds, {args.settle:.1f} s after each action; lateness of a "
          "10 ms timer in ms")
    head = f"{'action':38s} {'worst':>8s} {'p99':>8s} {'ticks':>6s}"
    print(head + ("  CPU ms of the longest event, per round" if cpu else ""))
    for name, windows in results.items():
        worst = max(max(w, default=0.0) for w in windows)
        ticks = [late for w in windows for late in w]
        rounds = " ".join(f"{ms:.0f}" for ms in cpu_worst.get(name, []))
        print(f"{name:38s} {worst:8.1f} {p99(ticks):8.1f} {len(ticks):6d}" + (f"  {rounds}" if cpu else ""))
    idle = [late for w in results["idle (baseline)"] for late in w]
    print(f"idle median lateness {statistics.median(idle):.1f} ms; goal: every action's worst < 100 ms "
          "(compare with the idle worst: the machine's own noise)")
    window.shutdown_panels()
    window.close()
    return 0


def _steps_left(panel) -> int:
    run = next((r for r in reversed(panel.runs()) if r.status == "running"), None)
    steps = run.steps.get("step") if run is not None else None
    if steps is None or not len(steps):
        return 10**9
    return int(run.settings.get("steps") or 0) - int(steps.view()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
