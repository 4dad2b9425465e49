"""Benchmark of graph export: SVG (written from the layout) against PNG, on graphs of about 2,500 nodes.

Run: ``.venv/bin/python bench/svg_export_bench.py [--repeat N] [--skip-old]``. The scene is built once
per graph; each figure is the median of N exports of it (ms), PNG and SVG taking turns. The goal
(issue 12): SVG within 2x the PNG time. The QSvgGenerator column is the old way (painting every card
item into Qt's SVG writer), for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from graph_bench import chain_fn, gpt_fn  # noqa: E402

from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.ui.graph.render import build_scene, render_scene_file  # noqa: E402


def qt_svg_generator(scene, path: Path) -> None:
    """The previous exporter: QSvgGenerator fed by QGraphicsScene.render."""
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    rect = scene.sceneRect()
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QSize(int(rect.width()), int(rect.height())))
    gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    painter = QPainter(gen)
    scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()


def _median_ms(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples)


def _interleaved_ms(first, second, repeat: int) -> tuple[float, float]:
    """Medians (ms) of `first` and `second` run alternately, so a busy machine slows both alike."""
    a, b = [], []
    for _ in range(repeat):
        for fn, samples in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(a), 1000 * statistics.median(b)


def main(argv=None) -> int:
    """Print PNG, SVG and QSvgGenerator export times per graph and the SVG/PNG ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-old", action="store_true", help="skip the slow QSvgGenerator column")
    args = parser.parse_args(argv)
    graphs = [("chain-2500", chain_fn(2500)), ("gpt-24 (expanded)", gpt_fn(24))]
    print(f"{'graph':<20}{'nodes':>7}{'png ms':>10}{'svg ms':>10}{'svg/png':>9}{'QSvgGen ms':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, fn in graphs:
            tr = trace(fn)
            scene = build_scene(tr, expanded=set(tr.modules))
            png, svg = _interleaved_ms(lambda s=scene: render_scene_file(s, folder / "g.png"),
                                       lambda s=scene: render_scene_file(s, folder / "g.svg"), args.repeat)
            old = "" if args.skip_old else \
                f"{_median_ms(lambda s=scene: qt_svg_generator(s, folder / 'o.svg'), 1):.0f}"
            print(f"{name:<20}{len(scene.cards):>7}{png:>10.0f}{svg:>10.0f}{svg / png:>9.2f}{old:>12}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
