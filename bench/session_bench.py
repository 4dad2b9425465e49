"""How long opening a session with many pretraining runs takes in the window, and how it scales.

Issue 14 asks that a session with 1,000 runs load in under 2 s (it took 29 s, growing with the square of the
count through the plot legend). This builds sessions of N runs (each with a 50-point loss curve and an eval
curve), opens each in a MainWindow whose Pretraining panel is built and shown, and times `open_session`
until the panel has drawn: median of a few repeats. The baseline in the same run is the 100-run session:
a linear cost gives a 1,000/100 ratio near 10, a quadratic one near 100.

    python bench/session_bench.py [--runs 100 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def session_with_runs(n: int, folder: Path) -> Path:
    """A session file holding `n` finished pretraining runs (no checkpoints on disk)."""
    from explorer.core.gpt.model import GPTConfig
    from explorer.core.gpt.train import TrainSettings
    from explorer.core.workspaces.session import Workspaces

    os.environ["AUTOGRAD_EXPLORER_DATA"] = str(folder / "data")
    ws = Workspaces()
    pre = ws.pretrain
    config, settings = GPTConfig().to_dict(), TrainSettings().to_dict()
    for _ in range(n):
        run = pre.new_run(config, settings, None)
        records = [{"type": "step", "step": s, "tokens": s * 768, "train_loss": 4.0 - s / 50, "lr": 1e-3,
                    "tokens_per_s": 1e4} for s in range(1, 51)]
        records += [{"type": "eval", "step": 50, "train_loss": 3.1, "val_loss": 3.3}]
        pre.add_records(run.run_id, records)
        pre.finish_run(run.run_id, "done")
    data = ws.to_json()
    data["current"] = "pretrain"
    path = folder / f"session-{n}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def time_open(app, path: Path) -> float:
    """Seconds for open_session plus the repaint it causes, in a fresh window with the panel built."""
    from PySide6.QtCore import QSettings

    from explorer.ui.main_window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(settings=QSettings(str(Path(tmp) / "s.ini"), QSettings.IniFormat))
        window.resize(1600, 1000)
        window.show_workspace("pretrain")
        window.show()
        app.processEvents()
        start = time.perf_counter()
        ok = window.open_session(path)
        app.processEvents()
        window.repaint()
        app.processEvents()
        elapsed = time.perf_counter() - start
        assert ok, "the session was refused"
        window.close()
        window.deleteLater()
        app.processEvents()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.runs:
            path = session_with_runs(n, Path(tmp))
            times = [time_open(app, path) for _ in range(args.repeats)]
            medians[n] = statistics.median(times)
            size = path.stat().st_size / 1e6
            print(f"{n:5d} runs ({size:.1f} MB): open_session median {medians[n]:.2f} s "
                  f"(of {', '.join(f'{t:.2f}' for t in times)})")
    if len(medians) >= 2:
        small, big = min(medians), max(medians)
        times = big / small
        print(f"ratio {big}/{small} runs: {medians[big] / medians[small]:.1f}x for {times:.0f}x the runs "
              f"(linear ~{times:.0f}x, quadratic ~{times ** 2:.0f}x); goal: {big} runs under 2 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
