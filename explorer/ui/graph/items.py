"""Graphics items of the graph canvas: node cards, edge bundles and animated highlight edges.

Cards paint themselves with a level of detail taken from the view's scale, so a 3,000-node graph
zoomed out draws coloured boxes only; text and heatmaps appear as the user zooms in.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

import numpy as np
import shiboken6
from PySide6.QtCore import QByteArray, QDataStream, QIODevice, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPaintEngine,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPixmapCache,
)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem

from explorer.core.graph.display import CARD_H, CARD_W
from explorer.core.numbers import (
    fmt_number,
    is_integer_dtype,
    max_abs_text,
    snapshot_matrix,
    snapshot_summary,
)

HEADER_H = 28.0
HEATMAP = 40.0

_TITLE_FONT = QFont()
_TITLE_FONT.setPointSizeF(12.0)
_TITLE_FONT.setBold(True)
_SMALL_FONT = QFont()
_SMALL_FONT.setPointSizeF(9.0)
VALUE_FONT = QFont("DejaVu Sans Mono")
VALUE_FONT.setStyleHint(QFont.Monospace)
VALUE_FONT.setPointSizeF(11.0)
_TENSOR_FONT = QFont(VALUE_FONT)
_TENSOR_FONT.setPointSizeF(9.5)  # tensor lines share the card with a heatmap
_FRAME_FONT = QFont()
_FRAME_FONT.setPointSizeF(10.0)
_FRAME_FONT.setBold(True)
MIN_SCREEN_PT = 9.0  # no card text is drawn smaller than this on screen (at the view's zoom)
NAME_LOD = 0.6       # below this zoom a card shows its name large (and its value when there is room)
NAME_PT = 12.0       # ... at this size on screen
_BOOSTED: dict[tuple[int, float], QFont] = {}
_METRICS: dict[int, QFontMetricsF] = {}  # keyed by id() of fonts that live for the whole session
_FITTED: dict[tuple, tuple[QFont, str]] = {}
_WIDTHS: dict[tuple[int, str], float] = {}
_NARROW: dict[tuple[int, int], QFont] = {}
CONDENSED = (90, 80, 70)  # letter widths (percent) a text too wide at the least size tries before "…"
METRIC_CALLS = [0]  # text_width calls so far (a list: a counter tests can read and reset)


def fit_text(text: str, font: QFont, boost: float, width: float, min_boost: float = 1.0
             ) -> tuple[QFont, str]:
    """The font (enlarged by up to `boost`, shrunk towards `min_boost` while the text does not fit
    `width`, then condensed by the first of CONDENSED that makes it fit) and the text to draw in it, elided
    with "…" in the uncondensed font when even the narrowest is too wide ("CrossEntropyLoss" is whole on a
    card from zoom ~0.65 on).

    A number cut off at the card's edge ("max 0.1" for 0.1177) would read as a different number, and a
    name cut mid-word ("CausalSelfAtter") as another name.
    """
    min_boost = min(boost, min_boost)
    key = (text, id(font), round(boost, 3), round(width, 1), round(min_boost, 3))
    hit = _FITTED.get(key)
    if hit is not None:
        return hit
    advance = _metrics(_boosted(font, boost)).horizontalAdvance(text)
    if advance > width and boost > min_boost:  # text width grows with the font size: shrink just enough
        boost = max(min_boost, boost * width / advance)
        while boost > min_boost and _metrics(_boosted(font, boost)).horizontalAdvance(text) > width:
            boost = max(min_boost, boost - 0.05)  # hinting can make the scaled text a little wider
    chosen = _boosted(font, boost)
    if _metrics(chosen).horizontalAdvance(text) > width:  # at the least size: narrower letters, whole
        chosen = next((narrow for narrow in (_condensed(chosen, stretch) for stretch in CONDENSED)
                       if _metrics(narrow).horizontalAdvance(text) <= width), chosen)  # else "…" as it was
    hit = chosen, _metrics(chosen).elidedText(text, Qt.ElideRight, width)
    if len(_FITTED) > 20_000:  # a cache for repaints, not a record of every text ever shown
        _FITTED.clear()
    _FITTED[key] = hit
    return hit


def _condensed(font: QFont, stretch: int) -> QFont:
    """`font` with its letters narrowed to `stretch` percent (cached: one font object per pair)."""
    key = (id(font), stretch)
    narrow = _NARROW.get(key)
    if narrow is None:
        narrow = _NARROW[key] = QFont(font)
        narrow.setStretch(stretch)
    return narrow


def text_width(font: QFont, text: str) -> float:
    """The width of `text` in `font` (a font that lives for the whole session), measured once per pair.

    Every measurement made while building a scene goes through here, and `METRIC_CALLS` counts the
    calls: a test checks that they grow in proportion to the graph, not faster.
    """
    METRIC_CALLS[0] += 1
    key = (id(font), text)
    width = _WIDTHS.get(key)
    if width is None:
        if len(_WIDTHS) > 50_000:
            _WIDTHS.clear()
        width = _WIDTHS[key] = _metrics(font).horizontalAdvance(text)
    return width


def _metrics(font: QFont) -> QFontMetricsF:
    """Font metrics, one object per font (paint asks for them for every text of every card)."""
    metrics = _METRICS.get(id(font))
    if metrics is None:
        metrics = _METRICS[id(font)] = QFontMetricsF(font)
    return metrics


def _boost_range(font: QFont, lod: float) -> tuple[float, float]:
    """(boost that shows `font` at its own size on screen, the least boost that keeps MIN_SCREEN_PT)."""
    lod = max(lod, 1e-3)
    return max(1.0, 1.0 / lod), MIN_SCREEN_PT / (font.pointSizeF() * lod)


def _boosted(font: QFont, boost: float) -> QFont:
    """`font` scaled by `boost` (cached per font and 0.05 step: paint runs for every card)."""
    if abs(boost - 1.0) < 0.025:
        return font
    key = (id(font), math.ceil(boost * 20 - 1e-6) / 20)  # rounded up: never under the size asked for
    if key not in _BOOSTED:
        big = QFont(font)
        big.setPointSizeF(font.pointSizeF() * key[1])
        _BOOSTED[key] = big
    return _BOOSTED[key]


_SUBTITLES: dict[tuple[str, int], list[str]] = {}
_BREAKS = (" · ", " ", ".", "#", "_")  # where a subtitle may go on to its second line, best first


def subtitle_lines(text: str, width: float) -> list[str]:
    """A card's subtitle ("transpose · no grad", a module's path) as one line of the small font no wider
    than `width`, else two (the header has room for two): broken at " · ", a space, a dot, "#" or "_",
    the break that leaves the wider line narrowest; a second line still too wide is elided.

    Cached per text and width: paint asks for it on every repaint of every card.
    """
    key = (text, int(width))
    hit = _SUBTITLES.get(key)
    if hit is not None:
        return hit
    metrics = _metrics(_SMALL_FONT)
    if metrics.horizontalAdvance(text) <= width:
        lines = [text]
    else:
        best: tuple[float, list[str]] | None = None
        for mark in _BREAKS:
            at = text.find(mark)
            while at > 0:
                if mark == ".":  # "blocks.0." / "attn": the dot ends the first line
                    first, second = text[:at + 1], text[at + 1:]
                elif mark in "#_":  # "sigmoid" / "#5": the mark starts the second
                    first, second = text[:at], text[at:]
                else:
                    first, second = text[:at], text[at + len(mark):]
                widest = max(metrics.horizontalAdvance(first), metrics.horizontalAdvance(second))
                if first and second and (best is None or widest < best[0]):
                    best = (widest, [first, second])
                at = text.find(mark, at + 1)
            if best is not None and best[0] <= width:
                break
        first, second = best[1] if best is not None else (text, "")
        if metrics.horizontalAdvance(first) > width:  # no mark to break at: break where the line is full
            cut = max(1, next((i for i in range(len(text), 0, -1)
                               if metrics.horizontalAdvance(text[:i]) <= width), 1))
            first, second = text[:cut], text[cut:]
        lines = [first, metrics.elidedText(second, Qt.ElideRight, width)] if second else [first]
    if len(_SUBTITLES) > 5_000:
        _SUBTITLES.clear()
    _SUBTITLES[key] = lines
    return lines


def body_lines(info: dict, show_value: bool, show_grad: bool) -> list[tuple[str, str]]:
    """The card's two body lines as (role, text), role "value", "grad", "muted" or "facts": the value, then
    the gradient (or, for a value no gradient will reach, its tensor facts). Shared by the canvas and the
    SVG writer; `line_color` turns a role into the theme's colour."""
    value, grad = info.get("value"), info.get("grad")
    if show_value and value is not None:
        lines = [("value", snapshot_summary(value))]
    else:
        lines = [("muted", "value …")]
    if show_grad and grad is not None:
        if int(getattr(grad, "numel", 1) or 0) == 1:
            lines.append(("grad", "∇ " + snapshot_summary(grad)))
        else:
            lines.append(("grad", f"∇ max {max_abs_text(grad)}"))
    elif info.get("has_grad"):
        lines.append(("muted", "∇ …"))
    elif info.get("layout"):  # no gradient will come: the line tells the tensor's layout instead
        lines.append(("facts", info["layout"]))
    return lines


def line_color(theme: dict[str, str], role: str) -> str:
    """The theme colour of a body line's role."""
    return theme["muted"] if role == "facts" else theme[role]


def heatmap_image(matrix: np.ndarray) -> QImage:
    """A diverging blue-white-red image of a matrix, symmetric around zero."""
    m = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    scale = float(np.max(np.abs(m))) or 1.0
    t = np.clip(m / scale, -1.0, 1.0)
    pos = np.clip(t, 0, 1)[..., None]
    neg = np.clip(-t, 0, 1)[..., None]
    white = np.array([250.0, 250.0, 250.0])
    red = np.array([214.0, 39.0, 40.0])
    blue = np.array([31.0, 119.0, 180.0])
    rgb = white * (1 - pos - neg) + red * pos + blue * neg
    h, w = m.shape
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = rgb.astype(np.uint8)
    rgba[..., 3] = 255
    img = QImage(rgba.tobytes(), w, h, 4 * w, QImage.Format_RGBA8888)
    return img.copy()  # detach from the temporary buffer


def accent_name(info: dict, theme: dict[str, str]) -> str:
    """The colour (as text) of a node's kind: output wins over op."""
    kind = "output" if info.get("is_output") else info.get("kind", "op")
    return theme.get(kind, theme["op"])


def accent_codes(infos: list[dict], theme: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """`accent_name` of every card of `infos` in array form: (the colour names used, each card's as an index
    into them). In C passes over cards' infos that have their "kind" and "is_output" (as the display
    model's do); Python looks at each distinct kind once."""
    try:
        kinds = list(map(itemgetter("kind"), infos))
        outputs = np.fromiter(map(itemgetter("is_output"), infos), dtype=bool, count=len(infos))
    except KeyError:  # (an info without them: one call per card)
        names: dict[str, int] = {}
        codes = [names.setdefault(accent_name(info, theme), len(names)) for info in infos]
        return list(names), np.array(codes, dtype=np.int64)
    names = {}
    of_kind = {kind: names.setdefault(theme.get(kind, theme["op"]), len(names))
               for kind in dict.fromkeys(kinds)}
    codes = np.fromiter(map(of_kind.__getitem__, kinds), dtype=np.int64, count=len(kinds))
    if outputs.any():
        codes[outputs] = names.setdefault(theme.get("output", theme["op"]), len(names))
    return list(names), codes


_COLORS: dict[tuple[str, int], QColor] = {}


def _color(name: str, alpha: int = 255) -> QColor:
    """The colour `name` at `alpha`, one object per pair (paint asks for them for every item)."""
    color = _COLORS.get((name, alpha))
    if color is None:
        color = _COLORS[(name, alpha)] = QColor(name)
        color.setAlpha(alpha)
    return color


_SCREEN_FONTS: dict[tuple[int, float], QFont] = {}


def draw_text(painter, rect: QRectF, align, text: str, font: QFont) -> None:
    """`painter.drawText(rect, align, text)` in `font`, drawn in screen pixels: under a zoom the text is
    laid out in the font scaled to its size on screen, with the painter's transform reset. Qt renders text
    under a scaling transform from glyph outlines (~0.1 ms a line); unscaled, from its glyph cache."""
    t = painter.worldTransform()
    scale = t.m11()
    if t.m12() or t.m21() or abs(scale - t.m22()) > 1e-9 or scale <= 0 or abs(scale - 1.0) < 1e-6:
        painter.setFont(font)
        painter.drawText(rect, align, text)
        return
    size = round(font.pointSizeF() * scale * 16) / 16
    key = (id(font), size)
    screen = _SCREEN_FONTS.get(key)
    if screen is None:
        if len(_SCREEN_FONTS) > 2_000:
            _SCREEN_FONTS.clear()
        screen = _SCREEN_FONTS[key] = QFont(font)
        screen.setPointSizeF(max(0.5, size))
    box = t.mapRect(rect)
    painter.save()
    painter.resetTransform()
    painter.setFont(screen)
    # the hinted letters on screen may be a pixel or two wider than the text measured in the scene: never cut
    painter.drawText(box, align | Qt.TextDontClip, text)
    painter.restore()


_BACKS: dict[tuple, QPixmap] = {}


def _paint_back(painter, border: QColor, width: float, fill: QColor, accent: QColor, alpha: int,
                header_only: bool) -> None:
    """A card's rounded box, border, tinted header (or whole card when `header_only` is False) and accent
    bar, at the painter's transform (card coordinates, centred on 0, 0).

    Every card of one look is the same picture at one zoom: it is drawn once into a pixmap of the screen's
    pixels and copied for each card (drawing the rounded shapes per card cost ~0.1 ms each). A rotated or
    sheared transform draws directly."""
    t = painter.worldTransform()
    if t.m12() or t.m21() or t.m11() <= 0 or t.m22() <= 0 or painter.device() is None:
        _draw_back(painter, border, width, fill, accent, alpha, header_only)
        return
    ratio = painter.device().devicePixelRatioF() or 1.0
    sx, sy = t.m11(), t.m22()
    key = (border.rgba(), width, fill.rgba(), accent.rgba(), alpha, header_only, round(sx, 5), round(sy, 5),
           ratio)
    pixmap = _BACKS.get(key)
    pad = 2.0  # room for half the border's width
    if pixmap is None:
        w, h = math.ceil((CARD_W + 2 * pad) * sx * ratio) + 1, math.ceil((CARD_H + 2 * pad) * sy * ratio) + 1
        pixmap = QPixmap(w, h)
        pixmap.fill(Qt.transparent)
        inner = QPainter(pixmap)
        inner.setRenderHint(QPainter.Antialiasing)
        inner.scale(sx * ratio, sy * ratio)
        inner.translate(CARD_W / 2 + pad, CARD_H / 2 + pad)
        _draw_back(inner, border, width, fill, accent, alpha, header_only)
        inner.end()
        pixmap.setDevicePixelRatio(ratio)
        if len(_BACKS) > 400:  # a cache for the zoom levels in use, not a record of every zoom ever shown
            _BACKS.clear()
        _BACKS[key] = pixmap
    corner = t.map(QPointF(-CARD_W / 2 - pad, -CARD_H / 2 - pad))
    painter.save()
    painter.resetTransform()
    painter.drawPixmap(QPointF(round(corner.x() * ratio) / ratio, round(corner.y() * ratio) / ratio), pixmap)
    painter.restore()


def _draw_back(painter, border: QColor, width: float, fill: QColor, accent: QColor, alpha: int,
               header_only: bool) -> None:
    painter.setPen(QPen(border, width))
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(-CARD_W / 2, -CARD_H / 2, CARD_W, CARD_H), 8, 8)
    tint = QColor(accent)
    tint.setAlpha(alpha)
    # the header's tint and the accent bar inside the rounded corners: paths made once for every card
    # (a clip path set per card cost ~0.3 ms a card)
    inner, head, bar = _card_paths()
    painter.fillPath(head if header_only else inner, tint)
    painter.fillPath(bar, accent)


_PATHS: list[QPainterPath] = []


def _card_paths() -> list[QPainterPath]:
    """(inside of a card's rounded border, its header, its accent bar), in card coordinates, made once."""
    if not _PATHS:
        rect = QRectF(-CARD_W / 2, -CARD_H / 2, CARD_W, CARD_H)
        inner = QPainterPath()
        inner.addRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        head, bar = QPainterPath(), QPainterPath()
        head.addRect(QRectF(rect.left(), rect.top(), CARD_W, HEADER_H))
        bar.addRect(QRectF(rect.left(), rect.top(), 5, CARD_H))
        _PATHS.extend((inner, inner.intersected(head), inner.intersected(bar)))
    return _PATHS


_SMOOTH = QPainter.RenderHint.Antialiasing
_SMOOTH_PIXMAPS = QPainter.RenderHint.SmoothPixmapTransform
# Qt enum values looked up once: in PySide6 each `Qt.NoPen` costs several microseconds, and the paints below
# run for every item in view on every frame
_RASTER = QPaintEngine.Type.Raster
_TRANSPARENT = QColor(0, 0, 0, 0)
_NO_PEN = Qt.PenStyle.NoPen
_NO_BRUSH = Qt.BrushStyle.NoBrush
_LABEL_ALIGN = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom
_SERIAL = [0]
FACES_DRAWN = [0]  # card faces drawn anew (not copied from the cache) so far: a counter tests can read
LABELS_DRAWN = [0]  # frame labels drawn anew into their pixmaps (not copied from the cache) so far
PICTURES_DRAWN = [0]  # overview pictures (frames and edges at one zoom step) drawn anew so far
PICTURES_KEPT = 3  # overview pictures kept per item (zoom steps, player states)
FACE_CACHE_KB = 96 * 1024  # QPixmapCache's limit once cards use it (Qt's default is 10 MB)
SCALED_FACES: list = []  # the viewports painted during a zoom gesture (`explorer.ui.graph.tiles`): there a
# card whose face at the new zoom is not drawn yet copies its face of another zoom, scaled (SCALED_COPIES)
SCALED_COPIES = [0]  # faces copied scaled so far (a counter tests can read)
FACE_BUDGET = [0]  # in those viewports, faces still to be drawn sharp in this paint before the others copy
# a scaled face (0 during a gesture; a few dozen per paint once it settled, so no frame draws them all)
STATIC_FROM_TILES: list = []  # the viewports whose paint copies frames and edge bundles from tiles now
# (`explorer.ui.graph.tiles`): in those the items skip their own paint


def copy_on_pixels(painter, t, x: float, y: float, pixmap, ratio: float) -> None:
    """Copy `pixmap` (drawn at device pixel ratio `ratio`) with its top-left corner at the scene point
    (x, y) under the transform `t`, snapped to a device pixel so it stays sharp; the painter keeps `t`."""
    x, y = t.map(x, y)
    painter.resetTransform()
    # half up, not Python's half to even: a point on half a pixel lands on the same pixel whatever whole
    # number of pixels the view is scrolled by (and in a static-layer tile as in the view)
    if ratio == 1.0:
        painter.drawPixmap(math.floor(x + 0.5), math.floor(y + 0.5), pixmap)
    else:
        painter.drawPixmap(QPointF(math.floor(x * ratio + 0.5) / ratio, math.floor(y * ratio + 0.5) / ratio),
                           pixmap)
    painter.setWorldTransform(t)


def _ensure_face_cache() -> None:
    if QPixmapCache.cacheLimit() < FACE_CACHE_KB:
        QPixmapCache.setCacheLimit(FACE_CACHE_KB)


class NodeCard(QGraphicsItem):
    """A node of the graph drawn as a card: name and op, value once known, gradient once known."""

    def __init__(self, info: dict, theme: dict[str, str]):
        super().__init__()
        self.info = info  # id, kind, title, subtitle, value, grad, is_output, tooltip, members
        self.node_id = info["id"]
        self.theme = theme
        self.show_value = True
        self.show_grad = True
        self.current: str | None = None  # "forward" | "backward" while the player is on this node
        self.selected = False
        self._value_img: QImage | None = None
        self._grad_img: QImage | None = None
        self.painted: list[tuple[str, float]] = []  # (text, point size on screen) of the last paint
        self.accent_name = accent_name(info, theme)  # the colour of the node's kind, as text
        self._accent = QColor(self.accent_name)
        self.setToolTip(info.get("tooltip", ""))
        self.setAcceptHoverEvents(False)
        _SERIAL[0] += 1
        self._serial = _SERIAL[0]  # names the card's faces in QPixmapCache (an id() may be reused)
        self._faces: dict[str, list[tuple[str, float]]] = {}  # `painted` of the faces drawn last
        self._look: tuple | None = None  # state, zoom and look of the last paint; its face's key, its lod
        self._key = ""
        self._lod = 1.0

    HALO = 6.0  # room around the card for the current-node halo

    _BOUNDS = QRectF(-CARD_W / 2 - HALO, -CARD_H / 2 - HALO, CARD_W + 2 * HALO, CARD_H + 2 * HALO)
    _CORNER_X, _CORNER_Y = -CARD_W / 2 - HALO - 1, -CARD_H / 2 - HALO - 1  # of a face's pixmap

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """Card rectangle plus room for the current-node halo."""
        return self._BOUNDS

    @classmethod
    def bounds(cls) -> QRectF:
        """Every card's `boundingRect` (around its centre, the card's position)."""
        return QRectF(cls._BOUNDS)

    def set_state(self, show_value: bool, show_grad: bool, current: str | None) -> bool:
        """Update what the card shows; returns True (and repaints) when anything changed."""
        if (show_value, show_grad, current) == (self.show_value, self.show_grad, self.current):
            return False
        self.show_value, self.show_grad, self.current = show_value, show_grad, current
        self.update()
        return True

    def set_selected(self, on: bool) -> None:
        """Mark the card as the inspector's node."""
        if on != self.selected:
            self.selected = on
            self.update()

    def accent(self) -> QColor:
        """The colour of the node's kind (output wins over op)."""
        return QColor(self._accent)

    def paint(self, painter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        """Draw the card with as much detail as the zoom level allows.

        The whole face (box, text, heatmaps; a plain block just under 0.3, where text would not be read) is
        drawn once per state, look and zoom into a pixmap of the screen's pixels (`QPixmapCache`, so the
        cache has a size cap) and copied at a whole pixel: a still repaint, a pan and a player step that
        leaves the card as it was copy it; only a card whose state changed, or a new zoom, draws it anew
        (FACES_DRAWN counts). Below NAME_LOD the face shows no gradient, so a gradient arriving there
        draws nothing anew.

        This runs for every card in view on every frame (a hundred or more at 30 %), so the copy is kept to
        a few calls: the cache key is remade only when the state, zoom or look changed, and no Qt enum is
        looked up (each costs microseconds in PySide)."""
        t = painter.worldTransform()
        m11, m22 = t.m11(), t.m22()
        engine = painter.paintEngine()
        if t.m12() or t.m21() or m11 <= 0 or m22 <= 0 or engine is None or engine.type() != _RASTER:
            self._paint_face(painter, option.levelOfDetailFromTransform(t))  # vector files: drawn direct
            return
        ratio = painter.device().devicePixelRatioF() or 1.0
        theme = self.theme
        look = (self.show_value, self.show_grad, self.current, self.selected, m11, m22, ratio, id(theme),
                theme["card"], theme["text"])
        if look != self._look:
            # (Qt's levelOfDetailFromTransform measures the scale between two mapped points, which rounds
            # differently at each card's position: at 60 % some cards fell just under NAME_LOD, others not)
            lod = math.sqrt(m11 * m22)
            self._look = look
            # no gradient is drawn below NAME_LOD: one face for both
            grad = self.show_grad if lod >= NAME_LOD else "-"
            self._key = (f"card{self._serial}|{self.show_value:d}{self.current}{self.selected:d}|{grad}|"
                         f"{m11:.5f},{m22:.5f},{ratio:g}|{id(theme)}{theme['card']}{theme['text']}")
            self._lod = lod
        key = self._key
        pixmap = QPixmapCache.find(key)
        if pixmap is None and widget is not None and widget in SCALED_FACES:
            if FACE_BUDGET[0] > 0:
                FACE_BUDGET[0] -= 1
            elif self._copy_scaled(painter, key):
                return
        if pixmap is None:
            FACES_DRAWN[0] += 1
            bounds = self._BOUNDS.adjusted(-1, -1, 1, 1)
            sx, sy = m11 * ratio, m22 * ratio
            pixmap = QPixmap(math.ceil(bounds.width() * sx) + 1, math.ceil(bounds.height() * sy) + 1)
            pixmap.fill(_TRANSPARENT)
            inner = QPainter(pixmap)
            inner.setRenderHints(painter.renderHints())
            inner.scale(sx, sy)
            inner.translate(-bounds.left(), -bounds.top())
            self._paint_face(inner, self._lod)
            inner.end()
            pixmap.setDevicePixelRatio(ratio)
            _ensure_face_cache()
            QPixmapCache.insert(key, pixmap)
            self._faces[key] = self.painted
            if len(self._faces) > 4:
                self._faces.pop(next(iter(self._faces)))
        else:
            self.painted = self._faces.get(key, self.painted)
        copy_on_pixels(painter, t, self._CORNER_X, self._CORNER_Y, pixmap, ratio)

    def _copy_scaled(self, painter, key: str) -> bool:
        """Copy the face of the same state and look last drawn at another zoom, scaled to this one (during
        a zoom gesture: within a pixel of the exact face's place; the sharp face is drawn once the zoom
        stays; across NAME_LOD, where the gradient shows or goes, the face of the other side). False when no
        such face is in the cache."""
        card, state, _grad, _zoom, look = key.split("|")
        for other in reversed(self._faces):
            parts = other.split("|")
            if parts[0] != card or parts[1] != state or parts[4] != look:
                continue
            pixmap = QPixmapCache.find(other)
            if pixmap is None:
                continue
            sx, sy, _ratio = (float(v) for v in parts[3].split(","))
            bounds = self._BOUNDS.adjusted(-1, -1, 1, 1)
            w, h = pixmap.width(), pixmap.height()
            ratio = pixmap.devicePixelRatio()
            SCALED_COPIES[0] += 1
            target = QRectF(bounds.left(), bounds.top(), w / (sx * ratio), h / (sy * ratio))
            # nearest pixels: a smoothed scaled copy costs ~0.4 ms a card, a hundred cards a frame
            smooth = painter.testRenderHint(_SMOOTH_PIXMAPS)
            if smooth:
                painter.setRenderHint(_SMOOTH_PIXMAPS, False)
            painter.drawPixmap(target, pixmap, QRectF(0, 0, w, h))
            if smooth:
                painter.setRenderHint(_SMOOTH_PIXMAPS, True)
            return True
        return False

    def _paint_face(self, painter, lod: float) -> None:
        """The card's face at the painter's transform (card coordinates) with detail for zoom `lod`."""
        t = self.theme
        rect = QRectF(-CARD_W / 2, -CARD_H / 2, CARD_W, CARD_H)
        accent = self.accent()
        if self.current:
            halo = QColor(t["current"])
            halo.setAlpha(200)
            painter.setPen(QPen(halo, 6))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 10, 10)
        fill = QColor(t["card"] if self.show_value else t["card_pending"])
        border = QColor(t["selected"]) if self.selected else QColor(t["card_border"])
        width = 2.5 if self.selected else 1.0
        if self.info.get("is_output") and not self.selected:
            border, width = accent, 2.5
        if lod < 0.3:  # far out: a coloured block per node keeps thousands of nodes cheap
            painter.setPen(Qt.NoPen)
            painter.setBrush(accent if self.show_value else QColor(t["card_border"]))
            painter.drawRect(rect)
            return
        header = QRectF(rect.left(), rect.top(), CARD_W, HEADER_H)
        _paint_back(painter, border, width, fill, accent, 60 if self.show_value else 30, lod >= NAME_LOD)
        self.painted = []
        if lod < NAME_LOD:
            self._paint_name(painter, rect, lod)
            return
        # A fitted graph is often drawn below 100%: grow the text back to its own size on screen (it
        # shrinks to fit, never below MIN_SCREEN_PT, and is elided with "…" beyond that).
        title_rect = header.adjusted(10, 0, -6, 0)
        painter.setPen(QColor(t["text"]))
        boost, least = _boost_range(_TITLE_FONT, lod)
        title_w = self._draw(painter, title_rect, self.info["title"], _TITLE_FONT, boost, least, lod)
        sub = self.info.get("subtitle", "")
        room = title_rect.width() - title_w - 10
        if boost <= 1.0 and sub and room > 20:  # the op's name beside the title, when there is room
            painter.setPen(QColor(t["muted"]))
            shown = subtitle_lines(sub, room)  # two short lines rather than "transpose · no g…"
            draw_text(painter, title_rect, Qt.AlignVCenter | Qt.AlignRight, "\n".join(shown), _SMALL_FONT)
            self.painted.extend((line, _SMALL_FONT.pointSizeF() * lod) for line in shown)
        self._paint_body(painter, rect, lod)

    def _draw(self, painter, rect: QRectF, text: str, font: QFont, boost: float, least: float, lod: float,
              align=Qt.AlignVCenter | Qt.AlignLeft) -> float:
        """Draw `text` fitted into `rect`; records it with its size on screen; returns its width."""
        chosen, shown = fit_text(text, font, boost, rect.width(), least)
        draw_text(painter, rect, align, shown, chosen)
        self.painted.append((shown, chosen.pointSizeF() * lod))
        return _metrics(chosen).horizontalAdvance(shown)

    def _paint_name(self, painter, rect: QRectF, lod: float) -> None:
        """Zoomed out: the name large, and the value under it while both fit at a readable size."""
        inner = rect.adjusted(10, 4, -6, -4)
        name_font = _boosted(_TITLE_FONT, NAME_PT / (_TITLE_FONT.pointSizeF() * lod))
        name_h = _metrics(name_font).height()
        value = self.info.get("value")
        value_font = _boosted(VALUE_FONT, MIN_SCREEN_PT / (VALUE_FONT.pointSizeF() * lod))
        value_h = _metrics(value_font).height()
        with_value = self.show_value and value is not None and name_h + value_h + 4 <= inner.height()
        top = inner.top() + (inner.height() - name_h - (value_h + 4 if with_value else 0)) / 2
        painter.setPen(QColor(self.theme["text"]))
        boost = NAME_PT / (_TITLE_FONT.pointSizeF() * lod)
        self._draw(painter, QRectF(inner.left(), top, inner.width(), name_h), self.info["title"], _TITLE_FONT,
                   boost, _boost_range(_TITLE_FONT, lod)[1], lod)
        if with_value:
            painter.setPen(QColor(self.theme["value"]))
            least = _boost_range(VALUE_FONT, lod)[1]
            self._draw(painter, QRectF(inner.left(), top + name_h + 4, inner.width(), value_h),
                       snapshot_summary(value), VALUE_FONT, least, least, lod)

    def _paint_body(self, painter, rect: QRectF, lod: float = 1.0) -> None:
        """Value and gradient lines (grown back to their size on screen), with mini heatmaps for tensors."""
        t = self.theme
        value, grad = self.info.get("value"), self.info.get("grad")
        is_tensor = value is not None and int(getattr(value, "numel", 1) or 0) > 1
        text_right = rect.right() - (HEATMAP + 10 if is_tensor else 8)
        line1 = QRectF(rect.left() + 10, rect.top() + HEADER_H + 4, text_right - rect.left() - 10, 24)
        line2 = line1.translated(0, 26)
        font = _TENSOR_FONT if is_tensor else VALUE_FONT
        for box, (role, text) in zip((line1, line2), body_lines(self.info, self.show_value, self.show_grad),
                                     strict=False):
            line_font = _SMALL_FONT if role == "facts" else font
            boost, least = _boost_range(line_font, lod)
            if role == "grad" and not text.startswith("∇ …") and int(getattr(grad, "numel", 1) or 0) > 1:
                peak = text.removeprefix("∇ max ")  # "every entry within ±m" says the same in less room
                narrowest = _metrics(_boosted(line_font, least))
                try:  # shorter forms, never a cut number ("∇ ±0.02…" reads as another one)
                    short = f"{float(peak):.2g}"
                    forms = [f"∇ ±{peak}", f"∇ ±{short}", f"∇±{short}", f"±{short}"]
                except ValueError:
                    forms = [f"∇ ±{peak}"]
                for form in forms:
                    if narrowest.horizontalAdvance(text) <= box.width():
                        break
                    text = form
            painter.setPen(QColor(line_color(t, role)))
            if role == "facts" and boost <= 1.0:  # at full size the layout takes two lines, not "…"
                shown = subtitle_lines(text, box.width())
                draw_text(painter, box.adjusted(0, -3, 0, 3), Qt.AlignVCenter | Qt.AlignLeft,
                          "\n".join(shown), _SMALL_FONT)
                self.painted.extend((line, _SMALL_FONT.pointSizeF() * lod) for line in shown)
                continue
            self._draw(painter, box, text, line_font, boost, least, lod)
        if is_tensor:
            box = QRectF(rect.right() - HEATMAP - 6, rect.top() + HEADER_H + 6, HEATMAP, HEATMAP)
            self._paint_heatmaps(painter, box, value, grad)

    def _paint_heatmaps(self, painter, box: QRectF, value, grad) -> None:
        """Value heatmap, or split value/gradient once the gradient is known."""
        if not self.show_value:
            painter.fillRect(box, QColor(self.theme["card_pending"]))
            return
        if self._value_img is None:
            m = snapshot_matrix(value)
            self._value_img = heatmap_image(m) if m is not None else QImage()
        show_g = self.show_grad and grad is not None
        if show_g and self._grad_img is None:
            m = snapshot_matrix(grad)
            self._grad_img = heatmap_image(m) if m is not None else QImage()
        top = QRectF(box.left(), box.top(), box.width(), box.height() / 2 - 1 if show_g else box.height())
        if not self._value_img.isNull():
            painter.drawImage(top, self._value_img)
        if show_g and not self._grad_img.isNull():
            painter.drawImage(QRectF(box.left(), box.center().y() + 1, box.width(), box.height() / 2 - 1),
                              self._grad_img)
        painter.setPen(QPen(QColor(self.theme["card_border"]), 1))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(box)


def edge_path(src: QPointF, dst: QPointF, arrow: bool = True, dy_src: float = 0.0,
              dy_dst: float = 0.0, bends=None) -> QPainterPath:
    """A smooth curve from the right side of the source card to the left side of the target card.

    `dy_src`/`dy_dst` shift the ports so that several edges at one card do not meet in one point;
    `bends` are points the layout reserved for an edge that spans several layers, so it runs between
    the cards instead of across them. The geometry is `edge_geometry`'s.
    """
    start, curves, head = edge_geometry((src.x(), src.y()), (dst.x(), dst.y()), dy_src, dy_dst, bends)
    path = QPainterPath(QPointF(*start))
    for c1, c2, q in curves:
        path.cubicTo(QPointF(*c1), QPointF(*c2), QPointF(*q))
    if arrow:
        path.moveTo(QPointF(*head[0]))
        path.lineTo(QPointF(*head[1]))
        path.lineTo(QPointF(*head[2]))
    return path


def split_cubic(p0, c1, c2, p3, n: int) -> list[tuple]:
    """A cubic Bézier cut into `n` pieces of equal parameter length, each (start, control 1, control 2, end):
    the same curve (de Casteljau), drawn piece by piece so a view strokes only the pieces it shows."""
    pieces = []
    for k in range(n, 1, -1):
        t = 1.0 / k
        a = (p0[0] + (c1[0] - p0[0]) * t, p0[1] + (c1[1] - p0[1]) * t)
        b = (c1[0] + (c2[0] - c1[0]) * t, c1[1] + (c2[1] - c1[1]) * t)
        c = (c2[0] + (p3[0] - c2[0]) * t, c2[1] + (p3[1] - c2[1]) * t)
        ab = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
        bc = (b[0] + (c[0] - b[0]) * t, b[1] + (c[1] - b[1]) * t)
        mid = (ab[0] + (bc[0] - ab[0]) * t, ab[1] + (bc[1] - ab[1]) * t)
        pieces.append((p0, a, ab, mid))
        p0, c1, c2 = mid, bc, c
    pieces.append((p0, c1, c2, p3))
    return pieces


def edge_geometry(src: tuple[float, float], dst: tuple[float, float], dy_src: float = 0.0,
                  dy_dst: float = 0.0, bends=None):
    """An edge as plain numbers: (start point, [(control 1, control 2, end) per cubic], arrow head's
    three points). The canvas and the SVG writer draw the same curve from it."""
    a = (src[0] + CARD_W / 2, src[1] + dy_src)
    b = (dst[0] - CARD_W / 2, dst[1] + dy_dst)
    if b[0] < a[0] and not bends:  # a back edge (rare in a DAG layout): leave and enter from the sides
        a, b = (src[0] - CARD_W / 2, src[1]), (dst[0] + CARD_W / 2, dst[1])
    sign = 1.0 if b[0] >= a[0] else -1.0
    points = [a, *((float(x), float(y)) for x, y in (bends or ())), b]
    curves = []
    for p, q in zip(points, points[1:], strict=False):
        if q[0] <= p[0] and sign > 0:  # the turn of a wrapped row (down, back left, down): straight runs
            curves.append((p, q, q))
            continue
        dx = max(20.0, abs(q[0] - p[0]) * 0.5)
        curves.append(((p[0] + sign * dx, p[1]), (q[0] - sign * dx, q[1]), q))
    size = 7.0
    head = ((b[0] - sign * size, b[1] - size * 0.6), b, (b[0] - sign * size, b[1] + size * 0.6))
    return a, curves, head


class EdgeBundle(QGraphicsPathItem):
    """Many plain data-flow edges in one path item: cheap to build and to cull for big graphs."""

    def __init__(self, path: QPainterPath, theme: dict[str, str]):
        super().__init__(path)
        pen = QPen(QColor(theme["edge"]), 1.4)
        pen.setCosmetic(False)
        self.setPen(pen)
        self.setBrush(Qt.NoBrush)
        self.setZValue(-2)

    def paint(self, painter, option, widget=None) -> None:
        """The path, except in a view that copies it from its static layer's tiles."""
        if widget is not None and widget in STATIC_FROM_TILES:
            return
        super().paint(painter, option, widget)


class FlowEdge(QGraphicsPathItem):
    """An edge that is carrying data right now: forward values or backward gradients, dash-animated."""

    def __init__(self, src: QPointF, dst: QPointF, direction: str, theme: dict[str, str],
                 ports: tuple[float, float] = (0.0, 0.0)):
        # backward: the gradient travels from the consumer back to its input, so draw it reversed
        if direction == "backward":
            path = _reversed_edge(src, dst, *ports)
        else:
            path = edge_path(src, dst, True, *ports)
        super().__init__(path)
        color = QColor(theme["edge_backward" if direction == "backward" else "edge_forward"])
        pen = QPen(color, 3.2)
        pen.setDashPattern([4.0, 2.5])
        pen.setCapStyle(Qt.RoundCap)
        self.setPen(pen)
        self.setBrush(Qt.NoBrush)
        self.setZValue(-1)
        self.direction = direction
        self.setFlag(QGraphicsItem.ItemIsSelectable, False)

    def advance_dash(self, amount: float) -> None:
        """Move the dashes along the edge so the flow direction is visible."""
        pen = self.pen()
        pen.setDashOffset(pen.dashOffset() - amount)
        self.setPen(pen)


def _reversed_edge(src: QPointF, dst: QPointF, dy_src: float = 0.0, dy_dst: float = 0.0) -> QPainterPath:
    """The same curve as edge_path(src, dst) but running from dst to src, arrow at src."""
    a = QPointF(src.x() + CARD_W / 2, src.y() + dy_src)
    b = QPointF(dst.x() - CARD_W / 2, dst.y() + dy_dst)
    dx = max(40.0, abs(b.x() - a.x()) * 0.5)
    path = QPainterPath(b)
    path.cubicTo(QPointF(b.x() - dx, b.y()), QPointF(a.x() + dx, a.y()), a)
    size = 7.0
    path.moveTo(QPointF(a.x() + size, a.y() - size * 0.6))
    path.lineTo(a)
    path.lineTo(QPointF(a.x() + size, a.y() + size * 0.6))
    return path


__all__ = [
    "CARD_W", "CARD_H", "NodeCard", "EdgeBundle", "FlowEdge", "edge_path", "fmt_number",
    "snapshot_summary", "snapshot_matrix", "heatmap_image", "is_integer_dtype",
]


def frame_label_width(label: str, boost: float | None = None) -> float:
    """The width in scene units of a module frame's label at `boost` (default: the largest)."""
    boost = ModuleFrame.MAX_LABEL_BOOST if boost is None else boost
    return text_width(_boosted(_FRAME_FONT, boost), label) + 16


class FramePlace(NamedTuple):
    """Where a module frame goes and what it says, without its item (a lazy canvas makes the item when
    the frame comes near the view; the overview draws frames from these)."""

    path: str
    label: str
    rect: QRectF
    depth: int
    label_offset: float

    def label_width(self, boost: float | None = None) -> float:
        """The label's width in scene units at `boost` (default: the largest)."""
        return frame_label_width(self.label, boost)


class ModuleFrame(QGraphicsItem):
    """A labelled, tinted frame around the cards of an expanded module ("blocks.0 · Block").

    The label keeps a readable size on screen as the view zooms out (it grows in the scene, up to
    MAX_LABEL_BOOST); `label_offset` moves it right of the labels of frames that share its corner.
    """

    LABEL_PT = 10.0
    MAX_LABEL_BOOST = 2.5
    RADIUS = 12.0  # of the frame's corners

    def __init__(self, path: str, label: str, rect: QRectF, theme: dict[str, str], depth: int = 0):
        super().__init__()
        self.path = path
        self.label = label
        self.rect = rect
        self.theme = theme
        self.label_offset = 0.0
        self._bounds: tuple[float, QRectF] | None = None  # (label_offset, boundingRect) once asked for
        self._plan: tuple | None = None  # what a paint at one zoom draws (`_make_plan`), made at its first
        self._tint: tuple[tuple, QColor] | None = None  # (theme key, opaque fill colour) once painted
        self._label_key: tuple = (None, "")  # (zoom and look, QPixmapCache key of the label's pixmap)
        # under the edges and cards; inner frames over outer ones, and a rolled-up range of modules
        # ("blocks.0-3") under the modules it holds, which have its depth
        last = path.rpartition(".")[2]
        low, dash, high = last.partition("-")
        ranged = bool(dash) and low.isdigit() and high.isdigit()
        self.setZValue(-3 + 0.01 * depth - (0.005 if ranged else 0.0))
        self.setFlag(QGraphicsItem.ItemUsesExtendedStyleOption)  # paint gets the exposed part: draws only it
        self.setToolTip(f"{label}: the ops of module {path} are drawn inside this frame")

    FILL_ALPHA = 22

    def fill_color(self) -> QColor:
        """The frame's tint: the module colour at FILL_ALPHA over the canvas once for this frame and once for
        every frame around it, as one opaque colour. The frames are the lowest items on a plain canvas, so
        this is the colour the stacked translucent fills gave, and an opaque fill of a large frame is a plain
        memory fill, several times cheaper than blending every pixel of it (nested frames at 30 % cover the
        screen many times over). Outside a scene, on a canvas without a plain colour, or over a frame drawn
        before it that does not hold it whole, translucent as before."""
        theme = self.theme
        key = (id(theme), theme["module"], theme.get("canvas"))
        if self._tint is not None and self._tint[0] == key:
            return self._tint[1]
        scene = self.scene()
        if scene is None or not theme.get("canvas"):
            return _color(theme["module"], self.FILL_ALPHA)
        around, z, mine = 0, self.zValue(), self.rect
        for item in scene.items(mine, Qt.IntersectsItemBoundingRect):
            if not isinstance(item, ModuleFrame) or item is self or not item.rect.intersects(mine):
                continue
            if item.zValue() > z:
                continue  # drawn after this one, over it
            if item.rect.contains(mine) and item.zValue() < z:
                around += 1  # a frame around this one (or as large: its outline lies under this one's)
            else:
                # a frame drawn before this one that it overlaps in part (or drawn in no set order) must
                # show through: this one keeps the translucent fill, so no outline is hidden
                self._tint = (key, _color(theme["module"], self.FILL_ALPHA))
                return self._tint[1]
        base, tint = QColor(theme["canvas"]), QColor(theme["module"])
        a = self.FILL_ALPHA / 255
        rgb = [base.redF(), base.greenF(), base.blueF()]
        for _ in range(around + 1):
            rgb = [c * (1 - a) + m * a for c, m in zip(rgb, (tint.redF(), tint.greenF(), tint.blueF()),
                                                        strict=True)]
        color = QColor.fromRgbF(*rgb)
        self._tint = (key, color)
        return color

    def label_width(self, boost: float | None = None) -> float:
        """The label's width in scene units at `boost` (default: the largest)."""
        return frame_label_width(self.label, boost)

    @classmethod
    def bounds(cls, rect: QRectF, label_offset: float, label_width: float) -> QRectF:
        """The bounding rectangle of a frame around `rect` whose label (`label_width` wide at the largest
        size) starts `label_offset` right of its corner (a canvas files frames by it before making them)."""
        h = cls.LABEL_PT * 4 / 3 * cls.MAX_LABEL_BOOST + 8
        right = max(rect.right(), rect.left() + label_offset + label_width)
        return QRectF(rect.left() - 2, rect.top() - h - 2, right - rect.left() + 4, rect.height() + h + 4)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """The frame with room for its label above it (at the largest label size)."""
        if self._bounds is not None and self._bounds[0] == self.label_offset:
            return self._bounds[1]
        rect = self.bounds(self.rect, self.label_offset, self.label_width())
        self._bounds = (self.label_offset, rect)
        return rect

    def paint(self, painter, option, widget=None) -> None:
        """Tinted rounded frame and its label above the top-left corner.

        What a paint draws depends on the zoom only, so it is worked out once per zoom (`_plan`): a pan,
        a still repaint and a player step make a few draw calls per frame and copy the label from a
        pixmap of the screen's pixels (`QPixmapCache`) instead of laying its text out again. A view that
        copies its frames from its static layer's tiles (`STATIC_FROM_TILES`) draws none here."""
        if widget is not None and widget in STATIC_FROM_TILES:
            return
        t = painter.worldTransform()
        plan = self._plan
        theme = self.theme
        if plan is None or plan[0] != (t.m11(), t.m12(), t.m21(), t.m22(), self.label_offset, id(theme),
                                       theme["module"], theme.get("canvas")):
            plan = self._plan = self._make_plan(t, option.levelOfDetailFromTransform(t))
        _key, fill, rects, pies, arcs, sides, side_color, pen, font, box = plan
        seen = option.exposedRect
        # the fill without antialiasing, as rectangles and the four quarter discs of the corners in one path
        # (a rounded path over a large frame costs several times as much; the corners hardly show at this
        # alpha); the rectangles and corners are clipped to the screen by Qt (each draw call costs
        # microseconds even when clipped away: one path for the four corners, not a call per corner)
        smooth = painter.testRenderHint(_SMOOTH)
        painter.setRenderHint(_SMOOTH, False)
        painter.setPen(_NO_PEN)
        painter.setBrush(fill)
        painter.drawRects(rects)
        painter.drawPath(pies)
        # the outline: four straight sides as thin filled rectangles and four corner arcs: the same outline
        # as drawRoundedRect, which strokes the whole path of a large frame (~0.5 ms each at 30 %)
        painter.setBrush(side_color)
        painter.drawRects(sides)
        painter.setRenderHint(_SMOOTH, smooth)
        painter.setPen(pen)
        painter.setBrush(_NO_BRUSH)
        painter.drawPath(arcs)
        if box.intersects(seen):
            self._paint_label(painter, t, font, box)

    def _make_plan(self, t, lod: float) -> tuple:
        """(zoom key, fill colour, fill rectangles, corner discs (a path), corner arcs (a path), outline
        sides, their colour, corner pen, label font, label box) at the transform `t`."""
        color = _color(self.theme["module"])
        r, k = self.rect, min(self.RADIUS, self.rect.width() / 2, self.rect.height() / 2)
        d = 2 * k
        rects = [QRectF(r.left() + k, r.top(), r.width() - 2 * k, r.height()),
                 QRectF(r.left(), r.top() + k, k, r.height() - 2 * k),
                 QRectF(r.right() - k, r.top() + k, k, r.height() - 2 * k)]
        pies, arcs = QPainterPath(), QPainterPath()  # the corners' quarter discs and their outline arcs
        for x, y, start in ((r.left(), r.top(), 90), (r.right() - d, r.top(), 0),
                            (r.left(), r.bottom() - d, 180), (r.right() - d, r.bottom() - d, 270)):
            corner = QRectF(x, y, d, d)
            pies.moveTo(corner.center())
            pies.arcTo(corner, start, 90)
            pies.closeSubpath()
            arcs.arcMoveTo(corner, start)
            arcs.arcTo(corner, start, 90)
        fill = self.fill_color()
        # the outline: thinner than a pixel on screen, a hairline as light as that width (Qt strokes a
        # hairline, clipped to the screen, many times faster than a scaled pen), in the opaque colour that
        # light line gives over the frame's fill
        if 1.5 * lod < 1.0:
            light = max(0.2, 1.5 * lod)
            if fill.alpha() == 255:
                over = zip((fill.redF(), fill.greenF(), fill.blueF()),
                           (color.redF(), color.greenF(), color.blueF()), strict=True)
                pen = QPen(QColor.fromRgbF(*(u + (m - u) * light for u, m in over)), 1.0)
            else:
                pen = QPen(_color(self.theme["module"], round(255 * light)), 1.0)
            pen.setCosmetic(True)
            # one screen pixel wide, a little off centre: centred, a side on a whole pixel (frequent at
            # 30 %, where the layout's round numbers map to whole pixels) had both edges on pixel centres
            # and rounding decided between no pixel and one (a side missing at some scroll positions)
            w = 1.0 / max(lod, 1e-3)
            lead = 0.45 * w
        else:
            pen, w = QPen(color, 1.5), 1.5
            lead = w / 2
        sides = [QRectF(r.left() + k, r.top() - lead, r.width() - 2 * k, w),
                 QRectF(r.left() + k, r.bottom() - lead, r.width() - 2 * k, w),
                 QRectF(r.left() - lead, r.top() + k, w, r.height() - 2 * k),
                 QRectF(r.right() - lead, r.top() + k, w, r.height() - 2 * k)]
        boost = max(1.0, min(self.MAX_LABEL_BOOST, 1.0 / max(lod, 1e-3)))
        font = _boosted(_FRAME_FONT, boost)
        h = _metrics(font).height() + 2
        left = self.rect.left() + self.label_offset + 8
        box = QRectF(left, self.rect.top() - h, self.label_width(boost), h)
        theme = self.theme
        key = (t.m11(), t.m12(), t.m21(), t.m22(), self.label_offset, id(theme), theme["module"],
               theme.get("canvas"))
        return key, fill, rects, pies, arcs, sides, pen.color(), pen, font, box

    def _paint_label(self, painter, t, font: QFont, box: QRectF) -> None:
        """The label in `box`, copied from a pixmap of the screen's pixels drawn once per text, size and
        colour (drawn directly under a rotation or into a vector file)."""
        color = self.theme["module"]
        engine = painter.paintEngine()
        if t.m12() or t.m21() or t.m11() <= 0 or t.m22() <= 0 or engine is None or engine.type() != _RASTER:
            painter.setPen(_color(color))
            draw_text(painter, box, _LABEL_ALIGN, self.label, font)
            return
        ratio = painter.device().devicePixelRatioF() or 1.0
        look = (id(font), t.m11(), t.m22(), ratio, color)
        if self._label_key[0] != look:  # the key is made once per zoom (a string costs microseconds a frame)
            self._label_key = (look, f"frame|{self.label}|{id(font)}|{t.m11():.5f},{t.m22():.5f},{ratio:g}|"
                                     f"{color}")
        key = self._label_key[1]
        pixmap = QPixmapCache.find(key)
        if pixmap is None:
            screen = t.mapRect(box)
            LABELS_DRAWN[0] += 1
            # as wide as the text may be hinted on screen (draw_text never cuts it)
            width = screen.width() + 8 + 0.2 * screen.height()
            pixmap = QPixmap(math.ceil(width * ratio) + 1, math.ceil(screen.height() * ratio) + 1)
            pixmap.fill(Qt.transparent)
            inner = QPainter(pixmap)
            inner.setRenderHints(painter.renderHints())
            inner.scale(t.m11() * ratio, t.m22() * ratio)
            inner.setPen(_color(color))
            draw_text(inner, QRectF(0, 0, box.width(), box.height()), _LABEL_ALIGN, self.label, font)
            inner.end()
            pixmap.setDevicePixelRatio(ratio)
            _ensure_face_cache()
            QPixmapCache.insert(key, pixmap)
        copy_on_pixels(painter, t, box.left(), box.top(), pixmap, ratio)


def draw_quantised(painter, rect: QRectF, key: str, steps: int, draw, kept: list[str]) -> bool:
    """Draw the picture of `rect` (item coordinates) at the zoom step nearest the painter's zoom (steps of
    2^(1/steps)), scaled to the painter's zoom: drawn once per step with `draw(painter, zoom, rect)` into
    a pixmap kept in `QPixmapCache` under `key` and the step (`PICTURES_DRAWN` counts). `kept`: the
    caller's keys in the cache, the most recent last; at most PICTURES_KEPT stay (a picture may be
    screens large: it should not push the cards' faces out). False where it does not apply (a rotated
    view, a vector file, a picture too large): the caller draws directly."""
    t = painter.worldTransform()
    engine, device = painter.paintEngine(), painter.device()
    if t.m12() or t.m21() or t.m11() <= 0 or t.m22() <= 0 or engine is None or device is None \
            or engine.type() != QPaintEngine.Raster:
        return False
    ratio = device.devicePixelRatioF() or 1.0
    step = round(steps * math.log2(t.m11()))
    zoom = 2 ** (step / steps)
    width, height = rect.width() * zoom * ratio, rect.height() * zoom * ratio
    if not 0 < width <= 16384 or not 0 < height <= 16384:
        return False
    key = f"{key}|{step},{ratio:g}"
    pixmap = QPixmapCache.find(key)
    if pixmap is None or pixmap.isNull():
        PICTURES_DRAWN[0] += 1
        pixmap = QPixmap(math.ceil(width) + 1, math.ceil(height) + 1)
        pixmap.fill(Qt.transparent)
        inner = QPainter(pixmap)
        inner.scale(zoom * ratio, zoom * ratio)
        inner.translate(-rect.left(), -rect.top())
        draw(inner, zoom, rect)
        inner.end()
        _ensure_face_cache()
        QPixmapCache.insert(key, pixmap)
    if key in kept:
        kept.remove(key)
    kept.append(key)
    while len(kept) > PICTURES_KEPT:
        QPixmapCache.remove(kept.pop(0))
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    painter.drawPixmap(rect, pixmap, QRectF(0, 0, width, height))
    painter.restore()
    return True


class EdgeLines(NamedTuple):
    """Every edge of a graph as a polyline, in arrays: the points of all edges one after another (`x`, `y`)
    and per edge the index of its first point (`starts`) and its number of points (`counts`, at least 2)."""

    x: np.ndarray
    y: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


class CardBlocks(NamedTuple):
    """Every card of a graph as the overview draws it, in arrays: `index` (display id -> row), `xy` (the
    centres, n x 2), `colors` (the colour names used) and `color` (each card's, an index into `colors`),
    `at` (the step each card's value is known at)."""

    index: Mapping[str, int]
    xy: np.ndarray
    colors: list[str]
    color: np.ndarray
    at: np.ndarray


def draw_rects(painter: QPainter, rects: np.ndarray) -> None:
    """Draw the rectangles of an n x 4 array of (x, y, width, height) in one call, without a QRectF object
    per rectangle: QPainter reads them from the array's memory (which has QRectF's layout: four doubles)."""
    rects = np.ascontiguousarray(rects, dtype=np.float64)
    if len(rects):
        painter.drawRects(shiboken6.wrapInstance(rects.ctypes.data, QRectF), len(rects))


def polyline_path(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> QPainterPath:
    """One path of polylines (a move to the first point of each, lines to the others): `x` and `y` all the
    points one polyline after another, `counts` the points of each. Read from Qt's stream format of a path
    (a count, then per element its type, x and y; a moveTo is type 0 and a lineTo type 1), which
    an array pass writes: the same path as moveTo/lineTo calls, without a Python call per point."""
    n = len(x)
    path = QPainterPath()
    if not n:
        return path
    data = np.empty(n, dtype=[("type", ">i4"), ("x", ">f8"), ("y", ">f8")])
    data["x"], data["y"] = x, y
    data["type"] = 1
    data["type"][np.cumsum(counts) - counts] = 0
    blob = QByteArray(b"".join((struct.pack(">i", n), data.tobytes(), struct.pack(">ii", 0, 0))))
    stream = QDataStream(blob, QIODevice.OpenModeFlag.ReadOnly)
    stream >> path
    return path


def group_by_cell(cx: np.ndarray, cy: np.ndarray, values: np.ndarray):
    """(cell, its values ascending) for each distinct (`cx`, `cy`) cell (integer arrays, one per value)."""
    order = np.lexsort((values, cy, cx))
    cx, cy, values = cx[order], cy[order], values[order]
    cut = np.flatnonzero((cx[1:] != cx[:-1]) | (cy[1:] != cy[:-1])) + 1
    starts, stops = [0, *cut.tolist()], [*cut.tolist(), len(cx)]
    for s0, s1, x, y in zip(starts, stops, cx[starts].tolist(), cy[starts].tolist(), strict=True):
        yield (x, y), values[s0:s1]


def cells_of_boxes(left: np.ndarray, top: np.ndarray, right: np.ndarray, bottom: np.ndarray,
                   size: float) -> dict[tuple[int, int], np.ndarray]:
    """The boxes (arrays of their sides) filed in the grid cells of side `size` they reach: cell -> the
    numbers of its boxes, ascending. In array passes: a box may reach several cells."""
    if not len(left):
        return {}
    cx0, cx1 = np.floor_divide(left, size).astype(np.int64), np.floor_divide(right, size).astype(np.int64)
    cy0, cy1 = np.floor_divide(top, size).astype(np.int64), np.floor_divide(bottom, size).astype(np.int64)
    rows = cy1 - cy0 + 1
    counts = (cx1 - cx0 + 1) * rows
    which = np.repeat(np.arange(len(left)), counts)
    k = np.arange(len(which)) - np.repeat(np.cumsum(counts) - counts, counts)
    return dict(group_by_cell(cx0[which] + k // rows[which], cy0[which] + k % rows[which], which))


class Overview(QGraphicsItem):
    """The whole graph far zoomed out: module frames as tinted boxes, every edge as one path of straight
    segments, frame labels only where they can be read; its `OverviewBlocks` draws the cards as plain
    coloured blocks over it (`items()`: both).

    Shown instead of the cards, edges and frames (which are hidden) below OVERVIEW_SCALE: a
    separate paint per card costs ~30 µs in Python, while these few batched calls keep a 10,000-node
    graph within a frame. A player step repaints the blocks only: frames and edges stay in their cache.
    Made from arrays (`CardBlocks`, `EdgeLines`) in array passes: no Python call per card or edge.
    """

    LABEL_MIN_PT = 6.5  # frame labels are drawn from this size on screen
    ZOOM_STEPS = 4  # pictures of the frames and edges per doubling of the zoom (a zoom between two: scaled)
    SETTLE_MS = 150  # a zoom gesture has ended when the zoom has not changed for this long

    def __init__(self, blocks: CardBlocks, theme: dict[str, str], frames=(), lines: EdgeLines | None = None):
        """`blocks`: the cards; `frames`: each frame's `FramePlace`; `lines`: the edges' points."""
        super().__init__()
        self.theme = theme
        self.frames = list(frames)
        self.setZValue(-1.5)
        self.setFlag(QGraphicsItem.ItemUsesExtendedStyleOption, True)  # exposedRect: labels culled
        # drawn once per zoom into a pixmap of the screen's pixels: a pan or a repaint of the same zoom
        # (the player's flowing edges, a tooltip) copies it instead of drawing every block again
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.quantised = False  # frames and edges copied from a picture per zoom step (`fit_cache`)
        self._scale: float | None = None  # the zoom of the last paint
        self._settle = QTimer()  # a zoom gesture has ended: one exact repaint
        self._settle.setSingleShot(True)
        self._settle.setInterval(self.SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        _SERIAL[0] += 1
        self._serial = _SERIAL[0]  # names its pictures in QPixmapCache
        self._pictures: list[str] = []  # their keys, the most recent last
        self._rect = QRectF()
        xy = blocks.xy
        if len(xy):
            (x0, y0), (x1, y1) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
            self._rect = QRectF(x0 - CARD_W / 2, y0 - CARD_H / 2, x1 - x0 + CARD_W, y1 - y0 + CARD_H)
        # every frame's rectangle (x, y, width, height) in an array: drawn in one call (`draw_rects`), the
        # labels in view found in one array pass
        self._frame_rects = np.fromiter(chain.from_iterable(f.rect.getRect() for f in self.frames),
                                        dtype=np.float64, count=4 * len(self.frames)).reshape(-1, 4)
        fx, fy, fw, fh = self._frame_rects.T
        if len(fx):
            left, top = float(fx.min()), float(fy.min())
            self._rect = self._rect.united(QRectF(left, top, float((fx + fw).max()) - left,
                                                  float((fy + fh).max()) - top))
        self._frame_sides = np.stack([fx, fy, fx + fw, fy + fh], axis=1)
        # frames and edges filed by grid cell: a paint of part of the graph (a pan, the view's own part when
        # zoomed in) draws those near it, not all. Filed, and each cell's edges made one path, when a paint
        # first needs them: the fitted first paint draws every frame and the path of every edge
        self._lines = lines if lines is not None and len(lines.counts) else None
        self._frame_cells: dict[tuple[int, int], np.ndarray] | None = None
        self._edge_cells: dict[tuple[int, int], np.ndarray] = {}
        self._edges: dict[tuple[int, int] | None, QPainterPath] = {}  # cell (None: all) -> its edges' path
        self.blocks = OverviewBlocks(blocks, theme, self._rect)

    def _filed(self) -> dict[tuple[int, int], np.ndarray]:
        """The frames by grid cell (cell -> frame numbers), and the edges (`_edge_cells`): filed once, by the
        first paint of part of the graph."""
        if self._frame_cells is None:
            fx, fy, right, bottom = self._frame_sides.T
            self._frame_cells = cells_of_boxes(fx, fy, right, bottom, OVERVIEW_CELL)
            if self._lines is not None:
                x, y, starts, _counts = self._lines
                lx, hx = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
                ly, hy = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
                self._edge_cells = cells_of_boxes(lx, ly, hx, hy, OVERVIEW_CELL)
        return self._frame_cells

    def _edge_paths(self, near: list[tuple[int, int]] | None) -> list[QPainterPath]:
        """The paths of the edges of the cells `near` (None: one path of every edge), each made once."""
        if self._lines is None:
            return []
        if near is None:
            if None not in self._edges:
                self._edges[None] = polyline_path(self._lines.x, self._lines.y, self._lines.counts)
            return [self._edges[None]]
        self._filed()
        x, y, starts, counts = self._lines
        paths = []
        for cell in near:
            path = self._edges.get(cell)
            if path is None and cell in self._edge_cells:
                edges = self._edge_cells[cell]
                n = counts[edges]
                # the points of the cell's edges, edge by edge
                points = np.repeat(starts[edges] - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
                path = self._edges[cell] = polyline_path(x[points], y[points], n)
            if path is not None:
                paths.append(path)
        return paths

    def items(self) -> list[QGraphicsItem]:
        """The two items to put on the scene: this one and its blocks."""
        return [self, self.blocks]

    def fit_cache(self, scale: float, screen: QRectF) -> None:
        """Cache the two items' pictures in screen pixels while the graph at `scale` is at most a few
        screens (`screen`: the view's size) large; beyond, Qt's cache of so large an item costs several
        times a fresh paint of the part in view, which the grid keeps cheap."""
        big = self._rect.width() * scale * self._rect.height() * scale > 4 * screen.width() * screen.height()
        mode = QGraphicsItem.NoCache if big else QGraphicsItem.DeviceCoordinateCache
        # while the zoom changes (a paint at another zoom than the last one), where no label can be read,
        # the frames and edges and the blocks are one picture each per zoom step, drawn scaled at the zooms
        # between (a zoom gesture far out copies them instead of stroking every edge again); once the zoom
        # stays, Qt's cache of the exact picture (one repaint SETTLE_MS after the gesture)
        moving = self._scale is not None and scale != self._scale
        self._scale = scale
        self.quantised = moving and not big and not self._labels_at(scale * 2 ** (1 / self.ZOOM_STEPS))
        self.blocks.quantised = self.quantised
        if self.quantised:
            self._settle.start()
        for item in self.items():
            want = QGraphicsItem.NoCache if self.quantised else mode
            if item.cacheMode() != want:
                item.setCacheMode(want)

    def _settled(self) -> None:
        try:
            self.update()
            self.blocks.update()
        except RuntimeError:  # the items left with their scene
            pass

    def _labels_at(self, lod: float) -> bool:
        """Whether frame labels are drawn at `lod` (where they can be read)."""
        return bool(self.frames) and \
            ModuleFrame.LABEL_PT * ModuleFrame.MAX_LABEL_BOOST * lod >= self.LABEL_MIN_PT

    def set_state(self, step: int, current: str | None, selected: str | None) -> None:
        """The player's step, its current card and the selected one: the blocks' colours."""
        self.blocks.set_state(step, current, selected)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """Union of every card and frame."""
        return self._rect

    def paint(self, painter, option, widget=None) -> None:
        """Frames and edges, each in one call; labels of frames in view when readable. While `quantised`,
        copied from a picture of the whole graph at the nearest zoom step (steps of 2^(1/ZOOM_STEPS)),
        drawn once per step (`PICTURES_DRAWN` counts). A view that copies it from its static layer's tiles
        (`STATIC_FROM_TILES`: far out on a large graph) draws nothing here."""
        if widget is not None and widget in STATIC_FROM_TILES:
            return
        theme = self.theme
        key = f"overview{self._serial}|{id(theme)}{theme['module']}{theme['edge']}"
        if not self.quantised or not draw_quantised(painter, self._rect, key, self.ZOOM_STEPS, self._paint,
                                                    self._pictures):
            lod = option.levelOfDetailFromTransform(painter.worldTransform())
            self._paint(painter, lod, option.exposedRect)

    def _paint(self, painter, lod: float, exposed: QRectF) -> None:
        """Frames, edges and readable labels of the part `exposed` at level of detail `lod`."""
        painter.setRenderHint(_SMOOTH, False)
        module = QColor(self.theme["module"])
        if self.frames:
            fill = QColor(module)
            fill.setAlpha(22)
            # a hairline at any zoom, the module colour 43% over the canvas (full colour would outweigh the
            # cards); mixed here since an opaque hairline strokes ~8x faster than a translucent one
            canvas, k = QColor(self.theme["canvas"]), 110 / 255
            outline = QColor(round(module.red() * k + canvas.red() * (1 - k)),
                             round(module.green() * k + canvas.green() * (1 - k)),
                             round(module.blue() * k + canvas.blue() * (1 - k)))
            pen = QPen(outline, 1.0)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(fill)
            near = overview_cells(exposed, self._rect)
            if near is None:
                draw_rects(painter, self._frame_rects)
            else:
                cells = self._filed()
                shown = [cells[cell] for cell in near if cell in cells]
                if shown:
                    draw_rects(painter, self._frame_rects[np.unique(np.concatenate(shown))])
        pen = QPen(QColor(self.theme["edge"]), 1.0)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        near = overview_cells(exposed, self._rect)
        for path in self._edge_paths(near):
            painter.drawPath(path)
        boost = ModuleFrame.MAX_LABEL_BOOST
        if self._labels_at(lod):
            font = _boosted(_FRAME_FONT, boost)
            painter.setFont(font)
            painter.setPen(module)
            h = _metrics(font).height() + 2
            left, top, right, bottom = self._frame_sides.T
            near = np.flatnonzero((bottom >= exposed.top()) & (top - h <= exposed.bottom())
                                  & (right >= exposed.left()) & (left <= exposed.right()))
            for i in near.tolist():
                f = self.frames[i]
                r = f.rect
                painter.drawText(QRectF(r.left() + f.label_offset + 8, r.top() - h, f.label_width(boost), h),
                                 Qt.AlignLeft | Qt.AlignBottom, f.label)


class OverviewBlocks(QGraphicsItem):
    """The cards of the overview as plain blocks, one call per colour: the kind's colour once the value is
    known, grey before; the selected and the current card in their own colours.

    The blocks of each colour are sorted by the step their value is known at, so the blocks shown at a
    step are a prefix of that list: a player step finds them by bisection, not by visiting every card.
    The blocks are rows of arrays (`draw_rects`): no QRectF object per card.
    """

    def __init__(self, blocks: CardBlocks, theme: dict[str, str], rect: QRectF):
        super().__init__()
        self.theme = theme
        self._rect = QRectF(rect)
        self.setZValue(-1.4)
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)  # redrawn per zoom and per player step
        self.quantised = False  # copied from a picture per zoom step (set with its overview's)
        _SERIAL[0] += 1
        self._serial = _SERIAL[0]  # names its pictures in QPixmapCache
        self._pictures: list[str] = []  # their keys, the most recent last
        self.setFlag(QGraphicsItem.ItemUsesExtendedStyleOption, True)  # exposedRect: blocks culled by cell
        self._where = _BlockRects(blocks.index, blocks.xy)  # display id -> its block, made when asked for
        # per grid cell: (colour, steps ascending, the blocks in that order as an n x 4 array) per colour,
        # the colours in the order the cards first show them, a colour's blocks by step, then x, then y
        self._cells: dict[tuple[int, int], list[tuple[str, np.ndarray, np.ndarray]]] = {}
        xy, at, color = blocks.xy, blocks.at, blocks.color
        n = len(xy)
        if n:
            cx, cy = (np.floor_divide(xy, OVERVIEW_CELL).astype(np.int64).T)
            order = np.lexsort((xy[:, 1], xy[:, 0], at, color, cy, cx))
            rects = np.empty((n, 4), dtype=np.float64)
            rects[:, 0], rects[:, 1] = xy[order, 0] - CARD_W / 2, xy[order, 1] - CARD_H / 2
            rects[:, 2], rects[:, 3] = CARD_W, CARD_H
            keys = np.stack([cx[order], cy[order], color[order]], axis=1)
            cut = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
            steps = at[order]
            for s0, s1 in zip([0, *cut.tolist()], [*cut.tolist(), n], strict=True):
                x, y, c = keys[s0].tolist()
                self._cells.setdefault((x, y), []).append((blocks.colors[c], steps[s0:s1], rects[s0:s1]))
        self.state: tuple[int, str | None, str | None] = (0, None, None)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """Union of every card and frame."""
        return self._rect

    CHANGED_MAX = 64  # a step that recolours more blocks than this repaints the item whole

    def set_state(self, step: int, current: str | None, selected: str | None) -> None:
        """Colour the blocks for `step` (repainted only when something changed: a player step that
        recolours a few blocks repaints only those, so the cached picture is redrawn there only)."""
        old = self.state
        if (step, current, selected) == old:
            return
        self.state = (step, current, selected)
        changed = self._changed(old[0], step)
        if changed is None:
            self.update()
            return
        for did in {old[1], old[2], current, selected} - {None}:
            if did in self._where:
                changed.append(self._where[did])
        for rect in changed:
            self.update(rect)

    def _changed(self, old: int, new: int) -> list[QRectF] | None:
        """The blocks whose colour differs between steps `old` and `new` (known at a step between them), or
        None when more than CHANGED_MAX."""
        low, high = min(old, new), max(old, new)
        out: list[QRectF] = []
        for groups in self._cells.values():
            for _color, steps, rects in groups:
                a, b = np.searchsorted(steps, (low, high), side="right").tolist()
                if b - a + len(out) > self.CHANGED_MAX:
                    return None
                out.extend(QRectF(*r) for r in rects[a:b].tolist())
        return out

    def paint(self, painter, option, widget=None) -> None:
        """Each colour's blocks in one call, then the selected and the current card over them; while
        `quantised` (as its overview), copied from a picture per zoom step and player state."""
        theme, (step, current, selected) = self.theme, self.state
        key = f"blocks{self._serial}|{step},{current},{selected}|{id(theme)}{theme['card_border']}"
        if not self.quantised or not draw_quantised(painter, self._rect, key, Overview.ZOOM_STEPS,
                                                    self._paint, self._pictures):
            self._paint(painter, 1.0, option.exposedRect)

    def _paint(self, painter, _lod: float, exposed: QRectF) -> None:
        """The blocks in `exposed`."""
        painter.setRenderHint(_SMOOTH, False)
        painter.setPen(Qt.NoPen)
        step, current, selected = self.state
        pending = QColor(self.theme["card_border"])
        near = overview_cells(exposed.adjusted(-CARD_W, -CARD_H, CARD_W, CARD_H), self._rect)
        cells = self._cells.values() if near is None else filter(None, map(self._cells.get, near))
        for color, steps, rects in (group for groups in cells for group in groups):
            k = int(np.searchsorted(steps, step, side="right"))
            if k:
                painter.setBrush(QColor(color))
                draw_rects(painter, rects[:k])
            if k < len(rects):
                painter.setBrush(pending)
                draw_rects(painter, rects[k:])
        for did, color in ((selected, "selected"), (current, "current")):
            if did in self._where:
                painter.setBrush(QColor(self.theme[color]))
                painter.drawRect(self._where[did])


class _BlockRects(Mapping):
    """Display id -> the rectangle of its overview block, made when asked for (a paint asks for two)."""

    def __init__(self, index: Mapping[str, int], xy: np.ndarray):
        self.index, self.xy = index, xy

    def __getitem__(self, did: str) -> QRectF:
        x, y = self.xy[self.index[did]].tolist()
        return QRectF(x - CARD_W / 2, y - CARD_H / 2, CARD_W, CARD_H)

    def __contains__(self, did) -> bool:
        return did in self.index

    def __iter__(self):
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)


OVERVIEW_CELL = 8192.0  # side of the grid cells the overview files its frames, edges and blocks in


def overview_cells(rect: QRectF, whole: QRectF | None = None) -> list[tuple[int, int]] | None:
    """The overview's grid cells under `rect`; None when `rect` holds all of `whole` (draw everything)."""
    if whole is not None and rect.contains(whole):
        return None
    return cells_between(rect.left(), rect.top(), rect.right(), rect.bottom())


def cells_between(left: float, top: float, right: float, bottom: float) -> list[tuple[int, int]]:
    """The overview's grid cells under the scene rectangle with these sides (plain floats: no QRectF)."""
    ax, bx = int(left // OVERVIEW_CELL), int(right // OVERVIEW_CELL)
    ay, by = int(top // OVERVIEW_CELL), int(bottom // OVERVIEW_CELL)
    if ax == bx and ay == by:  # most edges and cards
        return [(ax, ay)]
    return [(cx, cy) for cx in range(ax, bx + 1) for cy in range(ay, by + 1)]
