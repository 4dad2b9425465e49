"""The graph canvas: a Trace drawn as cards and edges, replayed step by step.

`GraphScene` turns a Trace (optionally with modules collapsed by `explorer.core.graph.layout.collapse`) into
items and knows which values and gradients are visible at each step of the timeline; `GraphView` is
the interactive QGraphicsView around it (zoom, pan, fit, selection, keyboard navigation, module
expansion). `explorer.ui.graph.render` uses the same scene to render files without a window.
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain, repeat
from operator import itemgetter

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QLineEdit, QToolTip, QWidget

from explorer.core.graph.display import (
    CARD_H,
    CARD_W,
    FRAME_PAD,
    DisplayModel,
    best_bands,
    build_display,
    card_arrays,
    fit_bands,
    set_bands,
    xy_array,
)
from explorer.core.speed import no_gc
from explorer.ui.common import theme as themes
from explorer.ui.graph import memory
from explorer.ui.graph.items import (
    NAME_LOD,
    CardBlocks,
    EdgeBundle,
    EdgeLines,
    FlowEdge,
    FramePlace,
    ModuleFrame,
    NodeCard,
    Overview,
    accent_codes,
    cells_of_boxes,
    edge_geometry,
    frame_label_width,
    group_by_cell,
    split_cubic,
)
from explorer.ui.graph.tiles import StaticLayer

EDGE_PIECE = 512.0  # a long curve is drawn in pieces about this wide: a view strokes only the pieces it shows
OVERVIEW_SCALE = 0.3  # view scale under which cards are drawn as one batch of blocks
MIN_FIT_SCALE = 0.32  # Fit never goes below this for READABLE_CARDS cards: names stay readable ...
READABLE_CARDS = 200  # ... (the view scrolls, with a minimap, instead)
ASYNC_EXPAND_CARDS = 1500  # a view builds a bigger graph's model after an expand on a Worker (~0.4 s at 10k)
REWRAP_CARDS = 600  # graphs up to this size re-wrap their rows when the canvas changes shape
READABLE_ZOOM = NAME_LOD * 1.05  # Fit wraps a short graph into rows when that lifts it to this zoom, where
# cards draw their values and gradients (a little above NAME_LOD, so rounding never loses them)
MAX_FIT_SCALE = 1.25  # Fit enlarges a small graph to fill the canvas, up to this zoom
CARDS_MADE = [0]  # node cards created so far (a test checks that expanding a module makes only its own)
FRAMES_MADE = [0]  # module frame items created so far (a lazy canvas makes those near the view only)
LAZY_CARDS = 1000  # a canvas with more cards than this makes them (and adds its frames) only near the view
CELL = 1024.0  # side of a cell of the grid that finds the cards and frames near the view (scene pixels)
MAX_LIVE_CELLS = 48  # cells whose items stay in the scene; beyond, those far from the view are taken out
SCENE_MARGIN = 60.0  # free scene pixels above and below the cards (the scene rectangle's margin; room for
#                      the legend along the canvas's bottom edge)
SCENE_MARGIN_X = 30.0  # ... and left and right of them (a narrow canvas draws the graph larger)


class LabelShelf:
    """Places frame labels: the labels of frames that start at one corner go side by side.

    A label starting at x moves right past every label already placed whose frame starts at or left of
    x (within a pixel), whose label reaches beyond x and whose frame's top is within `BAND` pixels of
    this one's (in the order of their starts). Placed labels are kept in buckets by band and by x, so
    one placement looks at the few labels near its corner, not at every frame in the band.
    """

    BAND = 60.0
    BUCKET = 256.0

    def __init__(self) -> None:
        self._cells: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
        self.looked_at = 0  # labels compared so far (the complexity test counts them)

    def place(self, left: float, top: float, width: float) -> float:
        """The offset from `left` of a new label `width` wide on a frame at (`left`, `top`); records it."""
        near, cells = self.BAND, self._cells
        band = int(top // near)
        start, last = left, None
        while True:
            cell = int(start // self.BUCKET)
            best = None
            for b in (band - 1, band, band + 1):
                items = cells.get((b, cell))
                if not items:
                    continue
                self.looked_at += len(items)
                for o_left, o_top, o_start, o_end in items:
                    if -near < o_top - top < near and o_left - 1 <= start < o_end and \
                            (last is None or (o_start, o_end) > last) and \
                            (best is None or (o_start, o_end) < best):
                        best = (o_start, o_end)
            if best is None:
                break
            last, start = best, best[1]
        item = (left, top, start, start + width)
        for cell in range(int((left - 1) // self.BUCKET), int((start + width) // self.BUCKET) + 1):
            self._cells.setdefault((band, cell), []).append(item)
        return start - left


def frame_boxes(model: DisplayModel) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(the frame of each part, whether it is a frame's first part, and the lowest x, y and highest x, y of
    the part's members' centres as an n x 4 array) of each part of each frame of `model` (`_frame_boxes`),
    worked out once per layout of the model: Qt-free, so a Worker that builds a model works it out too
    (`prepare_canvas`) and the GUI thread takes it over."""
    return _per_layout(model, "frame_boxes", _frame_boxes)


def edge_lines(model: DisplayModel) -> tuple[tuple[np.ndarray, ...], EdgeLines]:
    """Each edge's extent and every edge's polyline (`_edge_lines`), worked out once per layout of `model`
    (as `frame_boxes`)."""
    return _per_layout(model, "edge_lines", _edge_lines)


def prepare_canvas(model: DisplayModel) -> DisplayModel:
    """Work out what the canvas reads from `model` that needs no Qt (`frame_boxes`, `edge_lines`): run by
    the Worker that built the model, so the GUI thread only makes the items. Returns `model`."""
    frame_boxes(model)
    if model.edges:
        edge_lines(model)
    return model


def _per_layout(model: DisplayModel, name: str, work):
    """`work(model)`, kept on the model while its layout (positions, edges, bends, ports, frames, rows) is
    the very objects it was worked out for (`set_bands` replaces them)."""
    layout = (model.positions, model.edges, model.bends, model.ports, model.frames, model.row_starts)
    got = model.derived.get(name)
    if got is not None and all(a is b for a, b in zip(got[0], layout, strict=True)):
        return got[1]
    out = work(model)
    model.derived[name] = (layout, out)
    return out


def _frame_boxes(model: DisplayModel) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(the frame of each part, whether it is a frame's first part, and the lowest x, y and highest x,
    y of the part's members' centres as an n x 4 array) of each part of each frame of the model, in
    the model's order: a module wrapped over several rows has a part in each, top row first. One array
    pass over every frame's members (cards sit in several frames)."""
    frames = model.frames
    if not frames:
        return [], np.zeros(0, dtype=bool), np.zeros((0, 4))
    xy, index, _ends = card_arrays(model)
    starts = model.row_starts  # a card's row: `DisplayModel.row_of`
    rows = np.maximum(0, np.searchsorted(np.array(starts, dtype=float), xy[:, 1], side="right") - 1) \
        if starts else np.zeros(len(xy), dtype=np.intp)
    sizes = [len(f[2]) for f in frames]
    member = np.fromiter(map(index.__getitem__, chain.from_iterable(f[2] for f in frames)), dtype=np.intp,
                         count=sum(sizes))
    frame = np.repeat(np.arange(len(frames)), sizes)
    row = rows[member]
    order = np.lexsort((row, frame))
    member, frame, row = member[order], frame[order], row[order]
    cut = np.flatnonzero((frame[1:] != frame[:-1]) | (row[1:] != row[:-1])) + 1
    first = np.concatenate(([0], cut))
    x, y = xy[member, 0], xy[member, 1]
    part_frame = frame[first]
    opens = np.concatenate(([True], part_frame[1:] != part_frame[:-1]))
    box = np.stack([np.minimum.reduceat(x, first), np.minimum.reduceat(y, first),
                    np.maximum.reduceat(x, first), np.maximum.reduceat(y, first)], axis=1)
    return part_frame.tolist(), opens, box


def _edge_lines(model: DisplayModel) -> tuple[tuple[np.ndarray, ...], EdgeLines]:
    """Each edge's extent (arrays of lowest x, highest x, lowest y, highest y of its points, port to
    port through its bends; cards' sides included) and every edge's polyline (`EdgeLines`, port to port
    through its bends: the overview draws them). In array passes: Python visits only the bends."""
    ports, half = model.ports, CARD_W / 2
    edges = model.edges
    m = len(edges)
    xy, _index, ends = card_arrays(model)
    dy = np.fromiter(chain.from_iterable(map(ports.__getitem__, edges)), dtype=float,
                     count=2 * m).reshape(m, 2)
    xu, yu = xy[ends[:, 0]].T
    xv, yv = xy[ends[:, 1]].T
    # each edge's points: its out-port, its bends, its in-port
    bends = list(map(model.bends.get, edges))
    bent = [i for i, b in enumerate(bends) if b]
    inner = np.zeros(m, dtype=np.int64)
    inner[bent] = [len(bends[i]) for i in bent]
    counts = inner + 2
    starts = np.cumsum(counts) - counts
    x, y = np.empty(int(counts.sum())), np.empty(int(counts.sum()))
    x[starts], y[starts] = xu + half, yu + dy[:, 0]
    last = starts + counts - 1
    x[last], y[last] = xv - half, yv + dy[:, 1]
    if bent:
        k = inner[bent]
        slots = np.repeat(starts[bent] + 1 - (np.cumsum(k) - k), k) + np.arange(int(k.sum()))
        points = np.fromiter(chain.from_iterable(chain.from_iterable(bends[i] for i in bent)),
                             dtype=float, count=2 * int(k.sum())).reshape(-1, 2)
        x[slots], y[slots] = points[:, 0], points[:, 1]
    x0 = np.minimum(xu - half, np.minimum.reduceat(x, starts))
    x1 = np.maximum(xv + half, np.maximum.reduceat(x, starts))
    y0, y1 = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    return (x0, x1, y0, y1), EdgeLines(x, y, starts, counts)


def _group(keys: tuple[np.ndarray, np.ndarray], values: np.ndarray):
    """(cell, its values ascending) for each distinct (x, y) cell of `keys` (`values`: card or edge
    numbers: a cell lists its cards and edges in the model's order): `items.group_by_cell`."""
    return group_by_cell(*keys, values)


def _by_step(steps: dict[str, int]) -> tuple[list[int], list[str]]:
    """(the steps ascending, the display id of each): cards of one step in the model's order. A player
    step finds the cards whose state changes by bisection in these (`GraphScene.set_step`)."""
    at = np.fromiter(steps.values(), dtype=np.int64, count=len(steps))
    order = np.argsort(at, kind="stable")
    return at[order].tolist(), np.array(list(steps), dtype=object)[order].tolist()


class CardMap(Mapping):
    """Display id -> NodeCard for every card of the graph; a card object is made the first time it is asked
    for (a lazy canvas puts on the scene only the cards near the view: `GraphScene.show_region`)."""

    def __init__(self, scene: GraphScene):
        # (a weak reference: a scene dropped by its last user goes at once, not at the collector's next
        # pass; an event-loop turn before that pass had Qt index its items: ~150 ms at 10,000 cards)
        self._scene = weakref.proxy(scene)

    def __getitem__(self, did: str) -> NodeCard:
        return self._scene.card(did)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scene.model.info)

    def __len__(self) -> int:
        return len(self._scene.model.info)

    def __contains__(self, did) -> bool:
        return did in self._scene.model.info

    def made(self) -> dict[str, NodeCard]:
        """The card objects made so far (display id -> card), none made by asking."""
        return self._scene.made_cards


class FrameList(Sequence):
    """The module frames of the graph in the model's order; a frame's item is made the first time it is
    asked for (a lazy canvas puts on the scene only the frames near the view, like its cards)."""

    def __init__(self, scene: GraphScene | None = None, places: list[FramePlace] | None = None):
        self._scene = weakref.proxy(scene) if scene is not None else None  # (weak: as `CardMap`'s)
        self.places = places or []  # where each frame goes (`FramePlace`)
        self.made: dict[int, ModuleFrame] = {}  # frame number -> its item, once made

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self.places)))]
        i = i + len(self.places) if i < 0 else i
        frame = self.made.get(i)
        if frame is None:
            place = self.places[i]  # (an IndexError ends iteration)
            frame = ModuleFrame(place.path, place.label, place.rect, self._scene.theme, place.depth)
            frame.label_offset = place.label_offset
            if self._scene.overview_mode:
                frame.setVisible(False)
            self.made[i] = frame
            FRAMES_MADE[0] += 1
        return frame

    def __len__(self) -> int:
        return len(self.places)


class GraphScene(QGraphicsScene):
    """The items of one trace and the player state they show (no view needed: used for rendering)."""

    def __init__(self, parent=None, theme: dict[str, str] | None = None):
        super().__init__(parent)
        self.theme = theme or themes.get_theme()
        self.trace = None
        self.model = DisplayModel()
        self.cards = CardMap(self)  # every card of the graph, made when first asked for
        self.made_cards: dict[str, NodeCard] = {}  # the card objects made so far
        self.lazy = False  # a view sets this: cards and frames go on the scene only near the view
        self._lazy_now = False  # lazy, and the graph has more than LAZY_CARDS cards
        self._reset_lazy()  # the grid of cards, frames and edges, and what of it is on the scene
        self._extent = QRectF()  # the bounding rectangle of every card, edge and frame
        self._current_dir: str | None = None  # "forward" | "backward" of the current node
        self.frames = FrameList(self)  # every module frame of the graph, its item made when first asked for
        self.expanded: set[str] = set()
        self.step = 0
        self.selected: str | None = None
        self._flow: list[FlowEdge] = []
        self._overview: Overview | None = None
        self._card_colors: tuple = (None, [], np.zeros(0, dtype=np.int64))  # (for, names, codes): card_colors
        # cards, edge bundles and frames are hidden for the overview. They stay top-level items: children of a
        # common parent would be visited on every paint (Qt culls only top-level items by its index)
        self.has_module_cards = False  # the legend explains module cards only when there are some
        self.generation = 0  # counts item rebuilds (the minimap redraws its blocks when it changes)
        self.overview_mode = False
        self.aspect: float | None = None  # the canvas's width / height: long graphs wrap into rows
        self._current: str | None = None
        self._value_keys: tuple[list[int], list[str]] | None = None  # (`_by_step` of value_at, once needed)
        self._grad_keys: tuple[list[int], list[str]] | None = None
        self.setItemIndexMethod(QGraphicsScene.BspTreeIndex)

    @property
    def step_count(self) -> int:
        """Number of events in the timeline (the last step)."""
        return self.model.timeline.length if self.model.timeline is not None else 0

    def set_trace(self, trace, step: int | None = None) -> None:
        """Show a new trace at `step` (None: the end, every value and gradient filled in)."""
        self.trace = trace
        self._rebuild()
        self.set_step(self.step_count if step is None else step)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Redraw every item in another theme."""
        self.theme = theme
        self.setBackgroundBrush(QColor(theme["canvas"]))
        if self.trace is not None:
            step = self.step
            self._rebuild()
            self.set_step(step)

    def toggle_module(self, display_id: str) -> bool:
        """Expand a collapsed module card; returns True when the graph changed."""
        path = self.module_path(display_id)
        if path is None:
            return False
        self.expanded.add(path)
        step = self.step
        self._rebuild(reuse=True)
        self.set_step(step)
        return True

    def module_path(self, display_id: str | None) -> str | None:
        """The module path of a collapsed module card (None for any other card)."""
        info = self.model.info.get(display_id) if display_id is not None else None
        return info["path"] if info and info["kind"] == "module" else None

    def display_job(self, expanded: frozenset[str]):
        """A function of a Worker's job that builds the display model of this trace with the modules of
        `expanded` open, from the current model (as `toggle_module` does, but off the GUI thread: Qt-free,
        it reads only the trace and the models, which nothing changes in place). `show_display` shows it."""
        trace, earlier, aspect = self.trace, self.model, self.aspect
        return lambda job: prepare_canvas(build_display(trace, expanded, aspect=aspect, reuse=earlier))

    def show_display(self, model: DisplayModel, expanded: frozenset[str]) -> None:
        """Show `model` (made by a `display_job(expanded)` on this trace) at the current step, keeping every
        card that it shows as before."""
        step = self.step
        self.expanded = set(expanded)
        with no_gc(keep=True):
            self._show_model(model, reuse=True)
        self.set_step(step)

    def collapse_all(self) -> None:
        """Fold every module back into one card."""
        self.expanded.clear()
        if self.trace is not None:
            step = self.step
            self._rebuild(reuse=True)
            self.set_step(step)

    def display_id(self, node_id: str | None) -> str | None:
        """The card showing a trace node (itself, or the module card it is folded into)."""
        if node_id is None:
            return None
        return node_id if node_id in self.cards else self.model.member_of.get(node_id)

    def current_event(self) -> tuple[str, str] | None:
        """The event the player is on: ("forward"|"backward", trace node id), or None at step 0."""
        timeline = self.model.timeline
        return timeline.event(self.step) if timeline is not None else None

    def set_step(self, k: int, full: bool = False) -> None:
        """Show the state after the first `k` events: values, gradients, current node and flow.

        Only cards whose state changes between the old and the new step are touched (found by bisection
        in the sorted step thresholds), and of those only the card objects made so far (a card made later
        takes its state from `card_state`), so one step costs the same on 10 or 10,000 nodes.
        """
        k = max(0, min(int(k), self.step_count))
        old = self.step
        self.step = k
        event = self.current_event()
        current = self.display_id(event[1]) if event else None
        made = self.made_cards
        if full:
            touched = set(made)
        else:
            lo, hi = min(old, k), max(old, k)
            touched = {self._current, current} - {None}
            if made:  # (no card object made yet, as on a fitted lazy canvas: none to tell)
                if self._value_keys is None:  # sorted once per rebuild, when first needed
                    self._value_keys = _by_step(self.model.value_at)
                    self._grad_keys = _by_step(self.model.grad_at)
                for keys, ids in (self._value_keys, self._grad_keys):
                    touched.update(ids[bisect.bisect_right(keys, lo):bisect.bisect_right(keys, hi)])
        self._current, self._current_dir = current, event[0] if event else None
        for did in touched if len(touched) <= len(made) else [d for d in made if d in touched]:
            card = made.get(did)
            if card is not None:
                card.set_state(*self.card_state(did))
        if self._overview is not None and (touched or old != k):
            self._overview.set_state(k, current, self.selected)
        self._set_flow(event)

    def card_state(self, did: str) -> tuple[bool, bool, str | None]:
        """(value shown, gradient shown, "forward"/"backward" when current) of a card at the current step."""
        grad_at = self.model.grad_at.get(did)
        return (self.step >= self.model.value_at.get(did, 0), grad_at is not None and self.step >= grad_at,
                self._current_dir if did == self._current else None)

    def card(self, did: str) -> NodeCard:
        """The card of display id `did`, made (in the current step's state, not yet on a lazy canvas's
        scene) the first time it is asked for; KeyError for an id the graph does not show."""
        card = self.made_cards.get(did)
        if card is None:
            info = self.model.info[did]
            card = NodeCard(info, self.theme)
            card.show_value, card.show_grad, card.current = self.card_state(did)
            card.selected = did == self.selected
            card.setPos(*self.model.positions[did])
            if self.overview_mode:
                card.setVisible(False)
            self.made_cards[did] = card
            CARDS_MADE[0] += 1
        return card

    def clear_current(self) -> None:
        """Drop the current-node halo and the flowing edges (for still pictures of a finished run)."""
        card = self.made_cards.get(self._current) if self._current else None
        if card is not None:
            card.set_state(card.show_value, card.show_grad, None)
        self._current, self._current_dir = None, None
        if self._overview is not None:
            self._overview.set_state(self.step, None, self.selected)
        self._set_flow(None)

    def set_overview(self, on: bool) -> None:
        """Draw all cards as one batch of blocks (far zoomed out) or as full cards."""
        if on and not self.overview_mode and self.trace is not None:
            self._make_overview()
        if on == self.overview_mode or self._overview is None:
            self.overview_mode = on and self._overview is not None
            return
        self.overview_mode = on
        # the cards, frames and edge bundles on the scene (near the view on a lazy canvas) hide; cards made
        # but not on the scene too (cheap: no scene to tell), so every card object reports its visibility
        bundles = [self._bundles.get(cell) for cell in self._live_cells]
        for item in (*filter(None, bundles), *self._live_frames.values(), *self.made_cards.values()):
            item.setVisible(not on)
        for item in self._overview.items():
            item.setVisible(on)

    def set_selected(self, node_id: str | None) -> str | None:
        """Outline the card of `node_id`; returns its display id."""
        did = self.display_id(node_id)
        if self.selected in self.made_cards:
            self.made_cards[self.selected].set_selected(False)
        self.selected = did
        if did in self.made_cards:
            self.made_cards[did].set_selected(True)
        if self._overview is not None:
            self._overview.set_state(self.step, self._current, did)
        return did

    def show_region(self, rect: QRectF, limit: int | None = None) -> bool:
        """Put on the scene the cards and frames of the grid cells near `rect` (a lazy canvas out of the
        overview; otherwise every item is there already). Called before each paint of the view, and while
        idle for the cells around it. `limit`: at most this many cells put now, those nearest the middle of
        `rect` first (one cell's items cost a few ms). True when every cell near `rect` is on the scene."""
        if not self._lazy_now or self.overview_mode or rect.isEmpty():
            return True
        margin = CELL / 4
        xs = range(int((rect.left() - margin) // CELL), int((rect.right() + margin) // CELL) + 1)
        ys = range(int((rect.top() - margin) // CELL), int((rect.bottom() + margin) // CELL) + 1)
        want = {(cx, cy) for cx in xs for cy in ys}
        new = want - self._live_cells
        if not new:
            return True
        done = limit is None or len(new) <= limit
        if not done:
            mx, my = rect.center().x() / CELL - 0.5, rect.center().y() / CELL - 0.5
            new = sorted(new, key=lambda c: ((c[0] - mx) ** 2 + (c[1] - my) ** 2, c))[:limit]
        for cell in new:
            self._show_cell(cell)
        if len(self._live_cells) > MAX_LIVE_CELLS:
            self._trim(want)
        return done

    @property
    def overview(self) -> Overview | None:
        """The overview's item (frames and edges far out; its blocks are `overview.blocks`), once made."""
        return self._overview

    def fit_overview_cache(self, scale: float, screen: QRectF) -> None:
        """Let the overview cache its picture or not for a view at `scale` of size `screen`."""
        if self._overview is not None:
            self._overview.fit_cache(scale, screen)

    def drop_region(self) -> None:
        """Take every card and frame of a lazy canvas off the scene (after a file was drawn from all of
        them); the next paint of the view puts back those near it."""
        if not self._lazy_now:
            return
        for did in self._live_cards:
            self.removeItem(self.made_cards[did])
        for frame in self._live_frames.values():
            self.removeItem(frame)
        for cell in self._live_cells:
            if self._bundles.get(cell) is not None:
                self.removeItem(self._bundles[cell])
        self._live_cells, self._live_cards, self._live_frames = set(), set(), {}

    def live_items(self) -> tuple[int, int]:
        """(cards, frames) on the scene now: all of them, or on a lazy canvas those near the view."""
        if not self._lazy_now:
            return len(self.made_cards), len(self.frames)
        return len(self._live_cards), len(self._live_frames)

    def itemsBoundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """Qt's bounding rectangle of the items, and on a lazy canvas of the cards and frames not yet on
        the scene too."""
        rect = super().itemsBoundingRect()
        return rect.united(self._extent) if self._lazy_now else rect

    def advance_flow(self, amount: float = 1.0) -> bool:
        """Move the dashes of the active edges; returns False when nothing is flowing."""
        for edge in self._flow:
            edge.advance_dash(amount)
        return bool(self._flow)

    # -- private -----------------------------------------------------------------------------

    def _rebuild(self, reuse: bool = False) -> None:
        """Build the display model and the items anew; `reuse` (a module expanded or collapsed, same
        trace and theme): keep the info and the card of every node that is still drawn as it was.
        What the rebuild makes (the model, the grid, the items: ~100k objects at 10,000 cards) lives as
        long as the graph is shown, so it goes to the collector's oldest generation unscanned (`keep`):
        the young pass after an expand found nothing to free in them and took 50-100 ms."""
        with no_gc(keep=True):
            self._rebuild_items(reuse)

    def _rebuild_items(self, reuse: bool = False) -> None:
        self.generation += 1
        self.setBackgroundBrush(QColor(self.theme["canvas"]))
        if self.trace is None:
            self.frames = FrameList(self)
            self._flow = []
            self.clear()
            self._overview = None
            self._reset_lazy()
            self.made_cards = {}
            self.model = DisplayModel()
            self.has_module_cards = False
            return
        earlier = self.model if reuse else None
        model = build_display(self.trace, frozenset(self.expanded), aspect=self.aspect, reuse=earlier)
        self._show_model(model, reuse)

    def _show_model(self, model: DisplayModel, reuse: bool) -> None:
        self.model = model
        self.has_module_cards = "module" in map(itemgetter("kind"), model.info.values())
        self._build_items(reuse)

    def rewrap(self, aspect: float, bands: int | None = None) -> bool:
        """Wrap the graph's layers for a canvas of `aspect` (width / height) into `bands` rows (default:
        as many as `best_bands` says); True when the rows changed."""
        self.aspect = aspect
        if self.trace is None or not self.model.info:
            return False
        if bands is None:
            bands = best_bands(self.model.flat[0], aspect)
        if bands == self.model.bands:
            return False
        step = self.step
        set_bands(self.model, bands)
        with no_gc():
            self._build_items(reuse=True)
        self.set_step(step)
        return True

    def _build_items(self, reuse: bool = False) -> None:
        """Cards, edge bundles, module frames and the overview item of the current display model.

        `reuse`: a card whose info is the very dict the new model shows (`build_display(reuse=...)`) stays
        and only moves; every other item is made anew (so an expanded module costs its own cards)."""
        overview = self.overview_mode
        kept = self._clear_items(reuse)
        self.generation += 1
        self._current, self._current_dir, self.step = None, None, 0  # step 0's state for the cards made
        self.overview_mode = False
        pos = self.model.positions
        self.made_cards = kept
        for did, card in kept.items():
            card.setPos(*pos[did])
            card.setVisible(True)
        self._lazy_now = self.lazy and len(self.model.info) > LAZY_CARDS
        # every card, frame and edge is filed in the cells of a grid it covers; a lazy canvas puts on the
        # scene those of the cells near its view (`show_region`), any other scene all of them at once
        self._file_cards(pos)
        self._file_edges()
        places, boxes = self._place_frames()
        self.frames = FrameList(self, places)
        self._frame_bounds = boxes
        if not self._lazy_now:
            for cell in sorted({*self._card_cells, *self._frame_cells, *self._edge_cells}):
                self._show_cell(cell)
        rect = self._extent = self._items_rect()
        self.setSceneRect(rect.adjusted(-SCENE_MARGIN_X, -SCENE_MARGIN, SCENE_MARGIN_X, SCENE_MARGIN))
        if overview:
            self._make_overview()
            self.set_overview(True)
        self._value_keys = self._grad_keys = None  # (`set_step` sorts them when it first needs them)
        for card in kept.values():  # the state of step 0: nothing computed yet
            card.set_state(False, False, None)
        if self.selected not in self.cards:
            self.selected = None
        elif self.selected:
            self.card(self.selected).set_selected(True)
        if self._overview is not None:
            self._overview.set_state(0, None, self.selected)

    def _place_frames(self) -> tuple[list[FramePlace], list[QRectF]]:
        """Each frame part's place (its rectangle around its cards, its label beside the labels placed
        before it at the same corner: `LabelShelf`) and its item's bounding rectangle, filing each in the
        grid cells that rectangle reaches. The rectangles in array passes; Python places the labels."""
        frames = self.model.frames
        number, opens, box = frame_boxes(self.model)
        if not number:
            return [], []
        halo = NodeCard.HALO  # a frame encloses its cards' bounding rectangles, halo room included
        half_w, half_h = CARD_W / 2 + halo, CARD_H / 2 + halo
        depth = np.array([frames[f][0].count(".") for f in number], dtype=np.int64)
        pad = FRAME_PAD + 4 * np.maximum(0, 3 - depth)  # outer frames a little wider than inner ones
        x0, y0, x1, y1 = box.T
        left, top = x0 - half_w - pad, y0 - half_h - pad
        width, height = x1 - x0 + 2 * (half_w + pad), y1 - y0 + 2 * (half_h + pad)
        texts = [frames[f][1] if first else f"{frames[f][1]} (cont.)"
                 for f, first in zip(number, opens.tolist(), strict=True)]
        label_w = [frame_label_width(text) for text in texts]
        shelf = LabelShelf()
        offset = [shelf.place(*corner, w) for *corner, w in zip(left.tolist(), top.tolist(), label_w,
                                                                strict=True)]
        # `ModuleFrame.bounds` of each, in arrays (its rectangle and its label at the largest size)
        label_h = ModuleFrame.LABEL_PT * 4 / 3 * ModuleFrame.MAX_LABEL_BOOST + 8
        right = np.maximum(left + width, left + np.array(offset) + np.array(label_w))
        bounds = np.stack([left - 2, top - label_h - 2, right - left + 4, height + label_h + 4], axis=1)
        places = [FramePlace(frames[f][0], text, QRectF(*rect), d, off) for f, text, rect, d, off in
                  zip(number, texts, np.stack([left, top, width, height], axis=1).tolist(), depth.tolist(),
                      offset, strict=True)]
        boxes = [QRectF(*b) for b in bounds.tolist()]
        # every (cell, frame) pair: the cells of its bounding rectangle, as `_file_edges` files edges
        bx, by = bounds[:, 0], bounds[:, 1]
        for cell, members in cells_of_boxes(bx, by, bx + bounds[:, 2], by + bounds[:, 3], CELL).items():
            self._frame_cells[cell] = members.tolist()
        return places, boxes

    def _make_overview(self) -> None:
        """The overview's items for the current model: made when the overview is first shown after a
        rebuild, not by every rebuild (an expand while zoomed in to the cards does without it). From the
        model's arrays and the edges' points kept by `_file_edges`: no Python call per card or edge."""
        if self._overview is not None or not self.model.info:
            return
        model, theme = self.model, self.theme
        xy, index, _ends = card_arrays(model)
        value_at = model.value_at
        at = np.fromiter(map(value_at.get, model.positions, repeat(0)), dtype=np.int64, count=len(xy))
        colors, color = self.card_colors()
        blocks = CardBlocks(index, xy, colors, color, at)
        self._overview = Overview(blocks, theme, self.frames.places, self._lines)
        for item in self._overview.items():
            item.setVisible(False)
            self.addItem(item)
        self._overview.set_state(self.step, self._current, self.selected)

    def card_colors(self) -> tuple[list[str], np.ndarray]:
        """(the colour names of the cards' kinds, each card's as an index into them) in `model.positions`'
        order (`accent_name`), worked out once per rebuild and theme (the overview and the minimap ask)."""
        key = (self.generation, id(self.theme))
        if self._card_colors[0] != key:
            infos = list(map(self.model.info.__getitem__, self.model.positions))
            self._card_colors = (key, *accent_codes(infos, self.theme))
        return self._card_colors[1], self._card_colors[2]

    def _file_cards(self, pos: dict[str, tuple[float, float]]) -> None:
        """File every card in the grid cell of its centre (cells' cards in the model's order)."""
        if not pos:
            return
        ids = list(pos)
        xy = card_arrays(self.model)[0] if pos is self.model.positions else xy_array(pos)
        cx, cy = (np.floor_divide(xy, CELL).astype(np.int64).T)
        for (x, y), members in _group((cx, cy), np.arange(len(ids))):
            self._card_cells[(x, y)] = [ids[k] for k in members]

    def _file_edges(self) -> None:
        """File every edge in the grid cells its points reach, measure the edges' extent and keep each
        edge's points (`_lines`, for the overview)."""
        edges = self._edges = list(self.model.edges)
        m = len(edges)
        self._edge_range = np.zeros((0, 4), dtype=np.int64)
        self._edge_extent = QRectF()
        self._lines = None
        if not m:
            return
        (x0, x1, y0, y1), self._lines = edge_lines(self.model)
        left, top, right, bottom = float(x0.min()), float(y0.min()), float(x1.max()), float(y1.max())
        self._edge_extent = QRectF(left - 8, top - 8, right - left + 16, bottom - top + 16)
        # the curves reach at most ~20 px past their points (and a back edge leaves from the card's side)
        ranges = self._edge_range = np.stack(
            [np.floor_divide(x0 - 25, CELL), np.floor_divide(x1 + 25, CELL), np.floor_divide(y0 - 10, CELL),
             np.floor_divide(y1 + 10, CELL)], axis=1).astype(np.int64)
        # every (cell, edge) pair: an edge covers (columns x rows) cells, most of them one or two
        for cell, members in cells_of_boxes(*(ranges[:, k] * CELL for k in (0, 2, 1, 3)), CELL).items():
            self._edge_cells[cell] = members.tolist()

    def _items_rect(self) -> QRectF:
        """`itemsBoundingRect()` of the cards, edges and frames, the cards' part from the model's positions
        (Qt's would ask every card for its bounds), the edges' from their points on a lazy canvas."""
        rect = QRectF()
        if self.model.positions:
            xy = card_arrays(self.model)[0]
            (x0, y0), (x1, y1) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
            card = NodeCard.bounds()
            rect = QRectF(x0 + card.left(), y0 + card.top(), x1 - x0 + card.width(), y1 - y0 + card.height())
        for box in self._frame_bounds:  # the frames' items' scene bounding rectangles (made or not)
            rect = rect.united(box)
        if self._lazy_now:
            return rect.united(self._edge_extent)
        for bundle in self._bundles.values():
            if bundle is not None:
                rect = rect.united(bundle.sceneBoundingRect())
        return rect

    def _clear_items(self, reuse: bool) -> dict[str, NodeCard]:
        """Empty the scene; returns the cards `_build_items` may keep (display id -> card, taken off the
        scene but not deleted)."""
        old, self._flow, self._overview, self.frames = self.made_cards, [], None, FrameList(self)
        info = self.model.info
        kept = {did: card for did, card in old.items() if info.get(did) is card.info} if reuse else {}
        for card in kept.values():
            if card.scene() is self:
                self.removeItem(card)
        self.clear()
        self._reset_lazy()
        return kept

    def _reset_lazy(self) -> None:
        self.static_added: list = []  # frames and bundles put on a lazy canvas's scene since a view took them
        self._card_cells, self._frame_cells, self._edge_cells = {}, {}, {}  # (frames by number)
        self._frame_bounds: list[QRectF] = []
        self._edges, self._edge_range, self._pieces = [], np.zeros((0, 4), dtype=np.int64), {}
        self._lines: EdgeLines | None = None  # every edge's points (`_file_edges`), for the overview
        self._bundles = {}
        self._live_cells, self._live_cards, self._live_frames = set(), set(), {}

    def _show_cell(self, cell: tuple[int, int]) -> None:
        """Put the cards, frames and edge pieces of one grid cell on the scene."""
        self._live_cells.add(cell)
        for did in self._card_cells.get(cell, ()):
            if did not in self._live_cards:
                card = self.card(did)
                card.setVisible(True)
                self.addItem(card)
                self._live_cards.add(did)
        for frame in map(self.frames.__getitem__, self._frame_cells.get(cell, ())):
            if id(frame) not in self._live_frames:
                frame.setVisible(True)
                self.addItem(frame)
                self._live_frames[id(frame)] = frame
                if self._lazy_now:
                    self.static_added.append(frame)
        bundle = self._bundles.get(cell, False)
        if bundle is False:
            bundle = self._bundles[cell] = self._make_bundle(cell)
        if bundle is not None:
            bundle.setVisible(True)
            self.addItem(bundle)
            if self._lazy_now:
                self.static_added.append(bundle)

    def _make_bundle(self, cell: tuple[int, int]) -> EdgeBundle | None:
        """One path item of the edge pieces that start in `cell` (None: none do)."""
        path = QPainterPath()
        last = None
        for i in self._edge_cells.get(cell, ()):
            for home, piece in self._edge_pieces(i):
                if home != cell:
                    continue
                if len(piece) == 4:  # a cubic: carries on from the piece before when that ended here
                    start, c1, c2, end = piece
                    if start != last:
                        path.moveTo(*start)
                    path.cubicTo(c1[0], c1[1], c2[0], c2[1], end[0], end[1])
                    last = end
                else:  # the arrow head
                    path.moveTo(*piece[0])
                    path.lineTo(*piece[1])
                    path.lineTo(*piece[2])
                    last = None
        return EdgeBundle(path, self.theme) if not path.isEmpty() else None

    def _edge_pieces(self, i: int) -> list[tuple[tuple[int, int], tuple]]:
        """Edge `i` as (home cell, piece): its curves (long ones cut into EDGE_PIECE-wide pieces), then its
        arrow head; worked out once, when the first cell it covers comes into view."""
        pieces = self._pieces.get(i)
        if pieces is None:
            u, v = self._edges[i]
            pos = self.model.positions
            start, curves, head = edge_geometry(pos[u], pos[v], *self.model.ports[(u, v)],
                                                self.model.bends.get((u, v)))
            cx0, cx1, cy0, cy1 = self._edge_range[i].tolist()

            def home(point) -> tuple[int, int]:  # the cell a piece starts in, within the cells it is filed in
                return (min(cx1, max(cx0, int(point[0] // CELL))), min(cy1, max(cy0, int(point[1] // CELL))))

            pieces = []
            p = start
            for c1, c2, q in curves:
                n = 1 if c2 == q else min(32, math.ceil(abs(q[0] - p[0]) / EDGE_PIECE))
                for part in split_cubic(p, c1, c2, q, n) if n > 1 else [(p, c1, c2, q)]:
                    pieces.append((home(part[0]), part))
                p = q
            pieces.append((home(head[1]), head))
            self._pieces[i] = pieces
        return pieces

    def _trim(self, keep: set[tuple[int, int]]) -> None:
        """Take the cards and frames of the cells not in `keep` off the scene (their objects stay)."""
        for cell in self._live_cells - keep:
            for did in self._card_cells.get(cell, ()):
                if did in self._live_cards:
                    self.removeItem(self.made_cards[did])
                    self._live_cards.discard(did)
            if self._bundles.get(cell) is not None:
                self.removeItem(self._bundles[cell])
        self._live_cells &= keep
        xs, ys = [c[0] for c in keep], [c[1] for c in keep]
        near = QRectF(min(xs) * CELL, min(ys) * CELL, (max(xs) - min(xs) + 1) * CELL,
                      (max(ys) - min(ys) + 1) * CELL)
        for key, frame in list(self._live_frames.items()):
            if not frame.boundingRect().intersects(near):
                self.removeItem(frame)
                del self._live_frames[key]

    def _set_flow(self, event: tuple[str, str] | None) -> None:
        for edge in self._flow:
            self.removeItem(edge)
        self._flow = []
        if event is None or self.trace is None:
            return
        direction, nid = event
        node = self.trace.nodes.get(nid)
        target = self.display_id(nid)
        if node is None or target is None:
            return
        grad_ids = set(self.model.grad_at)
        for src_id in dict.fromkeys(getattr(node, "inputs", []) or []):
            src = self.display_id(src_id)
            if src is None or src == target:
                continue
            if direction == "backward" and src not in grad_ids:
                continue  # no gradient is sent to inputs that do not require one
            edge = FlowEdge(QPointF(*self.model.positions[src]), QPointF(*self.model.positions[target]),
                            direction, self.theme, self.model.ports.get((src, target), (0.0, 0.0)))
            self.addItem(edge)
            self._flow.append(edge)


class GraphView(QGraphicsView):
    """Interactive canvas for a Trace: wheel zoom, drag pan, fit, click/keyboard selection."""

    sig_node_selected = Signal(str)
    """A node was selected (by click, keyboard or `select`): its trace (or module card) id."""

    sig_graph_changed = Signal()
    """The items were rebuilt (new trace, module expanded or collapsed, theme)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("graphView")
        self._scene = GraphScene(self)
        self._scene.lazy = True  # cards are made as the view comes near them
        self.setScene(self._scene)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing |
                            QPainter.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setFrameShape(QFrame.NoFrame)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setToolTip("")
        self._auto_fit = True
        self._flow_timer = QTimer(self)
        self._flow_timer.setInterval(20)  # 50 frames per second
        self._flow_timer.timeout.connect(self._animate_flow)
        self.setAccessibleName("Computational graph")
        self.show_legend = True
        self.memory = memory.MemoryOverlay(self)  # the "memory" overlay (View menu)
        self.minimap = Minimap(self)
        self.find_bar = QLineEdit(self)
        self.find_bar.setObjectName("graphFind")
        self.find_bar.setPlaceholderText("find a node: name, op or module")
        self.find_bar.setToolTip("Type part of a node's name, op or module path; Enter: next match, "
                                 "Escape: close")
        self.find_bar.setFixedWidth(260)
        self.find_bar.hide()
        self.find_bar.textEdited.connect(lambda text: self.find(text))
        self.find_bar.returnPressed.connect(lambda: self.find(self.find_bar.text(), next_match=True))
        self.find_bar.installEventFilter(self)
        self._search: tuple[int, list] = (-1, [])  # (scene generation, find's index of the cards)
        self._legend: tuple | None = None  # (look and canvas size, top-left, pixmap) of the legend drawn last
        self.static_layer = StaticLayer(self, EDGE_PIECE)  # frames and edge bundles copied from tiles
        self._expander = None  # the Worker that builds a big graph's display model after an expand
        self._expanding: tuple | None = None  # (trace, the modules open once it is built) while it builds

    # -- public API ------------------------------------------------------------------------

    @property
    def graph_scene(self) -> GraphScene:
        """The scene with the cards (also usable for rendering)."""
        return self._scene

    @property
    def step_count(self) -> int:
        """Number of events of the current trace's timeline."""
        return self._scene.step_count

    @property
    def timeline(self):
        """The current trace's Timeline (None before a trace is shown)."""
        return self._scene.model.timeline

    @property
    def step(self) -> int:
        """The step currently shown."""
        return self._scene.step

    def expand(self, display_id: str | None) -> bool:
        """Expand a collapsed module card (double-click, Enter); False when it is no module card. A graph
        of more than ASYNC_EXPAND_CARDS cards builds its new display model on a Worker (sig_graph_changed
        follows when it is shown; an expand asked for meanwhile joins it); a smaller one at once."""
        scene = self._scene
        path = scene.module_path(display_id)
        if path is None:
            return False
        if self._expanding is None and len(scene.model.info) <= ASYNC_EXPAND_CARDS:
            scene.toggle_module(display_id)
            self.sig_graph_changed.emit()
            return True
        opened = self._expanding[1] if self._expanding is not None else frozenset(scene.expanded)
        if path in opened:
            return True  # (asked for again while it builds)
        self._expanding = (scene.trace, opened | {path})
        if self._expander is None:
            from explorer.ui.common.worker import Worker

            self._expander = Worker(self)
            self._expander.sig_done.connect(self._expanded)
            self._expander.sig_failed.connect(self._expand_failed)
        self.viewport().setCursor(Qt.BusyCursor)
        self._expander.submit(scene.display_job(self._expanding[1]))
        return True

    def expanding(self) -> bool:
        """True while an expand's display model is being built (the canvas still shows the graph before)."""
        return self._expanding is not None

    def _expanded(self, model) -> None:
        pending, self._expanding = self._expanding, None
        self._end_expand()
        if pending is None or pending[0] is not self._scene.trace:
            return  # (another trace was shown meanwhile)
        self._scene.show_display(model, pending[1])
        self._update_flow_timer()
        self.sig_graph_changed.emit()

    def _expand_failed(self, message: str) -> None:
        self._expanding = None
        self._end_expand()
        QToolTip.showText(QCursor.pos(), f"Could not expand the module: {message}", self)

    def _end_expand(self) -> None:
        self.viewport().setCursor(Qt.OpenHandCursor if self.dragMode() == QGraphicsView.ScrollHandDrag
                                  else Qt.ArrowCursor)

    def _cancel_expand(self) -> None:
        if self._expanding is not None:
            self._expanding = None
            if self._expander is not None:
                self._expander.cancel()
            self._end_expand()

    def set_trace(self, trace, step: int | None = None, keep_view: bool = False) -> None:
        """Show a trace; fits it to the window unless `keep_view` and the user has zoomed."""
        self._cancel_expand()
        self._scene.aspect = self._aspect()
        self._scene.set_trace(trace, step)
        if not keep_view:
            self._auto_fit = True
        if self._auto_fit:
            self.fit()
        self._place_overlays()
        self._update_flow_timer()
        self.sig_graph_changed.emit()

    def set_step(self, k: int) -> None:
        """Show the player's state after `k` events."""
        self._scene.set_step(k)
        self.memory.on_step()
        self._update_flow_timer()

    def select(self, node_id: str | None, center: bool = False) -> None:
        """Select a node's card (emits sig_node_selected; "" when cleared); `center` scrolls it into view."""
        did = self._scene.set_selected(node_id)
        if did is None:
            self.sig_node_selected.emit("")
            return
        if center:
            self.ensureVisible(self._scene.cards[did].sceneBoundingRect(), 40, 40)
        self.sig_node_selected.emit(did)

    def selected(self) -> str | None:
        """The selected card's id."""
        return self._scene.selected

    def fit(self) -> None:
        """Fit the graph to the window: graphs wrap into rows where that shows them larger (`fit_bands`),
        small graphs grow to fill the canvas up to MAX_FIT_SCALE, and graphs of up to READABLE_CARDS
        cards never shrink below MIN_FIT_SCALE (the view then starts at the graph's inputs and scrolls)."""
        aspect = self._aspect()
        if aspect and len(self._scene.cards) <= REWRAP_CARDS:
            vp = self.viewport().rect()
            bands = fit_bands(self._scene.model.flat[0], vp.width(), vp.height(), MAX_FIT_SCALE,
                              2 * SCENE_MARGIN_X, readable=READABLE_ZOOM, margin_y=2 * SCENE_MARGIN)
            if self._scene.rewrap(aspect, bands):
                self.sig_graph_changed.emit()
        rect = self._scene.sceneRect()
        if rect.isEmpty():
            return
        vp = self.viewport().rect()
        scale = min(vp.width() / rect.width(), vp.height() / rect.height(), MAX_FIT_SCALE)
        self.resetTransform()
        if scale < MIN_FIT_SCALE and len(self._scene.cards) <= READABLE_CARDS:
            self.scale(MIN_FIT_SCALE, MIN_FIT_SCALE)
            half_w, half_h = vp.width() / 2 / MIN_FIT_SCALE, vp.height() / 2 / MIN_FIT_SCALE
            self.centerOn(QPointF(rect.left() + half_w, min(rect.center().y(), rect.top() + half_h)))
        else:
            self.scale(scale, scale)
            self.centerOn(rect.center())
        self._auto_fit = True
        self._update_detail()

    def _aspect(self) -> float | None:
        vp = self.viewport().rect()
        return vp.width() / vp.height() if vp.width() > 50 and vp.height() > 50 else None

    def show_find(self) -> None:
        """Open the find bar (Ctrl+F) over the top-right corner of the canvas."""
        self.find_bar.show()
        self._place_overlays()  # the minimap moves under the open find bar
        self.find_bar.raise_()
        self.find_bar.setFocus()
        self.find_bar.selectAll()

    def find(self, text: str, next_match: bool = False) -> str | None:
        """Select and centre the first card matching `text` (the next one after the selection when
        `next_match`): exact name first, then names starting with it, then any name, op or module path
        containing it. Returns its display id (None: no match; the find bar turns red)."""
        matches = self.matches(text)
        error = self._scene.theme["error"]
        self.find_bar.setStyleSheet("" if matches or not text else f"QLineEdit {{ color: {error}; }}")
        if not matches:
            return None
        cur = self._scene.selected
        at = matches.index(cur) + 1 if next_match and cur in matches else 0
        did = matches[at % len(matches)]
        self.select(did)
        if self.transform().m11() < 0.6:  # zoom in far enough to read the card found
            self.zoom_by(0.6 / self.transform().m11())
        self.centerOn(self._scene.cards[did])
        self.minimap.update()
        return did

    def matches(self, text: str) -> list[str]:
        """Display ids whose card matches `text` (case-insensitive), best matches first."""
        needle = text.strip().lower()
        if not needle:
            return []
        ranked = []
        for rank, (did, names, others) in enumerate(self._search_index()):
            if needle in names:
                ranked.append((0, rank, did))
            elif any(n.startswith(needle) for n in names):
                ranked.append((1, rank, did))
            elif needle in others:
                ranked.append((2, rank, did))
        return [did for *_r, did in sorted(ranked)]

    def _search_index(self) -> list[tuple[str, tuple[str, ...], str]]:
        """Per card in keyboard order: (display id, its names lowercased, every searchable text in one
        lowercased string), made once per graph so that a keystroke in the find bar is one pass of
        substring tests."""
        scene = self._scene
        if self._search[0] != scene.generation:
            trace = scene.trace
            index = []
            for did in scene.model.order:
                info = scene.model.info[did]
                node = trace.nodes.get(did) if trace is not None else None
                names = [info["title"], getattr(node, "name", None) or ""]
                others = [info.get("subtitle", ""), info.get("path", ""), getattr(node, "op", None) or "",
                          getattr(node, "module", None) or ""]
                index.append((did, tuple(n.lower() for n in names if n),
                              "\n".join(n.lower() for n in names + others if n)))
            self._search = (scene.generation, index)
        return self._search[1]

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        """Zoom around the view centre (1.25 in, 0.8 out), within sane limits; `at`: the viewport point
        that stays in place instead (the mouse pointer, for the wheel). (Qt's own anchor under the mouse
        uses the scene point of the mouse's last move over the canvas: after a pan by keys, the minimap or
        find, a key zoom jumped there.)"""
        current = self.transform().m11()
        factor = max(0.02 / current, min(factor, 4.0 / current))
        point = QPointF(self.viewport().rect().center()) if at is None else QPointF(at)
        inverse, _ok = self.viewportTransform().inverted()
        fixed = inverse.map(point)  # the scene point under `point`, kept there
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.NoAnchor)
        self.scale(factor, factor)
        self.setTransformationAnchor(anchor)
        moved = self.viewportTransform().map(fixed) - point
        for bar, delta in ((self.horizontalScrollBar(), moved.x()), (self.verticalScrollBar(), moved.y())):
            bar.setValue(bar.value() + round(delta))
        self._auto_fit = False
        self._update_detail()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Redraw in another colour theme."""
        self._scene.set_theme(theme)
        self.sig_graph_changed.emit()

    def collapse_all(self) -> None:
        """Fold every expanded module back."""
        self._cancel_expand()
        self._scene.collapse_all()
        self.sig_graph_changed.emit()

    # -- Qt events -----------------------------------------------------------------------------

    def wheelEvent(self, event) -> None:  # noqa: N802
        """Wheel zooms around the mouse pointer."""
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15 ** steps, event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        """A click on a card selects it; elsewhere starts a drag to pan."""
        card = self._card_at(event.position().toPoint())
        if card is not None and event.button() == Qt.LeftButton:
            self.select(card.node_id)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        """Double-click on a module card expands it."""
        card = self._card_at(event.position().toPoint())
        if card is not None and self.expand(card.node_id):
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Tab/Shift+Tab walk the nodes, Up/Down move in a column, F fits, +/- zoom, Enter expands,
        Escape clears the selection.

        Player keys (Space, Left, Right, Home, End) are left to the parent widget.
        """
        key = event.key()
        if key in (Qt.Key_Space, Qt.Key_Left, Qt.Key_Right, Qt.Key_Home, Qt.Key_End):
            event.ignore()
            return
        if key in (Qt.Key_Tab, Qt.Key_Backtab):
            self._walk(-1 if key == Qt.Key_Backtab or event.modifiers() & Qt.ShiftModifier else 1)
        elif key in (Qt.Key_Up, Qt.Key_Down):
            self._vertical(-1 if key == Qt.Key_Up else 1)
        elif key == Qt.Key_F:
            self.fit()
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key_Escape:
            self.select(None)
        elif key in (Qt.Key_Return, Qt.Key_Enter) and self._scene.selected:
            self.expand(self._scene.selected)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def focusNextPrevChild(self, forward: bool) -> bool:  # noqa: N802
        """Keep Tab inside the canvas for node navigation while it has nodes."""
        return False if self._scene.cards else super().focusNextPrevChild(forward)

    def resizeEvent(self, event) -> None:  # noqa: N802
        """Keep the graph fitted until the user zooms."""
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()
        self._place_overlays()

    def drawBackground(self, painter, rect: QRectF) -> None:  # noqa: N802
        """The canvas colour with the frames and edge bundles over it, copied from the static layer's
        tiles (where they do not apply: the canvas colour, and the items paint themselves)."""
        if not self.static_layer.paint(painter, rect):
            super().drawBackground(painter, rect)

    def drawForeground(self, painter, rect: QRectF) -> None:  # noqa: N802
        """A colour legend over the graph, or a hint in the empty canvas."""
        if self._scene.cards:
            painter.save()
            painter.resetTransform()
            if self.show_legend:
                self._paint_legend(painter)
            self.memory.paint_legend(painter)
            painter.restore()
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(self._scene.theme["muted"]))
        font = QFont()
        font.setPointSize(11)
        painter.setFont(font)
        painter.drawText(self.viewport().rect(), Qt.AlignCenter,
                         "The computational graph appears here\nonce the program is valid.")
        painter.restore()

    # -- private -----------------------------------------------------------------------------

    def legend_layout(self, metrics: QFontMetrics | None = None) -> tuple[QRectF, list[tuple[str, QRectF]]]:
        """The colour legend's box and each entry's text rectangle (viewport pixels): the entries run left to
        right and wrap into further rows where the canvas is narrower than one row (each entry whole)."""
        metrics = metrics or QFontMetrics(self.legend_font())
        texts = [text for text, _c, _k in self._legend_entries()]
        widths = [22 + metrics.horizontalAdvance(text) + 12 for text in texts]
        h = 22
        room = max(max(widths, default=0), self.viewport().width() - 2 * 8 - 16)
        rows: list[list[int]] = [[]]
        used = 0
        for i, w in enumerate(widths):
            if rows[-1] and used + w > room:
                rows.append([])
                used = 0
            rows[-1].append(i)
            used += w
        box_w = max(sum(widths[i] for i in row) for row in rows) + 8
        box = QRectF(8, self.viewport().height() - h * len(rows) - 8, box_w, h * len(rows))
        rects: list[tuple[str, QRectF]] = []
        for r, row in enumerate(rows):
            x = box.left() + 8
            for i in row:
                rects.append((texts[i], QRectF(x, box.top() + r * h, widths[i] - 12, h)))
                x += widths[i]
        return box, rects

    def _legend_entries(self) -> list[tuple[str, str, str]]:
        t = self._scene.theme
        entries = [("input", t["leaf"], "box"), ("param", t["param"], "box"), ("op", t["op"], "box"),
                   ("output", t["output"], "box"), ("forward", t["edge_forward"], "line"),
                   ("backward", t["edge_backward"], "line")]
        if self._scene.has_module_cards:
            entries.insert(4, ("module (double-click)", t["module"], "box"))
        return entries

    @staticmethod
    def legend_font() -> QFont:
        font = QFont()
        font.setPointSizeF(8.5)
        return font

    def _paint_legend(self, painter) -> None:
        """The legend, copied from a pixmap drawn once per look and canvas size (its text and translucent
        rounded box cost ~1 ms, on every frame)."""
        t = self._scene.theme
        ratio = painter.device().devicePixelRatioF() or 1.0
        colors = tuple(t[name] for name in ("leaf", "param", "op", "output", "module", "edge_forward",
                                             "edge_backward", "panel", "card_border", "muted"))
        key = (colors, self.viewport().width(), self.viewport().height(), self._scene.has_module_cards, ratio)
        if self._legend is None or self._legend[0] != key:
            box = self.legend_layout(QFontMetrics(self.legend_font()))[0].adjusted(-1, -1, 1, 1)
            pixmap = QPixmap(math.ceil(box.width() * ratio), math.ceil(box.height() * ratio))
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(QColor(0, 0, 0, 0))
            inner = QPainter(pixmap)
            inner.setRenderHints(painter.renderHints())
            inner.translate(-box.left(), -box.top())
            self._draw_legend(inner)
            inner.end()
            self._legend = (key, box.topLeft(), pixmap)
        painter.drawPixmap(self._legend[1], self._legend[2])

    def _draw_legend(self, painter) -> None:
        t = self._scene.theme
        painter.setFont(self.legend_font())
        box, rects = self.legend_layout(painter.fontMetrics())
        bg = QColor(t["panel"])
        bg.setAlpha(225)
        painter.setPen(QColor(t["card_border"]))
        painter.setBrush(bg)
        painter.drawRoundedRect(box, 5, 5)
        for (_text, color, kind), (text, rect) in zip(self._legend_entries(), rects, strict=True):
            x, cy = rect.left(), rect.center().y()
            if kind == "box":
                painter.setPen(Qt.NoPen)
                painter.setBrush(QColor(color))
                painter.drawRoundedRect(QRectF(x, cy - 5, 14, 10), 2, 2)
            else:
                pen = QPen(QColor(color), 2.5)
                pen.setDashPattern([3, 2])
                painter.setPen(pen)
                painter.drawLine(QPointF(x, cy), QPointF(x + 14, cy))
            painter.setPen(QColor(t["muted"]))
            painter.drawText(rect.adjusted(18, 0, 0, 0), Qt.AlignVCenter | Qt.AlignLeft, text)

    def _card_at(self, pos) -> NodeCard | None:
        for item in self.items(pos):
            if isinstance(item, NodeCard):
                return item
        if self._scene.overview_mode:  # the cards are hidden behind one batch of blocks: hit-test those
            p = self.mapToScene(pos)
            for did, (x, y) in self._scene.model.positions.items():
                if abs(p.x() - x) <= CARD_W / 2 and abs(p.y() - y) <= CARD_H / 2:
                    return self._scene.cards.get(did)
        return None

    def _walk(self, direction: int) -> None:
        order = self._scene.model.order
        if not order:
            return
        cur = self._scene.selected
        i = order.index(cur) + direction if cur in order else 0
        self.select(order[i % len(order)], center=True)

    def _vertical(self, direction: int) -> None:
        cur = self._scene.selected
        pos = self._scene.model.positions
        if cur not in pos:
            self._walk(1)
            return
        x, y = pos[cur]
        same = [d for d, (px, py) in pos.items() if abs(px - x) < 1 and (py - y) * direction > 0]
        if same:
            self.select(min(same, key=lambda d: abs(pos[d][1] - y)), center=True)

    def _update_detail(self) -> None:
        # below this scale a card would paint as a bare block anyway: batch them all in one item
        self._scene.set_overview(self.transform().m11() < OVERVIEW_SCALE)
        self._place_overlays()

    def _place_overlays(self) -> None:
        """Find bar top-right; the minimap top-right under it, shown while the graph overflows the view."""
        vp = self.viewport().geometry()
        self.find_bar.move(vp.right() - self.find_bar.width() - 8, vp.top() + 8)
        self.minimap.place()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        """Escape in the find bar closes it and gives the focus back to the canvas."""
        if obj is self.find_bar and event.type() == event.Type.KeyPress and event.key() == Qt.Key_Escape:
            self.find_bar.hide()
            self.minimap.place()
            self.setFocus()
            return True
        return super().eventFilter(obj, event)

    def viewportEvent(self, event) -> bool:  # noqa: N802
        """Before each paint, a lazy canvas puts the cards and frames near the view on the scene."""
        if event.type() == QEvent.Paint:
            self._scene.show_region(self.mapToScene(self.viewport().rect()).boundingRect())
            # (the static layer puts the items around its tiles on the scene while idle; a tile drawn before
            # an item over it came on the scene is drawn anew)
            self.static_layer.take_added(self._scene)
            if self._scene.overview_mode:
                self._scene.fit_overview_cache(self.transform().m11(), QRectF(self.viewport().rect()))
            done = super().viewportEvent(event)
            self.static_layer.after_paint()  # (faces left scaled after a zoom gesture: another paint)
            return done
        return super().viewportEvent(event)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802
        """Scrolling moves the minimap's view rectangle too."""
        super().scrollContentsBy(dx, dy)
        self.minimap.update()

    def _update_flow_timer(self) -> None:
        if self._scene._flow and self.isVisible():
            self._flow_timer.start()
        else:
            self._flow_timer.stop()

    def _animate_flow(self) -> None:
        if not self._scene.advance_flow(1.2):
            self._flow_timer.stop()

    def showEvent(self, event) -> None:  # noqa: N802
        """Start the flow animation when the view becomes visible."""
        super().showEvent(event)
        self._update_flow_timer()

    def hideEvent(self, event) -> None:  # noqa: N802
        """No animation for a hidden canvas."""
        super().hideEvent(event)
        self._flow_timer.stop()


def premultiplied(color: QColor) -> int:
    """`color` as the 32-bit word of a premultiplied ARGB image's pixel."""
    a = color.alpha()
    r, g, b = (round(c * a / 255) for c in (color.red(), color.green(), color.blue()))
    return (a << 24) | (r << 16) | (g << 8) | b


def blocks_into(image: QImage, boxes: np.ndarray, words: np.ndarray) -> None:
    """Fill each box (left, top, right, bottom in whole pixels, right and bottom excluded: an n x 4 array)
    of a 32-bit `image` with its word, in array passes (one per pixel of the largest box); the parts outside
    the image are left out, a later box covers an earlier."""
    pixels = np.frombuffer(image.bits(), dtype=np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    height, width = image.height(), image.width()
    left, top, right, bottom = boxes.T
    for dy in range(int((bottom - top).max(initial=0))):
        for dx in range(int((right - left).max(initial=0))):
            x, y = left + dx, top + dy
            inside = (x < right) & (y < bottom) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
            pixels[y[inside], x[inside]] = words[inside]


class Minimap(QWidget):
    """The whole graph in miniature with the part on screen outlined; click or drag to go there.

    Shown over the canvas's top-right corner while the graph is larger than the view (the colour legend
    runs along the bottom edge, which it would cover after zooming in).
    """

    SIZE = 200.0  # longest side, pixels

    def __init__(self, view: GraphView):
        super().__init__(view)
        self.view = view
        self.setObjectName("graphMinimap")
        self.setToolTip("The whole graph: the outlined part is on screen; click or drag to move there")
        self.setCursor(Qt.PointingHandCursor)
        self._cache = QPixmap()
        self._cache_key: tuple | None = None
        self.hide()

    def needed(self) -> bool:
        """Whether the graph overflows the view at its current zoom."""
        scene = self.view.graph_scene
        if not scene.cards:
            return False
        shown = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        rect = scene.sceneRect()
        return rect.width() > shown.width() * 1.05 or rect.height() > shown.height() * 1.05

    def place(self) -> None:
        """Size to the graph's aspect, sit in the top-right corner (under the find bar when it is open; the
        legend has the bottom edge), show only when needed."""
        if not self.needed():
            self.hide()
            return
        rect = self.view.graph_scene.sceneRect()
        k = self.SIZE / max(rect.width(), rect.height())
        w, h = max(40, int(rect.width() * k)), max(30, int(rect.height() * k))
        vp = self.view.viewport().geometry()
        bar = self.view.find_bar
        top = vp.top() + 10 + (bar.height() + 8 if bar.isVisible() else 0)
        self.setGeometry(vp.right() - w - 10, top, w, h)
        self.show()
        self.raise_()
        self.update()

    def _transform(self) -> tuple[float, QRectF]:
        rect = self.view.graph_scene.sceneRect()
        return min(self.width() / rect.width(), self.height() / rect.height()), rect

    def paintEvent(self, event) -> None:  # noqa: N802
        """Blocks per card in their colours (drawn once per graph, selection and size), and the view's
        rectangle."""
        scene = self.view.graph_scene
        t = scene.theme
        key = (scene.generation, scene.selected, self.width(), self.height(), id(t))
        if self._cache_key != key:
            self._cache = self._blocks(scene)
            self._cache_key = key
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._cache)
        k, rect = self._transform()
        shown = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(QColor(t["selected"]), 1.5))
        painter.drawRect(QRectF((shown.left() - rect.left()) * k, (shown.top() - rect.top()) * k,
                                shown.width() * k, shown.height() * k).intersected(QRectF(self.rect())))
        painter.end()

    def _blocks(self, scene) -> QPixmap:
        """The background, its border and one block per card, the blocks written into the image's pixels in
        array passes (a QRectF per card cost ~40 ms at 10,000 cards, paid again after every expand)."""
        t = scene.theme
        image = QImage(self.size(), QImage.Format_ARGB32_Premultiplied)
        image.fill(Qt.transparent)
        bg = QColor(t["panel"])
        bg.setAlpha(235)
        painter = QPainter(image)
        painter.fillRect(self.rect(), bg)
        painter.setPen(QColor(t["card_border"]))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.end()
        info = scene.model.info
        if info:
            boxes, words = self._block_boxes(scene), self._block_colors(scene)
            blocks_into(image, boxes, words)
            row = card_arrays(scene.model)[1].get(scene.selected)
            if row is not None:  # the selected card's block on top of any it touches
                blocks_into(image, boxes[row:row + 1], words[row:row + 1])
        return QPixmap.fromImage(image)

    def _block_boxes(self, scene) -> np.ndarray:
        """Each card's block in whole pixels (left, top, right, bottom; in `model.positions`' order), the
        pixels whose centres a QPainter fill of its rectangle covers (a block at least 1.5 pixels a side)."""
        k, rect = self._transform()
        xy = card_arrays(scene.model)[0]
        w, h = max(1.5, CARD_W * k), max(1.5, CARD_H * k)
        x = (xy[:, 0] - CARD_W / 2 - rect.left()) * k
        y = (xy[:, 1] - CARD_H / 2 - rect.top()) * k
        return np.floor(np.stack([x, y, x + w, y + h], axis=1) + 0.5).astype(np.intp)

    @staticmethod
    def _block_colors(scene) -> np.ndarray:
        """Each card's colour as a premultiplied ARGB word, in `model.positions`' order (the selected card's
        the selection colour)."""
        names, codes = scene.card_colors()
        words = np.array([premultiplied(QColor(name)) for name in names], dtype=np.uint32)[codes]
        row = card_arrays(scene.model)[1].get(scene.selected)
        if row is not None:
            words[row] = premultiplied(QColor(scene.theme["selected"]))
        return words

    def mousePressEvent(self, event) -> None:  # noqa: N802
        """Centre the view on the point clicked."""
        self._go(event.position())
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        """Dragging moves the view along."""
        if event.buttons() & Qt.LeftButton:
            self._go(event.position())
        event.accept()

    def _go(self, pos) -> None:
        k, rect = self._transform()
        self.view._auto_fit = False
        self.view.centerOn(QPointF(rect.left() + pos.x() / k, rect.top() + pos.y() / k))
        self.update()
