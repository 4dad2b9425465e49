"""Render a Trace to an SVG or PNG file without a window, through the canvas's own items.

Used by `python -m explorer graph --format svg|png`, by File > Export graph and by the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from explorer.core import files

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
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QImage, QPainter

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}: use one of {', '.join(FORMATS)}")
    source = scene.sceneRect()
    width, height = max(1, int(source.width())), max(1, int(source.height()))
    if fmt == "svg":
        files.write_atomic(path, scene_svg(scene))
    else:
        # cap the bitmap so that huge graphs still produce a file of sane size
        scale = min(scale, 16000.0 / max(width, height))
        image = QImage(max(1, int(width * scale)), max(1, int(height * scale)), QImage.Format_ARGB32)
        image.fill(QColor(scene.theme["canvas"]))
        painter = QPainter(image)
        painter.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing |
                               QPainter.SmoothPixmapTransform)
        overview = getattr(scene, "overview_mode", False)  # a file shows the cards, however far out the view
        if overview:
            scene.set_overview(False)
        lazy = hasattr(scene, "show_region")  # a canvas's scene has only the cards near its view on it
        if lazy:
            scene.show_region(source)
        try:
            scene.render(painter, QRectF(image.rect()), source, Qt.KeepAspectRatio)
        finally:
            painter.end()
            if lazy:
                scene.drop_region()
            if overview:
                scene.set_overview(True)
        if not image.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
    return path


def render_trace_file(trace, path: str | os.PathLike, fmt: str | None = None, step: int | None = None,
                      theme: str | None = None) -> Path:
    """Render a trace's graph to an svg or png file (format from `fmt` or the file suffix)."""
    scene = build_scene(trace, step=step, theme=theme)
    return render_scene_file(scene, path, fmt)


def scene_svg(scene) -> str:
    """The scene as SVG text, written from its display model and the cards' own texts.

    Going through QSvgGenerator paints every card item by item (over 10x the PNG's time at 2,500 nodes);
    this writes one <g class="node"> per card and one path per edge directly, with the geometry and the
    texts the canvas draws (minus the mini heatmaps), styled by a few CSS classes.
    """
    from PySide6.QtGui import QFontInfo, QFontMetricsF

    from explorer.core.graph.display import CARD_H, CARD_W
    from explorer.ui.graph import items

    t, model = scene.theme, scene.model
    rect = scene.sceneRect()
    ox, oy, width, height = rect.left(), rect.top(), max(1.0, rect.width()), max(1.0, rect.height())
    fonts = {"title": items._TITLE_FONT, "small": items._SMALL_FONT, "value": items.VALUE_FONT}
    px = {key: QFontInfo(font).pixelSize() for key, font in fonts.items()}
    elide = {key: _Elider(QFontMetricsF(font)) for key, font in fonts.items()}
    mono = "DejaVu Sans Mono, monospace"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="{ox:.1f} {oy:.1f} {width:.1f} {height:.1f}" font-family="DejaVu Sans, sans-serif">',
        "<title>Autograd Explorer graph</title>",
        "<style>"
        f".edges{{fill:none;stroke:{t['edge']};stroke-width:1.4}}"
        f".card{{fill:{t['card']};stroke:{t['card_border']}}}.pending{{fill:{t['card_pending']}}}"
        f".out{{stroke-width:2.5}}.sel{{stroke:{t['selected']};stroke-width:2.5}}"
        f".t{{font-size:{px['title']}px;font-weight:bold;fill:{t['text']}}}"
        f".s{{font-size:{px['small']}px;fill:{t['muted']};text-anchor:end}}"
        f".value,.grad,.muted{{font-size:{px['value']}px;font-family:{mono}}}"
        f".value{{fill:{t['value']}}}.grad{{fill:{t['grad']}}}.muted{{fill:{t['muted']}}}"
        f".facts{{font-size:{px['small']}px;fill:{t['muted']}}}"
        "</style>",
        f'<rect x="{ox:.1f}" y="{oy:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{t["canvas"]}"/>',
    ]
    for frame in getattr(scene, "frames", []):  # expanded modules: a tinted frame with its label
        r, label_x = frame.rect, frame.rect.left() + frame.label_offset + 8
        out.append(f'<g class="frame"><rect x="{r.left():.1f}" y="{r.top():.1f}" width="{r.width():.1f}" '
                   f'height="{r.height():.1f}" rx="12" fill="{t["module"]}" fill-opacity="0.09" '
                   f'stroke="{t["module"]}" stroke-width="1.5"/>'
                   f'<text x="{label_x:.1f}" y="{r.top() - 4:.1f}" '
                   f'font-size="{px["small"] + 3}px" font-weight="bold" '
                   f'fill="{t["module"]}">{escape(frame.label)}</text></g>')
    out.append('<g class="edges">')
    pos = model.positions
    for u, v in model.edges:
        start, curves, head = items.edge_geometry(pos[u], pos[v], *model.ports[(u, v)],
                                                  bends=model.bends.get((u, v)))
        d = [f"M{start[0]:.1f} {start[1]:.1f}"]
        d += [f"C{c1[0]:.1f} {c1[1]:.1f} {c2[0]:.1f} {c2[1]:.1f} {q[0]:.1f} {q[1]:.1f}"
              for c1, c2, q in curves]
        (hx0, hy0), (hx1, hy1), (hx2, hy2) = head
        d.append(f"M{hx0:.1f} {hy0:.1f}L{hx1:.1f} {hy1:.1f}L{hx2:.1f} {hy2:.1f}")
        out.append(f'<path d="{"".join(d)}"/>')
    out.append("</g>")
    w2, h2 = CARD_W / 2, CARD_H / 2
    title_dy, sub_dy = items.HEADER_H / 2 + px["title"] / 3, items.HEADER_H / 2 + px["small"] / 3
    line_dy = {role: items.HEADER_H + 16 + px["small" if role == "facts" else "value"] / 3
               for role in ("value", "grad", "muted", "facts")}
    accents: dict[tuple, str] = {}
    for did, card in scene.cards.items():
        info = card.info
        x, y = pos[did]
        key = (info.get("kind"), bool(info.get("is_output")))
        accent = accents.get(key) or accents.setdefault(key, card.accent().name())
        classes = "card" + ("" if card.show_value else " pending")
        style = ""
        if card.selected:
            classes += " sel"
        elif info.get("is_output"):
            classes, style = classes + " out", f' style="stroke:{accent}"'
        title, title_w = elide["title"].fit(info["title"], CARD_W - 16)
        sub, _w = elide["small"].fit(info.get("subtitle", ""), max(0.0, CARD_W - 26 - title_w))
        left, top = x - w2, y - h2
        out.append(f'<g class="node" id={quoteattr("node-" + did)}><title>{escape(info["title"])}</title>'
                   f'<rect class="{classes}"{style} x="{left:.1f}" y="{top:.1f}" width="{CARD_W:.0f}" '
                   f'height="{CARD_H:.0f}" rx="8"/><rect x="{left:.1f}" y="{top:.1f}" width="5" '
                   f'height="{CARD_H:.0f}" fill="{accent}"/><text class="t" x="{left + 10:.1f}" '
                   f'y="{top + title_dy:.1f}">{escape(title)}</text>')
        if sub:
            out.append(f'<text class="s" x="{x + w2 - 6:.1f}" y="{top + sub_dy:.1f}">{escape(sub)}</text>')
        for k, (role, text) in enumerate(items.body_lines(info, card.show_value, card.show_grad)):
            shown = elide["small" if role == "facts" else "value"].line(text, CARD_W - 20)
            out.append(f'<text class="{role}" x="{left + 10:.1f}" y="{top + line_dy[role] + 26 * k:.1f}">'
                       f"{escape(shown)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


class _Elider:
    """Elided text and its width for one font, cached: a big graph repeats its op names thousands of times."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.widest = metrics.maxWidth()
        self.cache: dict[tuple[str, float], tuple[str, float]] = {}

    def line(self, text: str, room: float) -> str:
        """`text` elided to `room`; short texts (most numbers) skip the font measurement."""
        return text if len(text) * self.widest <= room else self.fit(text, room)[0]

    def fit(self, text: str, room: float) -> tuple[str, float]:
        key = (text, room)
        hit = self.cache.get(key)
        if hit is None:
            from PySide6.QtCore import Qt

            shown = self.metrics.elidedText(text, Qt.ElideRight, room) if text else ""
            hit = self.cache[key] = (shown, self.metrics.horizontalAdvance(shown))
        return hit
