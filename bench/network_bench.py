"""Figures for the network workspace: iteration recording, toy training speed, GUI-thread lateness.

Run: `.venv/bin/python bench/network_bench.py` (headless; sets QT_QPA_PLATFORM=offscreen). Every figure is
a median over repeats, printed next to a baseline measured in the same run on the same machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

from explorer.core.mlp.network import NetSession, preset_spec  # noqa: E402
from explorer.core.mlp.toydata import make_dataset, train_toy  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()


def median_time(fn, repeats: int) -> float:
    """Median wall time of fn() in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_iteration() -> None:
    """One recorded iteration (zero_grad .. step) with and without the tracer, per preset."""
    torch.set_num_threads(1)  # as the panel runs it
    print("one recorded training iteration, 1 torch thread as in the panel (median of 15):")
    for preset in ("seed", "mlp-50-30-20-3", "toy-2d"):
        plain = NetSession(preset_spec(preset), use_tracer=False)
        traced = NetSession(preset_spec(preset), use_tracer=True)
        base = median_time(lambda s=plain: s.run_iteration(), 15)
        rec = median_time(lambda s=traced: s.run_iteration(), 15)
        print(f"  {preset:16s} hooks only {base * 1e3:7.2f} ms   with tracer {rec * 1e3:7.2f} ms")
    torch.set_num_threads(DEFAULT_THREADS)


def bench_training(steps: int = 200) -> None:
    """Toy training throughput with torch's default thread count against a single thread."""
    data = make_dataset("moons", n=200, seed=0)
    spec = preset_spec("toy-2d")
    default_threads = DEFAULT_THREADS

    def run():
        list(train_toy(spec, data, steps, record_every=1, boundary_every=20))

    figures = {}
    for threads in (default_threads, 1):
        torch.set_num_threads(threads)
        figures[threads] = median_time(run, 3)
    torch.set_num_threads(default_threads)
    print(f"toy training, moons, toy-2d preset, {steps} steps with a record per step (median of 3):")
    for threads, seconds in figures.items():
        print(f"  torch threads {threads}: {steps / seconds:8.0f} steps/s ({seconds:.3f} s)")


def bench_gui_lateness(steps: int = 600) -> None:
    """How late a 10 ms QTimer fires on the GUI thread: idle panel against the panel while training."""
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from explorer.ui.network.panel import TRAIN_TAB, NetworkPanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    panel = NetworkPanel()
    panel.resize(1300, 850)
    panel.show()
    panel.form.set_preset("toy-2d")
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    train = panel.train
    train.speed.setCurrentIndex(train.speed.count() - 1)
    train.steps.setValue(100000)

    def probe(until) -> list[float]:
        clock, timer, late = QElapsedTimer(), QTimer(), []
        last = [0.0]

        def tick():
            now = clock.nsecsElapsed() / 1e9
            late.append(max(0.0, now - last[0] - 0.010))
            last[0] = now

        timer.setInterval(10)
        timer.timeout.connect(tick)
        clock.start()
        timer.start()
        while not until():
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        return late

    deadline = time.perf_counter() + 2.0
    idle = probe(lambda: time.perf_counter() > deadline)
    start = time.perf_counter()
    train.start_run()
    busy = probe(lambda: train.last_record is not None and train.last_record["step"] >= steps)
    elapsed = time.perf_counter() - start
    train.reset()
    panel.shutdown()

    def describe(values):
        ordered = sorted(values)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        median = statistics.median(ordered)
        return f"median {median * 1e3:6.1f} ms, p95 {p95 * 1e3:6.1f} ms, max {ordered[-1] * 1e3:6.1f} ms"

    print("GUI-thread lateness of a 10 ms timer:")
    print(f"  idle panel (baseline)          {describe(idle)}")
    print(
        f"  training flat out ({steps} steps) {describe(busy)}; {steps / elapsed:.0f} steps/s incl. the GUI"
    )


if __name__ == "__main__":
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, default torch threads {torch.get_num_threads()}"
    )
    bench_iteration()
    bench_training()
    bench_gui_lateness()
