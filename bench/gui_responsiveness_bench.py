"""How responsive the pretraining panel stays while a model trains.

A 10 ms probe QTimer runs on the GUI thread; its lateness (actual interval minus 10 ms) is measured
with the panel idle, then while the panel trains the `tiny` preset in its spawned process, all in the
same run. A third phase trains the same model through the same panel, but in a Python thread of
the GUI process (what the panel avoids), for comparison. Phases alternate for a few rounds, since the
machine's load changes; prints p50 / p99 / max lateness and the training speed, then medians.

    python bench/gui_responsiveness_bench.py [--seconds 6] [--rounds 2] [--no-thread]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def probe(app, seconds: float, interval_ms: int = 10) -> list[float]:
    """Lateness in ms of each tick of an `interval_ms` timer over `seconds` of a running event loop."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append((now - last[0]) * 1000 - interval_ms)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    last[0] = time.perf_counter()
    timer.start()
    loop.exec()
    timer.stop()
    return late[1:]


def report(name: str, late: list[float], rate: float | None = None) -> None:
    """One line of figures."""
    speed = f"  training {rate:,.0f} tokens/s (median)" if rate else ""
    print(f"{name:<28} ticks {len(late):5d}  p50 {statistics.median(late):6.2f} ms  "
          f"p99 {percentile(late, 99):7.2f} ms  max {max(late):7.2f} ms{speed}")


def measure_training(app, backend: str, seconds: float) -> tuple[list[float], float | None]:
    """Probe lateness while a panel trains `tiny` with the given backend; returns (lateness, tokens/s)."""
    from PySide6.QtCore import QEventLoop, QTimer

    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel(train_backend=backend)
    panel.resize(1400, 860)
    panel.show()
    panel.form.apply_preset("tiny")
    panel.form.set_values({"steps": 100000, "eval_every": 100, "sample_every": 100})
    rates: list[float] = []
    panel._process.sig_records.connect(
        lambda batch: rates.extend(r["tokens_per_s"] for r in batch if r.get("type") == "step"))
    panel.train()
    waited = time.monotonic()
    while len(rates) < 3 and time.monotonic() - waited < 120:  # warmed up: a few steps done
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    rates.clear()
    late = probe(app, seconds)
    rate = statistics.median(rates) if rates else None
    panel.shutdown()
    panel.deleteLater()
    return late, rate


def main(argv: list[str] | None = None) -> int:
    """Alternate idle / process / thread phases for a few rounds; print each and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="probe time per phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of idle / process / thread")
    parser.add_argument("--no-thread", action="store_true", help="skip the Python-thread comparison")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from explorer.ui.pretrain.panel import PretrainPanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; probe: 10 ms QTimer on the GUI "
          f"thread, {args.seconds:g} s per phase, {args.rounds} rounds; training: preset tiny on the CPU")
    phases = ["idle", "process"] + ([] if args.no_thread else ["thread"])
    results: dict[str, list[tuple[float, float, float | None]]] = {name: [] for name in phases}
    for _ in range(args.rounds):
        for name in phases:
            if name == "idle":
                panel = PretrainPanel()
                panel.resize(1400, 860)
                panel.show()
                late, rate = probe(app, args.seconds), None
                panel.shutdown()
                panel.deleteLater()
            else:
                late, rate = measure_training(app, name, args.seconds)
            results[name].append((statistics.median(late), percentile(late, 99), rate))
            report({"idle": "idle panel", "process": "training, spawned process",
                    "thread": "training, Python thread"}[name], late, rate)
    print("medians over rounds:")
    for name, rows in results.items():
        rates = [r for _, _, r in rows if r]
        speed = f"  {statistics.median(rates):,.0f} tokens/s" if rates else ""
        print(f"  {name:<8} p50 {statistics.median(r[0] for r in rows):6.2f} ms  "
              f"p99 {statistics.median(r[1] for r in rows):7.2f} ms{speed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
