"""What one redraw of the pretraining loss plot costs with a long run on it.

The panel's TrainingPlots (clip-to-view, automatic peak downsampling, 1-px dense curves) is timed
against plain pyqtgraph curves without those settings, on the same data in the same run: setData of
N points plus a full repaint of the plot, median of several repeats.

    python bench/pretrain_plot_bench.py [--points 1000000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def fake_run(points: int):
    """A Run with `points` noisy, falling step records."""
    import numpy as np

    from explorer.core.gpt.runs import PretrainRun

    run = PretrainRun(1, "Run 1", {"context_length": 64}, {"steps": points, "batch_size": 12})
    steps = np.arange(1, points + 1, dtype=np.float64)
    loss = 4.2 * steps ** -0.15 + np.random.default_rng(0).normal(0, 0.05, points)
    for key, values in (("step", steps), ("tokens", steps * 768), ("train_loss", loss),
                        ("lr", np.full(points, 1e-3)), ("grad_norm", np.abs(loss))):
        series = run.steps[key]
        series._data = values.copy()
        series._n = points
    run.status = "done"
    return run


def time_panel_plots(app, run, repeats: int) -> list[float]:
    """ms per redraw of the panel's TrainingPlots (recompute smoothing on the new points + repaint)."""
    from explorer.ui.pretrain.plots import TrainingPlots

    plots = TrainingPlots()
    plots.resize(1100, 560)
    plots.show()
    plots.add_run(run)
    plots.flush()
    app.processEvents()
    out = []
    for _ in range(repeats):
        curves = plots.curves(run.run_id)
        curves.smoothed = curves.smoothed[:-100]  # as if the last 100 points had just arrived
        start = time.perf_counter()
        plots.mark_dirty(run.run_id)
        plots.flush()
        # grab() paints the whole scene now (repaint() of a view may leave its viewport for later).
        plots.loss_widget.grab()
        plots.lr_widget.grab()
        plots.grad_widget.grab()
        out.append((time.perf_counter() - start) * 1000)
    plots.close()
    return out


def time_plain_curves(app, run, repeats: int) -> list[float]:
    """ms per redraw of the same three plots with plain curves (no clipping, no downsampling)."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    window = QWidget()
    layout = QVBoxLayout(window)
    widgets = [pg.PlotWidget() for _ in range(3)]
    for w in widgets:
        layout.addWidget(w)
    window.resize(1100, 560)
    window.show()
    x = run.steps["step"].view()
    series = [run.steps["train_loss"].view(), run.steps["lr"].view(), run.steps["grad_norm"].view()]
    curves = [w.getPlotItem().plot(pen=pg.mkPen("#2563eb", width=1)) for w in widgets]
    app.processEvents()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for curve, y, w in zip(curves, series, widgets, strict=True):
            curve.setData(x, y)
            w.grab()
        out.append((time.perf_counter() - start) * 1000)
    window.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the median redraw time of both variants."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    run = fake_run(args.points)
    panel_ms = time_panel_plots(app, run, args.repeats)
    plain_ms = time_plain_curves(app, run, args.repeats)
    print(f"{args.points:,} points per curve, {args.repeats} repeats, offscreen raster")
    print(f"  panel plots (clip to view + peak downsampling): median {statistics.median(panel_ms):7.1f} ms "
          f"per redraw")
    print(f"  plain curves (no clipping, no downsampling):    median {statistics.median(plain_ms):7.1f} ms "
          f"per redraw")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
