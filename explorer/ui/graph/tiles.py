"""The static layer of the graph canvas: module frames and edge bundles, copied from tiles.

Frames and edge bundles are the lowest items of the canvas and never change with the player's step, the
selection or the flowing edges; only the zoom, a rebuild (new trace, module expanded, theme, rewrap) or
items put on a lazy canvas change them. Dense parts of a 10,000-node graph at 30 % show ~70 frames and
~20 bundles of ~1,000 curves: drawn on every frame that is most of a pan's time. `StaticLayer` draws them
once per zoom into tiles of TILE x TILE screen pixels over the canvas colour and a paint of the view copies
the tiles instead (`GraphView.drawBackground`); the items themselves skip their paint in that view
(`items.STATIC_FROM_TILES`), while they stay on the scene for tooltips, hit tests and file rendering. A
pan draws only the tiles it newly exposes (and the ring of tiles around the view is drawn ahead while the
application is idle); a still repaint and a player step draw none. While the zoom changes, and at the first
paint after a jump, the items paint themselves (tiles drawn for one frame would cost more); the tiles
follow a moment later.

The tiles are aligned to whole device pixels of the view's transform (a tile's content is the view's own
rendering scrolled by whole pixels), so what the user sees is what a direct paint gives, but for the
antialiasing of a few edge pixels that differs between two scroll positions of a direct paint too.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRect, QRectF, Qt, QTimer
from PySide6.QtGui import QPaintEngine, QPainter, QPixmap, QRegion, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from explorer.ui.graph import items as graph_items
from explorer.ui.graph.items import EdgeBundle, ModuleFrame, Overview

TILE = 256  # side of a tile in the view's (logical) pixels
MAX_TILES = 160  # tiles kept per view at device ratio 1 (~40 MB; a quarter as many at ratio 2); beyond,
#                  those farthest from the view go
AHEAD = 1  # tiles drawn ahead of a pan on every side of the view, while the application is idle
AHEAD_CELLS = 2  # grid cells of a lazy canvas put on the scene per idle turn (each a few ms of cards made)
SETTLE_MS = 120  # a zoom gesture has ended when the zoom has not changed for this long
FACES_PER_PAINT = 40  # card faces drawn sharp per paint once a zoom gesture settled (each ~0.2 ms)
TILES_DRAWN = [0]  # tiles drawn anew so far (a counter tests can read)
STATIC_PAINTS = [0]  # frame and edge-bundle paints into tiles (or where scaled tiles leave a gap) so far
SCALED_TILES = [0]  # tiles copied scaled (during zoom gestures) so far
MIN_SCALED = 0.25  # during a zoom gesture the last tiles are shown scaled down to this and up to its inverse

_RASTER = QPaintEngine.Type.Raster
_SOLID = Qt.BrushStyle.SolidPattern
_BY_RECT = Qt.ItemSelectionMode.IntersectsItemBoundingRect
_ASCENDING = Qt.SortOrder.AscendingOrder
_SMOOTH_PIXMAPS = QPainter.RenderHint.SmoothPixmapTransform
_NO_CACHE = QGraphicsItem.CacheMode.NoCache


def is_static(item) -> bool:
    """Whether `item` belongs to the static layer (drawn from tiles)."""
    return isinstance(item, (ModuleFrame, EdgeBundle, Overview))


def overview_tiled(scene) -> bool:
    """Whether the static layer draws `scene`'s overview (frames and edges far out) from tiles now: while the
    overview is shown and larger than Qt's own cache of its picture suits (`Overview.fit_cache`)."""
    overview = getattr(scene, "overview", None) if getattr(scene, "overview_mode", False) else None
    return overview is not None and overview.cacheMode() == _NO_CACHE and not overview.quantised


def paint_static(painter: QPainter, scene, area: QRectF, t: QTransform) -> None:
    """Paint the visible frames and bundles of `scene` that meet `area` (scene coordinates) with `painter`,
    the scene mapped by `t`, each item told which part of it is exposed (STATIC_PAINTS counts them)."""
    option = QStyleOptionGraphicsItem()
    for item in scene.items(area, _BY_RECT, _ASCENDING):
        if not is_static(item) or not item.isVisible():
            continue
        painter.setWorldTransform(item.sceneTransform() * t)
        option.exposedRect = item.mapRectFromScene(area).intersected(item.boundingRect())
        STATIC_PAINTS[0] += 1
        item.paint(painter, option, None)


class StaticLayer:
    """Tiles of a view's frames and edge bundles at its current zoom (see the module's docstring)."""

    def __init__(self, view, reach: float = 0.0) -> None:
        """`reach`: how far (scene units) an item filed in one cell of a lazy canvas may reach out of it:
        the items around the tiles are put on the scene that much farther out before they are drawn."""
        self.view = view
        self.reach = reach
        self.enabled = True  # False: frames and bundles paint themselves as items (an A/B switch)
        self._key: tuple | None = None  # what the tiles were drawn for: zoom, pixel phase, ratio, scene
        self._tiles: dict[tuple[int, int], QPixmap] = {}
        self._viewport = view.viewport()  # the widget the items skip their paint in (kept: PySide wrapper)
        self._zoom: tuple[float, float] | None = None  # the zoom of the last paint
        # while the zoom changes (a zoom gesture: each frame at another zoom) the items paint themselves,
        # since tiles drawn for one frame only would cost more than that paint; once the zoom has stayed
        # for SETTLE_MS, a repaint draws the tiles, so the pans and steps after it copy them
        self._settle = QTimer(view)  # dies with the view: no timeout reaches a deleted one
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        # the ring of AHEAD tiles around the view is drawn while the application is idle, one side per
        # turn of the event loop, the side the view moves to first: a pan then copies tiles it finds drawn
        self._ahead = QTimer(view)
        self._ahead.setSingleShot(True)
        self._ahead.setInterval(0)
        self._ahead.timeout.connect(self._draw_ahead)
        self._origin: tuple[int, int] | None = None  # the grid origin of the last paint
        self._moving = False  # the last paint was at another zoom than the one before (a zoom gesture)
        self._sharpen = False  # cards may still show scaled faces from the last gesture
        self._copies = 0  # SCALED_COPIES before the last paint
        self._heading = (0, 0)  # the direction of the last pan, in tiles' columns and rows

    def clear(self) -> None:
        """Drop every tile (the next paint draws those it shows anew)."""
        self._tiles.clear()

    def invalidate(self, scene_rect: QRectF) -> None:
        """Drop the tiles that show part of `scene_rect` (an item put on the scene there)."""
        if not self._tiles or self._key is None:
            return
        t, ox, oy = self._key[-1]
        r = t.mapRect(scene_rect)
        i0, i1 = math.floor((r.left() - ox - 2) / TILE), math.floor((r.right() - ox + 2) / TILE)
        j0, j1 = math.floor((r.top() - oy - 2) / TILE), math.floor((r.bottom() - oy + 2) / TILE)
        for cell in [c for c in self._tiles if i0 <= c[0] <= i1 and j0 <= c[1] <= j1]:
            del self._tiles[cell]

    @property
    def sharpening(self) -> bool:
        """Whether cards may still show a face scaled from another zoom (drawn sharp over the next paints,
        which are asked for after each paint)."""
        return self._moving or self._sharpen

    @property
    def drawing_ahead(self) -> bool:
        """Whether tiles around the view are still to be drawn ahead (at the next idle turns)."""
        return self._ahead.isActive()

    def take_added(self, scene) -> None:
        """Drop the tiles under the frames and bundles put on `scene` since the last call."""
        for item in scene.static_added:
            self.invalidate(item.sceneBoundingRect())
        scene.static_added.clear()

    def region(self, t: QTransform, viewport: QRectF) -> QRectF | None:
        """The scene rectangle of the whole tiles under `viewport` at the view transform `t` and of the
        ring drawn ahead (what must be on a lazy canvas's scene before they are drawn), or None when tiles
        do not apply."""
        grid = self._grid(t)
        if grid is None:
            return None
        ox, oy = grid
        i0, i1, j0, j1 = self._span(viewport, ox, oy)
        i0, i1, j0, j1 = i0 - AHEAD, i1 + AHEAD, j0 - AHEAD, j1 + AHEAD
        inverse, ok = t.inverted()
        if not ok:
            return None
        r = self.reach
        return inverse.mapRect(QRectF(i0 * TILE + ox, j0 * TILE + oy, (i1 - i0 + 1) * TILE,
                                      (j1 - j0 + 1) * TILE)).adjusted(-r, -r, r, r)

    def paint(self, painter: QPainter, exposed: QRectF) -> bool:
        """Copy the tiles under the scene rectangle `exposed` (drawing the missing ones first) with the
        painter at the view's transform. False where tiles do not apply (a rotated view, a vector device,
        a canvas brush that is not one colour, the overview): the items paint themselves then."""
        scene = self.view.scene()
        t = painter.worldTransform()
        engine, device = painter.paintEngine(), painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 0.0
        brush = scene.backgroundBrush() if scene is not None else None
        grid = self._grid(t)
        zoom, self._zoom = self._zoom, (t.m11(), t.m22())  # the zoom of the last paint, and of this one
        origin, self._origin = self._origin, grid  # ... and the view's place
        if grid is None or not self.enabled or scene is None or engine is None or engine.type() != _RASTER \
                or ratio != round(ratio) or ratio < 1 or brush.style() != _SOLID \
                or (getattr(scene, "overview_mode", False) and not overview_tiled(scene)):
            self._skip(False)
            self._faces(False)
            self._sharpen = self._moving = False
            return False
        ox, oy = grid
        key = (t.m11(), t.m22(), round(t.dx() - ox, 6), round(t.dy() - oy, 6), ratio, id(scene),
               getattr(scene, "generation", 0), brush.color().rgba(), painter.renderHints(),
               getattr(scene, "overview_mode", False), (t, ox, oy))
        # a zoom gesture: each paint at another zoom than the last one (a paint at the same zoom, such as the
        # settle repaint SETTLE_MS after the last change, draws the sharp tiles)
        moving = self._moving = zoom != key[:2]
        if moving:
            self._settle.start()
        # during a gesture the cards copy a face of another zoom, scaled; once it settled, the paints draw
        # FACES_PER_PAINT sharp faces each (and ask for another paint while scaled ones are left)
        self._faces(moving or self._sharpen)
        graph_items.FACE_BUDGET[0] = 0 if moving else FACES_PER_PAINT
        self._copies = graph_items.SCALED_COPIES[0]
        if self._key is None or key[:-1] != self._key[:-1]:
            if moving:  # a new zoom (a gesture): the tiles of the last zoom scaled, sharp ones once it stays
                scaled = self._paint_scaled(painter, exposed, scene, key, brush.color())
                self._skip(scaled)
                return scaled
            self._tiles.clear()
        self._key = key
        screen = t.mapRect(exposed)
        i0, i1, j0, j1 = self._span(screen, ox, oy)
        missing = [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1) if (i, j) not in self._tiles]
        if 2 * len(missing) > (i1 - i0 + 1) * (j1 - j0 + 1) and origin != grid:
            # a jump (find, the minimap, a first paint): most tiles missing. Drawing them costs more than
            # this one paint of the items; they are drawn at the next idle turn (or the next paint here)
            self._settle.start()
            self._ahead.start()
            self._skip(False)
            return False
        if missing:
            self._draw(scene, painter.renderHints(), t, ox, oy, ratio, brush.color(), missing)
        # the copies at whole pixels, with no transform (each tile's pixels land on the screen's pixels)
        painter.save()
        painter.resetTransform()
        tiles = self._tiles
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                painter.drawPixmap(i * TILE + ox, j * TILE + oy, tiles[(i, j)])
        painter.restore()
        size = self._viewport.size()  # at least the view's tiles and the ring around them stay
        ring = (size.width() // TILE + 2 + 2 * AHEAD) * (size.height() // TILE + 2 + 2 * AHEAD)
        keep = max(ring, MAX_TILES // int(ratio) ** 2)
        if len(tiles) > keep:
            ci, cj = (i0 + i1) / 2, (j0 + j1) / 2
            far = sorted(tiles, key=lambda c: -max(abs(c[0] - ci), abs(c[1] - cj)))
            for cell in far[:len(tiles) - keep]:
                del tiles[cell]
        self._skip(True)
        if origin is not None and origin != grid:
            self._heading = ((ox < origin[0]) - (ox > origin[0]), (oy < origin[1]) - (oy > origin[1]))
        if not self._ahead.isActive():
            self._ahead.start()
        return True

    # -- private -----------------------------------------------------------------------------

    @staticmethod
    def _grid(t: QTransform) -> tuple[int, int] | None:
        """The whole-pixel origin of the tile grid at `t` (the translation's integer part), or None."""
        if t.m12() or t.m21() or t.m11() <= 0 or t.m22() <= 0 or t.isRotating():
            return None
        return math.floor(t.dx()), math.floor(t.dy())

    @staticmethod
    def _span(screen: QRectF, ox: int, oy: int) -> tuple[int, int, int, int]:
        """First and last tile column and row that cover the view rectangle `screen`."""
        return (math.floor((screen.left() - ox) / TILE), math.floor((screen.right() - ox - 1e-6) / TILE),
                math.floor((screen.top() - oy) / TILE), math.floor((screen.bottom() - oy - 1e-6) / TILE))

    def _draw_ahead(self) -> None:
        """Draw one side of the ring of tiles around the view (and ask for another turn while sides are
        missing), when the view still shows what the tiles were drawn for."""
        try:
            view = self.view
            scene, t, screen = view.scene(), view.viewportTransform(), QRectF(view.viewport().rect())
        except RuntimeError:  # the view is gone
            return
        key, grid = self._key, self._grid(t)
        if key is None or grid is None or scene is None or not self.enabled or key[5] != id(scene) \
                or getattr(scene, "overview_mode", False) != key[9] \
                or getattr(scene, "generation", 0) != key[6] or (key[9] and not overview_tiled(scene)):
            return
        ox, oy = grid
        if (t.m11(), t.m22(), round(t.dx() - ox, 6), round(t.dy() - oy, 6)) != key[:4]:
            return
        i0, i1, j0, j1 = self._span(screen, ox, oy)
        rows, columns = range(j0 - AHEAD, j1 + AHEAD + 1), range(i0, i1 + 1)
        sides = {(-1, 0): [(i, j) for i in range(i0 - AHEAD, i0) for j in rows],
                 (1, 0): [(i, j) for i in range(i1 + 1, i1 + AHEAD + 1) for j in rows],
                 (0, -1): [(i, j) for i in columns for j in range(j0 - AHEAD, j0)],
                 (0, 1): [(i, j) for i in columns for j in range(j1 + 1, j1 + AHEAD + 1)]}
        hx, hy = self._heading
        order = sorted(sides, key=lambda side: -(side[0] * hx + side[1] * hy))  # where the view goes first
        todo = [side for side in order if any(c not in self._tiles for c in sides[side])]
        # the items of a lazy canvas come on the scene two tiles farther ahead where the view goes (made
        # now, while idle, rather than in the paint that reaches them: a paint only adds what is missing)
        region = self.region(t, screen)
        if (hx or hy) and region is not None:
            x, y = 2 * TILE / t.m11(), 2 * TILE / t.m22()
            region = region.adjusted(min(0, hx) * x, min(0, hy) * y, max(0, hx) * x, max(0, hy) * y)
        if region is not None and not scene.show_region(region, AHEAD_CELLS):
            self.take_added(scene)  # (more cells of the ring at the next turns: one turn stays short)
            self._ahead.start()
            return
        if getattr(scene, "static_added", None):  # cells came on the scene at this turn: tiles at the next
            self.take_added(scene)
            self._ahead.start()
            return
        view_missing = [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)
                        if (i, j) not in self._tiles]
        if view_missing:  # after a jump: the view's own tiles first, the ring at the next turns
            self._draw(scene, key[8], t, ox, oy, key[4], scene.backgroundBrush().color(), view_missing)
            self._ahead.start()
            return
        if not todo:
            return
        missing = [c for c in sides[todo[0]] if c not in self._tiles]
        if missing:
            self._draw(scene, key[8], t, ox, oy, key[4], scene.backgroundBrush().color(), missing)
        if len(todo) > 1:
            self._ahead.start()

    def _settled(self) -> None:
        """The zoom stayed (or the view stayed after a jump): put the items around the tiles on a lazy
        canvas's scene now, while idle, and repaint (which draws the tiles from them)."""
        try:
            view = self.view
            scene = view.scene()
            region = self.region(view.viewportTransform(), QRectF(view.viewport().rect()))
            if scene is not None and region is not None and self.enabled and not self._ahead.isActive() \
                    and not getattr(scene, "overview_mode", False) and hasattr(scene, "show_region"):
                # (the rest while idle: `_draw_ahead`, which does all of it when it is due at this turn too:
                # two timers due together run in one turn)
                scene.show_region(region, AHEAD_CELLS)
            view.viewport().update()
        except RuntimeError:  # the view is gone
            pass

    def after_paint(self) -> None:
        """After a paint of the view: while cards still show a scaled face once the gesture settled, ask
        for another paint at the next turn (which draws the next FACES_PER_PAINT sharp faces)."""
        scaled = graph_items.SCALED_COPIES[0] != self._copies
        self._copies = graph_items.SCALED_COPIES[0]
        if self._moving:
            self._sharpen = True
        elif self._sharpen:
            self._sharpen = scaled
            if scaled:
                QTimer.singleShot(0, self._viewport, self._viewport.update)

    def _faces(self, scaled: bool) -> None:
        """Let the cards of this view copy a face drawn at another zoom, scaled, where their face at this
        zoom is not drawn yet (during a zoom gesture; the settle repaint draws the sharp ones)."""
        views = graph_items.SCALED_FACES
        if scaled and self._viewport not in views:
            views.append(self._viewport)
        elif not scaled and self._viewport in views:
            views.remove(self._viewport)

    def _paint_scaled(self, painter: QPainter, exposed: QRectF, scene, key: tuple, canvas) -> bool:
        """During a zoom gesture: the tiles drawn at the last zoom the view stayed at, scaled to this
        paint's zoom (as a map does while it zooms), and the frames and bundles painted directly only
        where no tile covers the view (zoomed out past the tiles). False where no tile of the same scene
        and look would show (the items paint themselves then)."""
        old = self._key
        if old is None or not self._tiles or old[4:10] != key[4:10]:
            return False
        t = painter.worldTransform()
        t_old, ox, oy = old[-1]
        zoom = t.m11() / t_old.m11()
        if not MIN_SCALED <= zoom <= 1 / MIN_SCALED:
            return False
        inverse_old, ok = t_old.inverted()
        m = inverse_old * t  # the old view's pixels -> this view's pixels
        inverse_m, ok_m = m.inverted()
        if not ok or not ok_m:
            return False
        screen = t.mapRect(exposed).intersected(QRectF(self._viewport.rect()))
        if screen.isEmpty():
            return False
        i0, i1, j0, j1 = self._span(inverse_m.mapRect(screen), ox, oy)
        shown = [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1) if (i, j) in self._tiles]
        if not shown:
            return False
        painter.save()
        painter.resetTransform()
        painter.fillRect(screen, canvas)
        painter.setTransform(m)
        # nearest pixels, no antialiased edges: smoothed tiles show their seams as faint lines
        painter.setRenderHint(_SMOOTH_PIXMAPS, False)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        block = QRegion()  # the tiles' pixels at the old zoom (whole rectangles where they meet)
        for i, j in shown:
            x, y = i * TILE + ox, j * TILE + oy
            painter.drawPixmap(x, y, self._tiles[(i, j)])
            block += QRect(x, y, TILE, TILE)
        SCALED_TILES[0] += len(shown)
        covered = QRegion()  # ... and the whole pixels on screen they cover
        for rect in block:
            r = m.mapRect(QRectF(rect))
            left, top = math.ceil(r.left()), math.ceil(r.top())
            covered += QRect(left, top, math.floor(r.right()) - left, math.floor(r.bottom()) - top)
        rest = QRegion(screen.toAlignedRect()) - covered
        painter.restore()
        # zoomed out past the tiles: the frames and bundles there painted directly, one side at a time (the
        # rest is a ring around the tiles: its bounding box would be the whole view)
        inverse, _ok = t.inverted()
        for part in rest:
            painter.save()
            painter.resetTransform()
            painter.setClipRect(part)
            painter.setRenderHints(key[8])
            paint_static(painter, scene, inverse.mapRect(QRectF(part)), t)
            painter.restore()
        return True

    def _skip(self, on: bool) -> None:
        """Make the frames and bundles skip (or not) their own paint in this view."""
        skip = graph_items.STATIC_FROM_TILES
        if on and self._viewport not in skip:
            skip.append(self._viewport)
        elif not on and self._viewport in skip:
            skip.remove(self._viewport)

    def _draw(self, scene, hints, t: QTransform, ox: int, oy: int, ratio: float, canvas,
              missing: list[tuple[int, int]]) -> None:
        """Draw the `missing` tiles: their bounding block of tiles in one picture, then cut into tiles."""
        i0, i1 = min(c[0] for c in missing), max(c[0] for c in missing)
        j0, j1 = min(c[1] for c in missing), max(c[1] for c in missing)
        left, top = i0 * TILE + ox, j0 * TILE + oy
        width, height = (i1 - i0 + 1) * TILE, (j1 - j0 + 1) * TILE
        r = int(ratio)
        picture = QPixmap(width * r, height * r)
        picture.setDevicePixelRatio(ratio)
        picture.fill(canvas)
        # the view's transform shifted by whole pixels: the picture's (0, 0) is the view's (left, top)
        base = QTransform(t.m11(), 0, 0, t.m22(), t.dx() - left, t.dy() - top)
        inverse, _ok = t.inverted()
        area = inverse.mapRect(QRectF(left, top, width, height))
        inner = QPainter(picture)
        inner.setRenderHints(hints)
        paint_static(inner, scene, area, base)
        inner.end()
        for i, j in missing:
            x, y = (i - i0) * TILE * r, (j - j0) * TILE * r
            tile = picture.copy(QRect(x, y, TILE * r, TILE * r))
            tile.setDevicePixelRatio(ratio)
            self._tiles[(i, j)] = tile
            TILES_DRAWN[0] += 1
