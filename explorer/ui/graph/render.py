"""Render a Trace to an SVG or PNG file without a window, through the canvas's own items.

Used by `python -m explorer graph --format svg|png`, by File > Export graph and by the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

FORMATS = ("png", "svg")


def ensure_app():
    """A QApplication for drawing: the running one, or a new offscreen one when there is none."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([])
    return app


def build_scene(trace, step: int | None = None, theme: str | dict | None = None, expanded=()):
    """A GraphScene with the trace's cards at `step` (None: the end); needs a QApplication."""
    ensure_app()
    from explorer.ui.common import theme as themes
    from explorer.ui.graph.view import GraphScene

    t = themes.get_theme(theme) if not isinstance(theme, dict) else theme
    scene = GraphScene(theme=t)
    scene.expanded = set(expanded)
    scene.set_trace(trace, step)
    if step is None:  # the finished run: no node is "current"
        scene.clear_current()
    return scene


def render_scene_file(scene, path: str | os.PathLike, fmt: str | None = None, scale: float = 2.0) -> Path:
    """Write a scene to `path` as png (at `scale` pixels per unit) or svg; returns the path."""
    from PySide6.QtCore import QRectF, QSize, Qt
    from PySide6.QtGui import QColor, QImage, QPainter

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}: use one of {', '.join(FORMATS)}")
    source = scene.sceneRect()
    width, height = max(1, int(source.width())), max(1, int(source.height()))
    if fmt == "svg":
        from PySide6.QtSvg import QSvgGenerator

        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(QSize(width, height))
        gen.setViewBox(QRectF(0, 0, width, height))
        gen.setTitle("Autograd Explorer graph")
        painter = QPainter(gen)
        scene.render(painter, QRectF(0, 0, width, height), source)
        painter.end()
    else:
        # cap the bitmap so that huge graphs still produce a file of sane size
        scale = min(scale, 16000.0 / max(width, height))
        image = QImage(max(1, int(width * scale)), max(1, int(height * scale)), QImage.Format_ARGB32)
        image.fill(QColor(scene.theme["canvas"]))
        painter = QPainter(image)
        painter.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing |
                               QPainter.SmoothPixmapTransform)
        scene.render(painter, QRectF(image.rect()), source, Qt.KeepAspectRatio)
        painter.end()
        if not image.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
    return path


def render_trace_file(trace, path: str | os.PathLike, fmt: str | None = None, step: int | None = None,
                      theme: str | None = None) -> Path:
    """Render a trace's graph to an svg or png file (format from `fmt` or the file suffix)."""
    scene = build_scene(trace, step=step, theme=theme)
    return render_scene_file(scene, path, fmt)
