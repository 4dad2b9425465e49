"""The graph canvas: a Trace drawn as cards and edges, replayed step by step.

`GraphScene` turns a Trace (optionally with modules collapsed by `explorer.core.layout.collapse`) into
items and knows which values and gradients are visible at each step of the timeline; `GraphView` is
the interactive QGraphicsView around it (zoom, pan, fit, selection, keyboard navigation, module
expansion). `explorer.ui.render` uses the same scene to render files without a window.
"""

from __future__ import annotations

import bisect
import html
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView

from explorer.ui import theme as themes
from explorer.ui.graph_items import CARD_H, CARD_W, EdgeBundle, FlowEdge, NodeCard, Overview, edge_path

GAP_X = 70.0   # free space between layers
GAP_Y = 30.0   # free space between cards of one layer
EDGES_PER_BUNDLE = 40
OVERVIEW_SCALE = 0.3  # view scale under which cards are drawn as one batch of blocks

_KIND_HELP = {
    "leaf": "an input: a leaf tensor that no operation produced; it needs no gradient",
    "param": "a parameter: a leaf with requires_grad=True; backward stores dL/d{name} in its .grad",
    "const": "a constant: a fixed tensor, no gradient flows into it",
    "op": "an operation; in the backward pass autograd runs {torch} for it",
    "module": "a module with {n} nodes folded into one card; double-click to expand it",
}


@dataclass
class DisplayModel:
    """What the scene shows: cards (possibly module groups), edges and when each card fills in."""

    info: dict[str, dict] = field(default_factory=dict)            # display id -> card info
    edges: list[tuple[str, str]] = field(default_factory=list)
    member_of: dict[str, str] = field(default_factory=dict)        # trace node id -> display id
    timeline: list[tuple[str, str]] = field(default_factory=list)  # ("forward"|"backward", trace id)
    value_at: dict[str, int] = field(default_factory=dict)         # display id -> first step showing value
    grad_at: dict[str, int] = field(default_factory=dict)          # display id -> first step showing grad
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # scene pixels
    ports: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # edge -> port dy
    bends: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)  # long edges
    order: list[str] = field(default_factory=list)                 # display ids for keyboard navigation


def timeline_of(trace) -> list[tuple[str, str]]:
    """Forward events in execution order, then backward events in autograd's engine order."""
    return [("forward", n) for n in trace.forward_order] + [("backward", n) for n in trace.backward_order]


def _node_info(node, has_grad: bool) -> dict:
    """Card info for one trace node."""
    name = getattr(node, "name", None)
    label = getattr(node, "label", None) or getattr(node, "op", None) or node.id
    kind = getattr(node, "kind", "op")
    torch_name = getattr(node, "torch_name", None)
    title = name or label
    if kind == "op":
        subtitle = op_short_name(node) if name else (op_short_name(node) if label != node.op else "")
    else:
        subtitle = kind
    helptext = _KIND_HELP.get(kind, "").format(name=title, torch=torch_name or "its grad_fn", n=0)
    lines = [f"<b>{title}</b>: {helptext}"]
    if getattr(node, "call", None):
        lines.append(f"torch call: <code>{html.escape(node.call)}</code>")
    if torch_name:
        lines.append(f"autograd node: <code>{torch_name}</code>")
    if getattr(node, "module", None):
        lines.append(f"module: {node.module}")
    if getattr(node, "is_output", False):
        lines.append("the output: backward starts here with dL/dL = 1")
    return {
        "id": node.id, "kind": kind, "title": title, "subtitle": subtitle, "value": node.value,
        "grad": getattr(node, "grad", None), "is_output": bool(getattr(node, "is_output", False)),
        "tooltip": "<br>".join(lines), "members": [node.id], "has_grad": has_grad,
        "torch_name": torch_name,
    }


def op_short_name(node) -> str:
    """The language's name of the op (`bce` rather than torch's `binary_cross_entropy`)."""
    op = getattr(node, "op", None) or ""
    try:
        from explorer.core.ops import find_op

        spec = find_op(op) or find_op(getattr(node, "torch_name", None))
        return spec.name if spec else op
    except ImportError:
        return op


def build_display(trace, expanded: frozenset[str] | set[str] = frozenset()) -> DisplayModel:
    """Cards, edges and step thresholds for a trace; modules not in `expanded` become one card."""
    model = DisplayModel(timeline=timeline_of(trace))
    grad_ids = set(trace.backward_order)
    graph = trace.graph
    has_modules = any(getattr(n, "module", None) for n in trace.nodes.values())
    if has_modules:
        try:
            from explorer.core.layout import collapse

            graph = collapse(trace, set(expanded))
        except ImportError:  # layout module not available: show every node
            graph = trace.graph
    for did, attrs in graph.nodes(data=True):
        if did in trace.nodes:
            info = _node_info(trace.nodes[did], did in grad_ids)
        else:
            info = _module_info(did, attrs, trace, grad_ids)
        model.info[did] = info
        for m in info["members"]:
            model.member_of[m] = did
    model.edges = [(u, v) for u, v in graph.edges() if u in model.info and v in model.info and u != v]
    n_fwd = len(trace.forward_order)
    fpos = {n: i for i, n in enumerate(trace.forward_order)}
    grad_step = gradient_steps(trace)
    for did, info in model.info.items():
        f = [fpos[m] for m in info["members"] if m in fpos]
        b = [grad_step[m] for m in info["members"] if m in grad_step]
        model.value_at[did] = max(f) + 1 if f else 0
        if b:
            model.grad_at[did] = n_fwd + max(b)
    model.positions, model.bends = _positions(graph, model)
    model.ports = _ports(model)
    model.order = sorted(model.info, key=lambda d: (model.positions[d][0], model.positions[d][1]))
    return model


def gradient_steps(trace) -> dict[str, int]:
    """For each node that gets a gradient: how many backward events must run before dL/d(node) is known.

    That is after the last op that reads the node has sent its share (the output: after its own event).
    """
    bpos = {n: i for i, n in enumerate(trace.backward_order)}
    last_consumer: dict[str, int] = {}
    for nid, node in trace.nodes.items():
        if nid in bpos:
            for inp in node.inputs:
                last_consumer[inp] = max(last_consumer.get(inp, -1), bpos[nid])
    steps: dict[str, int] = {}
    for nid, node in trace.nodes.items():
        if nid not in bpos and getattr(node, "grad", None) is None:
            continue  # no gradient ever reaches it (inputs, constants)
        if nid in last_consumer:
            steps[nid] = last_consumer[nid] + 1
        elif nid in bpos:
            steps[nid] = bpos[nid] + 1
    return steps


def _module_info(did: str, attrs: dict, trace, grad_ids: set[str]) -> dict:
    """Card info for a collapsed module group."""
    members = [m for m in attrs.get("members", []) if m in trace.nodes]
    path = attrs.get("module") or attrs.get("path") or did
    ordered = [m for m in trace.forward_order if m in set(members)]
    last = trace.nodes[ordered[-1]] if ordered else None
    label = attrs.get("label", "module")
    tip = _KIND_HELP["module"].format(n=len(members))
    return {
        "id": did, "kind": "module", "title": label, "subtitle": str(path), "path": str(path),
        "value": last.value if last else None, "grad": getattr(last, "grad", None) if last else None,
        "is_output": any(getattr(trace.nodes[m], "is_output", False) for m in members),
        "tooltip": f"<b>{label}</b> ({path}): {tip}", "members": members,
        "has_grad": any(m in grad_ids for m in members), "torch_name": None,
    }


def _positions(graph, model: DisplayModel):
    """Layered left-to-right card centres and long-edge bend points in scene pixels.

    From the core layout, or a simple local fallback (without bends) when it is missing.
    """
    bends_raw: dict = {}
    try:
        from explorer.core.layout import layered_layout

        lay = layered_layout(graph, direction="LR")
        raw = dict(lay.positions)
        bends_raw = dict(getattr(lay, "edge_points", None) or {})
    except ImportError:
        raw = fallback_layout(graph)
    raw = {k: (float(v[0]), float(v[1])) for k, v in raw.items() if k in model.info}
    for did in model.info:  # any node the layout skipped goes to the far left, not off the map
        raw.setdefault(did, (0.0, float(len(raw))))
    # one x unit is one layer; y units are whatever the layout used: scale the closest pair apart
    columns: dict[float, list[float]] = {}
    for x, y in raw.values():
        columns.setdefault(round(x, 6), []).append(y)
    gaps = [b - a for ys in columns.values()
            for a, b in zip(sorted(ys), sorted(ys)[1:], strict=False) if b - a > 1e-9]
    unit_y = min(gaps) if gaps else 1.0
    sx, sy = CARD_W + GAP_X, (CARD_H + GAP_Y) / unit_y
    positions = {k: (x * sx, y * sy) for k, (x, y) in raw.items()}
    bends = {e: [(float(x) * sx, float(y) * sy) for x, y in pts] for e, pts in bends_raw.items() if pts}
    return positions, bends


def _ports(model: DisplayModel) -> dict[tuple[str, str], tuple[float, float]]:
    """Spread the edges leaving or entering one card over its side, in the order of the other ends."""
    pos = model.positions
    outs: dict[str, list[str]] = {}
    ins: dict[str, list[str]] = {}
    for u, v in model.edges:
        outs.setdefault(u, []).append(v)
        ins.setdefault(v, []).append(u)

    def spread(ends: list[str]) -> dict[str, float]:
        ends = sorted(ends, key=lambda n: pos[n][1])
        step = min(12.0, (CARD_H - 30) / max(1, len(ends) - 1))
        return {n: (i - (len(ends) - 1) / 2) * step for i, n in enumerate(ends)}

    out_dy = {u: spread(vs) for u, vs in outs.items()}
    in_dy = {v: spread(us) for v, us in ins.items()}
    return {(u, v): (out_dy[u][v], in_dy[v][u]) for u, v in model.edges}


def fallback_layout(graph) -> dict[str, tuple[float, float]]:
    """Longest-path layers and a few barycentre sweeps: used only when core.layout is missing."""
    import networkx as nx

    layer: dict[str, int] = {}
    for n in nx.topological_sort(graph):
        preds = list(graph.predecessors(n))
        layer[n] = max((layer[p] + 1 for p in preds), default=0)
    columns: dict[int, list[str]] = {}
    for n, k in layer.items():
        columns.setdefault(k, []).append(n)
    index = {n: float(i) for col in columns.values() for i, n in enumerate(col)}
    for _ in range(4):
        for k in sorted(columns):
            def bary(n: str) -> float:
                nb = list(graph.predecessors(n)) + list(graph.successors(n))
                return sum(index[m] for m in nb) / len(nb) if nb else index[n]
            columns[k].sort(key=bary)
            for i, n in enumerate(columns[k]):
                index[n] = float(i)
    out = {}
    for k, col in columns.items():
        offset = (len(col) - 1) / 2.0
        for i, n in enumerate(col):
            out[n] = (float(k), i - offset)
    return out


class GraphScene(QGraphicsScene):
    """The items of one trace and the player state they show (no view needed: used for rendering)."""

    def __init__(self, parent=None, theme: dict[str, str] | None = None):
        super().__init__(parent)
        self.theme = theme or themes.get_theme()
        self.trace = None
        self.model = DisplayModel()
        self.cards: dict[str, NodeCard] = {}
        self.expanded: set[str] = set()
        self.step = 0
        self.selected: str | None = None
        self._flow: list[FlowEdge] = []
        self._overview: Overview | None = None
        self.overview_mode = False
        self._current: str | None = None
        self._value_keys: tuple[list[int], list[str]] = ([], [])
        self._grad_keys: tuple[list[int], list[str]] = ([], [])
        self.setItemIndexMethod(QGraphicsScene.BspTreeIndex)

    @property
    def step_count(self) -> int:
        """Number of events in the timeline (the last step)."""
        return len(self.model.timeline)

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
        info = self.model.info.get(display_id)
        if not info or info["kind"] != "module":
            return False
        self.expanded.add(info["path"])
        step = self.step
        self._rebuild()
        self.set_step(step)
        return True

    def collapse_all(self) -> None:
        """Fold every module back into one card."""
        self.expanded.clear()
        if self.trace is not None:
            step = self.step
            self._rebuild()
            self.set_step(step)

    def display_id(self, node_id: str | None) -> str | None:
        """The card showing a trace node (itself, or the module card it is folded into)."""
        if node_id is None:
            return None
        return node_id if node_id in self.cards else self.model.member_of.get(node_id)

    def current_event(self) -> tuple[str, str] | None:
        """The event the player is on: ("forward"|"backward", trace node id), or None at step 0."""
        if 0 < self.step <= self.step_count:
            return self.model.timeline[self.step - 1]
        return None

    def set_step(self, k: int, full: bool = False) -> None:
        """Show the state after the first `k` events: values, gradients, current node and flow.

        Only cards whose state changes between the old and the new step are touched (found by bisection
        in the sorted step thresholds), so one step costs the same on 10 or 3,000 nodes.
        """
        k = max(0, min(int(k), self.step_count))
        old = self.step
        self.step = k
        event = self.current_event()
        current = self.display_id(event[1]) if event else None
        if full:
            touched = set(self.cards)
        else:
            lo, hi = min(old, k), max(old, k)
            touched = {self._current, current} - {None}
            for keys, ids in (self._value_keys, self._grad_keys):
                touched.update(ids[bisect.bisect_right(keys, lo):bisect.bisect_right(keys, hi)])
        changed = False
        for did in touched:
            card = self.cards.get(did)
            if card is None:
                continue
            grad_at = self.model.grad_at.get(did)
            changed |= card.set_state(k >= self.model.value_at.get(did, 0),
                                      grad_at is not None and k >= grad_at,
                                      event[0] if did == current else None)
        self._current = current
        if changed and self._overview is not None and self.overview_mode:
            self._overview.update()
        self._set_flow(event)

    def clear_current(self) -> None:
        """Drop the current-node halo and the flowing edges (for still pictures of a finished run)."""
        if self._current in self.cards:
            card = self.cards[self._current]
            card.set_state(card.show_value, card.show_grad, None)
        self._current = None
        self._set_flow(None)

    def set_overview(self, on: bool) -> None:
        """Draw all cards as one batch of blocks (far zoomed out) or as full cards."""
        if on == self.overview_mode or self._overview is None:
            self.overview_mode = on and self._overview is not None
            return
        self.overview_mode = on
        for card in self.cards.values():
            card.setVisible(not on)
        self._overview.setVisible(on)

    def set_selected(self, node_id: str | None) -> str | None:
        """Outline the card of `node_id`; returns its display id."""
        did = self.display_id(node_id)
        if self.selected in self.cards:
            self.cards[self.selected].set_selected(False)
        self.selected = did
        if did in self.cards:
            self.cards[did].set_selected(True)
        return did

    def advance_flow(self, amount: float = 1.0) -> bool:
        """Move the dashes of the active edges; returns False when nothing is flowing."""
        for edge in self._flow:
            edge.advance_dash(amount)
        return bool(self._flow)

    # -- private -----------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._flow = []
        self.clear()
        self._overview = None
        self.cards = {}
        self.setBackgroundBrush(QColor(self.theme["canvas"]))
        if self.trace is None:
            self.model = DisplayModel()
            return
        self.model = build_display(self.trace, frozenset(self.expanded))
        pos = self.model.positions
        for did, info in self.model.info.items():
            card = NodeCard(info, self.theme)
            card.setPos(*pos[did])
            self.addItem(card)
            self.cards[did] = card
        # edges go into bundles by source column so the view can cull the ones off screen
        edges = sorted(self.model.edges, key=lambda e: (pos[e[0]][0], pos[e[0]][1]))
        for start in range(0, len(edges), EDGES_PER_BUNDLE):
            path = QPainterPath()
            for u, v in edges[start:start + EDGES_PER_BUNDLE]:
                path.addPath(edge_path(QPointF(*pos[u]), QPointF(*pos[v]), True, *self.model.ports[(u, v)],
                                       bends=self.model.bends.get((u, v))))
            self.addItem(EdgeBundle(path, self.theme))
        rect = self.itemsBoundingRect()
        self.setSceneRect(rect.adjusted(-60, -60, 60, 60))
        self._overview = Overview(self.cards, self.theme)
        self._overview.setVisible(False)
        self.addItem(self._overview)
        if self.overview_mode:
            self.overview_mode = False
            self.set_overview(True)
        self._current = None
        self.step = 0
        pairs = sorted((v, d) for d, v in self.model.value_at.items())
        self._value_keys = ([p[0] for p in pairs], [p[1] for p in pairs])
        pairs = sorted((v, d) for d, v in self.model.grad_at.items())
        self._grad_keys = ([p[0] for p in pairs], [p[1] for p in pairs])
        for card in self.cards.values():  # the state of step 0: nothing computed yet
            card.set_state(False, False, None)
        if self.selected not in self.cards:
            self.selected = None
        elif self.selected:
            self.cards[self.selected].set_selected(True)

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
    def timeline(self) -> list[tuple[str, str]]:
        """("forward"|"backward", node id) events of the current trace."""
        return self._scene.model.timeline

    @property
    def step(self) -> int:
        """The step currently shown."""
        return self._scene.step

    def set_trace(self, trace, step: int | None = None, keep_view: bool = False) -> None:
        """Show a trace; fits it to the window unless `keep_view` and the user has zoomed."""
        self._scene.set_trace(trace, step)
        if not keep_view:
            self._auto_fit = True
        if self._auto_fit:
            self.fit()
        self._update_flow_timer()
        self.sig_graph_changed.emit()

    def set_step(self, k: int) -> None:
        """Show the player's state after `k` events."""
        self._scene.set_step(k)
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
        """Fit the whole graph in the window, never enlarging small graphs beyond 1.25x."""
        rect = self._scene.sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.KeepAspectRatio)
        if self.transform().m11() > 1.25:
            self.resetTransform()
            self.scale(1.25, 1.25)
            self.centerOn(rect.center())
        self._auto_fit = True
        self._update_detail()

    def zoom_by(self, factor: float) -> None:
        """Zoom around the view centre (1.25 in, 0.8 out), within sane limits."""
        current = self.transform().m11()
        factor = max(0.02 / current, min(factor, 4.0 / current))
        self.scale(factor, factor)
        self._auto_fit = False
        self._update_detail()

    def set_theme(self, theme: dict[str, str]) -> None:
        """Redraw in another colour theme."""
        self._scene.set_theme(theme)
        self.sig_graph_changed.emit()

    def collapse_all(self) -> None:
        """Fold every expanded module back."""
        self._scene.collapse_all()
        self.sig_graph_changed.emit()

    # -- Qt events -----------------------------------------------------------------------------

    def wheelEvent(self, event) -> None:  # noqa: N802
        """Wheel zooms around the mouse pointer."""
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15 ** steps)
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
        if card is not None and self._scene.toggle_module(card.node_id):
            self.sig_graph_changed.emit()
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
            if self._scene.toggle_module(self._scene.selected):
                self.sig_graph_changed.emit()
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

    def drawForeground(self, painter, rect: QRectF) -> None:  # noqa: N802
        """A colour legend over the graph, or a hint in the empty canvas."""
        if self._scene.cards:
            if self.show_legend:
                painter.save()
                painter.resetTransform()
                self._draw_legend(painter)
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

    def _draw_legend(self, painter) -> None:
        t = self._scene.theme
        entries = [("input", t["leaf"], "box"), ("param", t["param"], "box"), ("op", t["op"], "box"),
                   ("output", t["output"], "box"), ("forward", t["edge_forward"], "line"),
                   ("backward", t["edge_backward"], "line")]
        if any(info["kind"] == "module" for info in self._scene.model.info.values()):
            entries.insert(4, ("module (double-click)", t["module"], "box"))
        font = QFont()
        font.setPointSizeF(8.5)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        widths = [22 + metrics.horizontalAdvance(text) + 12 for text, _c, _k in entries]
        h = 22
        box = QRectF(8, self.viewport().height() - h - 8, sum(widths) + 8, h)
        bg = QColor(t["panel"])
        bg.setAlpha(225)
        painter.setPen(QColor(t["card_border"]))
        painter.setBrush(bg)
        painter.drawRoundedRect(box, 5, 5)
        x = box.left() + 8
        for (text, color, kind), w in zip(entries, widths, strict=True):
            cy = box.center().y()
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
            painter.drawText(QRectF(x + 18, box.top(), w - 18, h), Qt.AlignVCenter | Qt.AlignLeft, text)
            x += w

    def _card_at(self, pos) -> NodeCard | None:
        for item in self.items(pos):
            if isinstance(item, NodeCard):
                return item
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
