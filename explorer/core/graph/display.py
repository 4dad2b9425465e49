"""The display model of a traced graph: which cards, where, and at which step each fills in.

Qt-free: the canvas (explorer.ui.graph) turns a `DisplayModel` into items, the renderer into files.
Cards are `CARD_W` x `CARD_H` scene pixels; modules not expanded fold into one card.
"""

from __future__ import annotations

import html
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.layout import collapse, composed_layout, edge_list, layered_layout
from explorer.core.speed import no_gc

CARD_W = 156.0
CARD_H = 84.0
GAP_X = 70.0   # free space between layers
GAP_Y = 30.0   # free space between cards of one layer
BAND_GAP = 70.0  # free space between the rows of a wrapped graph (room for the edges turning back)
WRAP_MIN_LAYERS = 8  # shorter graphs always read left to right in one row
WRAP_GAIN = 1.15  # wrap a long graph into rows only when that shows it at least this much larger
SHORT_WRAP_MIN_LAYERS = 4  # a shorter graph wraps too, on a canvas of known size, when that pays off ...
SHORT_WRAP_GAIN = 1.3      # ... by showing it at least this much larger (at most at the canvas's zoom cap),
TURN_W = 55.0  # how far an edge turning back to the next row reaches beside the cards, each side
SHORT_WRAP_NEAR = 0.8      # ... in the fewest rows that show it at least this fraction of its largest
FRAME_PAD = 10.0  # room between an expanded module's frame and its members' cards
COMPOSE_MIN_NODES = 300  # graphs of at least this many cards are laid out one top-level module at a time
_CONTAINERS = ("ModuleList", "Sequential", "ModuleDict")  # expanded, their children are the top level

_KIND_HELP = {
    "leaf": "an input: a leaf tensor that no operation produced; it needs no gradient",
    "param": "a parameter: a leaf with requires_grad=True; backward stores dL/d{name} in its .grad",
    "const": "a constant: a fixed tensor, no gradient flows into it",
    "op": "an operation; in the backward pass autograd runs {torch} for it",
    "no_grad": "an operation on tensors that need no gradient: autograd records no backward for it",
    "module": "a module with {n} nodes folded into one card; double-click to expand it",
}
# a property op reads as what it does beside a card named after a variable ("T" = A.T: "transpose")
_OP_WORDS = {"T": "transpose", "mT": "transpose", "H": "conj. transpose", "mH": "conj. transpose"}


@dataclass
class DisplayModel:
    """What the scene shows: cards (possibly module groups), edges and when each card fills in."""

    info: dict[str, dict] = field(default_factory=dict)            # display id -> card info
    edges: list[tuple[str, str]] = field(default_factory=list)
    member_of: dict[str, str] = field(default_factory=dict)        # trace node id -> display id
    timeline: Timeline | None = None                               # the trace's steps (None: no trace)
    value_at: dict[str, int] = field(default_factory=dict)         # display id -> first step showing value
    grad_at: dict[str, int] = field(default_factory=dict)          # display id -> first step showing grad
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # scene pixels
    ports: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # edge -> port dy
    bends: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)  # long edges
    order: list[str] = field(default_factory=list)                 # display ids for keyboard navigation
    bands: int = 1                                                 # rows the layers are wrapped into
    flat: tuple[dict, dict] = field(default_factory=lambda: ({}, {}))  # positions, bends before wrapping
    row_h: float = 0.0                                             # height of the tallest row (0: one row)
    row_starts: list[float] = field(default_factory=list)          # where each wrapped row begins (scene y)
    # expanded modules drawn as a labelled frame: (path, label, display ids of the members)
    frames: list[tuple[str, str, list[str]]] = field(default_factory=list)
    source: object = None  # the trace drawn (a rebuild of the same trace reuses the cards' info)
    # (positions, edges it was made for; positions as an n x 2 array, display id -> row, each edge's ends'
    # rows as an m x 2 array): `card_arrays`, worked out once per layout, not by every step that needs them
    arrays: tuple | None = field(default=None, repr=False, compare=False)
    # what the canvas works out from the layout (explorer.ui.graph.view: `frame_boxes`, `edge_lines`), kept
    # with the objects it was made for; a Worker that builds the model fills it, off the GUI thread
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def row_of(self, display_id: str) -> int:
        """The wrapped row a card sits in (0 when the graph is one row)."""
        if not self.row_starts:
            return 0
        return max(0, bisect_right(self.row_starts, self.positions[display_id][1]) - 1)


def _node_info(node, has_grad: bool) -> dict:
    """Card info for one trace node."""
    name = getattr(node, "name", None)
    label = getattr(node, "label", None) or getattr(node, "op", None) or node.id
    kind = getattr(node, "kind", "op")
    torch_name = getattr(node, "torch_name", None)
    title = name or label
    no_grad = kind == "const" and bool(getattr(node, "op", None)) and bool(getattr(node, "inputs", None))
    short = op_short_name(node)
    word = _OP_WORDS.get(short, short)
    if kind == "op":
        subtitle = word if name else (word if label not in (node.op, f".{node.op}") else "")
    elif no_grad:  # transpose, view, to ... of tensors without grad: an op all the same, not a constant
        subtitle = f"{word} · no grad" if name or label != word else "no grad"
    else:
        subtitle = kind
    help_key = "no_grad" if no_grad else kind
    helptext = _KIND_HELP.get(help_key, "").format(name=title, torch=torch_name or "its grad_fn", n=0)
    lines = [f"<b>{html.escape(title)}</b>: {helptext}"]
    facts, layout = _facts_and_layout(node.value)
    if facts:
        lines.append(facts)
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
        "torch_name": torch_name, "no_grad": no_grad, "facts": facts, "layout": layout,
    }


def _facts_and_layout(value) -> tuple[str, str]:
    """(`tensor_facts`, `tensor_layout`) of a value, worked out once per shape, dtype, stride, contiguity
    and size (a graph's values share a few hundred: a model's blocks repeat)."""
    if value is None:
        return "", ""
    key = (getattr(value, "shape", ()), getattr(value, "dtype", None), getattr(value, "stride", ()),
           getattr(value, "is_contiguous", True), getattr(value, "numel", 1))
    try:
        got = _FACTS.get(key)
    except TypeError:  # (an attribute that cannot be hashed: no memo)
        return tensor_facts(value), tensor_layout(value)
    if got is None:
        if len(_FACTS) >= 4096:
            _FACTS.clear()
        got = _FACTS[key] = (tensor_facts(value), tensor_layout(value))
    return got


_FACTS: dict[tuple, tuple[str, str]] = {}  # (shape, dtype, stride, contiguous, numel) -> facts, layout


def tensor_facts(value) -> str:
    """Shape, dtype, stride and contiguity of a tensor snapshot in one short line ("" for scalars)."""
    if value is None or int(getattr(value, "numel", 1) or 0) <= 1 and not getattr(value, "shape", ()):
        return ""
    shape = "×".join(str(s) for s in value.shape) or "scalar"
    parts = [shape, str(value.dtype)]
    stride = getattr(value, "stride", ())
    if stride:
        parts.append("stride " + ",".join(str(s) for s in stride))
    if not getattr(value, "is_contiguous", True):
        parts.append("non-contiguous")
    return " · ".join(parts)


def tensor_layout(value) -> str:
    """Stride and contiguity, the facts the card's value line ("2×3 i64") does not already say."""
    stride = getattr(value, "stride", ()) if value is not None else ()
    if not stride or int(getattr(value, "numel", 1) or 0) <= 1:
        return ""
    text = f"stride {','.join(str(s) for s in stride)}"
    return text if getattr(value, "is_contiguous", True) else text + " · non-contig."


def op_short_name(node) -> str:
    """The language's name of the op (`bce` rather than torch's `binary_cross_entropy`)."""
    op = getattr(node, "op", None) or ""
    torch_name = getattr(node, "torch_name", None)
    key = (op, torch_name)
    name = _SHORT_NAMES.get(key)
    if name is None:
        from explorer.core.lang.ops import find_op  # the op table imports torch: only once a graph exists

        spec = find_op(op) or find_op(torch_name)
        name = _SHORT_NAMES[key] = spec.name if spec else op
    return name


_SHORT_NAMES: dict[tuple[str, str | None], str] = {}  # (op, torch_name) -> short name (few per graph)


def build_display(trace, expanded: frozenset[str] | set[str] = frozenset(),
                  timeline: Timeline | None = None, aspect: float | None = None,
                  reuse: DisplayModel | None = None) -> DisplayModel:
    """Cards, edges and step thresholds for a trace; modules not in `expanded` become one card.

    The thresholds come from the trace's `Timeline` (given, or made here): a card shows its value
    (gradient) from the step its last member's is known. With `aspect` (the canvas's width / height),
    a long graph wraps its layers into rows when that lets it be shown larger. `reuse`: an earlier model
    of the same trace (a module expanded or collapsed since): its timeline and the info of its node
    cards are taken over as they are (the same dicts), so only the changed cards get new info.
    """
    with no_gc():  # every object made here lives as long as the model: nothing for the collector to find
        return _build_display(trace, expanded, timeline, aspect, reuse)


def _build_display(trace, expanded, timeline, aspect, reuse=None) -> DisplayModel:
    earlier = reuse.info if reuse is not None and reuse.source is trace else {}
    if timeline is None:
        timeline = reuse.timeline if earlier and reuse.timeline is not None else Timeline(trace)
    model = DisplayModel(timeline=timeline, source=trace)
    grad_ids = set(trace.backward_order)
    graph = trace.graph
    forward_index = {nid: i for i, nid in enumerate(trace.forward_order)}
    has_modules = any(getattr(n, "module", None) for n in trace.nodes.values())
    if has_modules:
        graph = collapse(trace, set(expanded))
    infos = model.info
    # a card shown before as it is now (a node's own card: its info, steps and membership depend on the
    # node alone) is taken over with one lookup; only the cards new to this model (the module expanded or
    # collapsed, its members; every module card) are worked out
    same = bool(earlier) and timeline is reuse.timeline
    fresh: list[str] = []
    if same:
        for did in graph:
            info = earlier.get(did)
            if info is None or info["kind"] == "module":
                fresh.append(did)
            infos[did] = info
    else:
        fresh = list(graph)
        infos.update(dict.fromkeys(fresh))
    node_attrs = graph.nodes
    value_step, grad_step = timeline.value_at, timeline.grad_at
    values, grads, member_of = {}, {}, model.member_of
    for did in fresh:
        if did in trace.nodes:
            info = earlier.get(did)
            if info is None or info["kind"] == "module":
                info = _node_info(trace.nodes[did], did in grad_ids)
        else:
            info = _module_info(did, node_attrs[did], trace, grad_ids, forward_index)
        infos[did] = info
        if len(info["members"]) == 1:  # a node's own card (most cards): its own steps
            m = info["members"][0]
            values[did] = value_step.get(m, 0)
            if m in grad_step:
                grads[did] = grad_step[m]
        else:
            f = [value_step[m] for m in info["members"] if m in value_step]
            b = [grad_step[m] for m in info["members"] if m in grad_step]
            values[did] = max(f) if f else 0
            if b:
                grads[did] = max(b)
    if same:  # the kept cards' entries as they were; the new cards' added (in the model's card order)
        member_of.update(reuse.member_of)
        values = {**reuse.value_at, **values}
        grads = {**reuse.grad_at, **grads}
    for did in fresh:
        for m in infos[did]["members"]:
            member_of[m] = did
    model.value_at = dict(zip(infos, map(values.__getitem__, infos), strict=True))
    in_grads = list(filter(grads.__contains__, infos))
    model.grad_at = dict(zip(in_grads, map(grads.__getitem__, in_grads), strict=True))
    if graph is trace.graph:
        model.edges = [(u, v) for u, v in graph.edges() if u in model.info and v in model.info and u != v]
    else:  # a collapsed graph: every node a card, no edge from a card to itself
        model.edges = edge_list(graph)
    segments = segment_of(graph, getattr(trace, "modules", {}) or {}, set(expanded)) \
        if has_modules and len(model.info) >= COMPOSE_MIN_NODES else None
    model.flat = _positions(graph, model, segments)
    model.frames = _frames(trace, model, set(expanded)) if has_modules else []
    shape = _shape(model.flat[0])  # once per model: every wrapping step needs it
    set_bands(model, best_bands(model.flat[0], aspect, shape=shape) if aspect else 1, shape=shape)
    if graph is not trace.graph:  # the collapsed graph made here
        _release(graph)
    return model


def xy_array(positions: dict[str, tuple[float, float]], ids=None) -> np.ndarray:
    """The (x, y) of every point of `positions` (of `ids`, in their order, when given) as an n x 2 array;
    in one C pass (an array made from a list of tuples costs about four times as much)."""
    points = positions.values() if ids is None else map(positions.__getitem__, ids)
    n = len(positions) if ids is None else len(ids)
    return np.fromiter(chain.from_iterable(points), dtype=float, count=2 * n).reshape(n, 2)


def card_arrays(model: DisplayModel) -> tuple[np.ndarray, dict[str, int], np.ndarray]:
    """(the cards' centres as an n x 2 array in `model.positions`' order, display id -> its row, the rows of
    each edge's ends as an m x 2 array in `model.edges`' order), made once per layout of the model (kept
    while its positions and edges are the very objects they were made for)."""
    got = model.arrays
    if got is not None and got[0] is model.positions and got[1] is model.edges:
        return got[2:]
    pos, edges = model.positions, model.edges
    index = {did: k for k, did in enumerate(pos)}
    m = len(edges)
    ends = np.fromiter(map(index.__getitem__, chain.from_iterable(edges)), dtype=np.intp,
                       count=2 * m).reshape(m, 2)
    xy = xy_array(pos)
    model.arrays = (pos, edges, xy, index, ends)
    return xy, index, ends


def _release(graph) -> None:
    """Free a networkx graph made for one build now, by reference counting: its cached views (`edges`,
    `nodes`, `succ`) point back at it, so dropped as it is, its ~3 dicts per node wait as cyclic garbage
    for the collector's next pass (measured: 27k objects and 50-240 ms at 10,000 cards, every expand)."""
    vars(graph).clear()


def set_bands(model: DisplayModel, bands: int, shape: tuple[int, float] | None = None) -> None:
    """Lay the model's layers out in `bands` rows (1: one left-to-right run): positions, bends, ports.
    `shape`: `_shape(model.flat[0])` when the caller has it already."""
    model.bands = max(1, int(bands))
    positions, bends = model.flat
    shape = _shape(positions) if shape is None else shape
    model.row_h, model.row_starts = 0.0, []
    if model.bands > 1:
        positions, bends, model.row_starts, band = _wrap(positions, bends, model.edges, model.bands, shape)
        model.row_h = _wrapped_extent(*shape, 1)[1] + BAND_GAP
        # keyboard order: row by row (the band a card was wrapped into is its row: `row_of`), then left to
        # right, then top to bottom within a layer
        ids = list(model.info)
        xy = xy_array(positions, ids)
        rows = np.fromiter(map(band.__getitem__, ids), dtype=np.intp, count=len(ids))
        model.order = [ids[k] for k in np.lexsort((np.arange(len(ids)), xy[:, 1], xy[:, 0], rows)).tolist()]
    else:
        model.order = sorted(model.info, key=positions.__getitem__)
    model.positions, model.bends = positions, bends
    model.ports = _ports(model)


def _module_info(did: str, attrs: dict, trace, grad_ids: set[str],
                 forward_index: dict[str, int]) -> dict:
    """Card info for a collapsed module group."""
    members = [m for m in attrs.get("members", []) if m in trace.nodes]
    path = attrs.get("module") or attrs.get("path") or did
    ordered = [m for m in members if m in forward_index]  # the module's value: its last member's
    last = trace.nodes[max(ordered, key=forward_index.__getitem__)] if ordered else None
    label = attrs.get("label", "module")
    tip = _KIND_HELP["module"].format(n=len(members))
    return {
        "id": did, "kind": "module", "title": label, "subtitle": str(path), "path": str(path),
        "value": last.value if last else None, "grad": getattr(last, "grad", None) if last else None,
        "is_output": any(getattr(trace.nodes[m], "is_output", False) for m in members),
        "tooltip": f"<b>{label}</b> ({path}): {tip}", "members": members,
        "has_grad": any(m in grad_ids for m in members), "torch_name": None,
    }


def segment_of(graph, classes: dict[str, str], expanded: set[str]) -> dict[str, str]:
    """The top-level module each card of a collapsed graph belongs to (its first path part; the child of
    an expanded list of modules, such as "blocks.3", for cards inside one): the segments that
    `composed_layout` lays out one at a time. Cards outside any module are absent (each its own)."""
    out = {}
    tops: dict[str, str] = {}  # a module path -> its segment (shared by many cards)
    for did, attrs in graph.nodes(data=True):
        path = attrs.get("path") if attrs.get("kind") == "module" else attrs.get("module")
        if not path:
            continue
        top = tops.get(path)
        if top is None:
            parts = path.split(".")
            k = 1
            while k < len(parts) and classes.get(".".join(parts[:k])) in _CONTAINERS \
                    and ".".join(parts[:k]) in expanded:
                k += 1
            top = tops[path] = ".".join(parts[:k])
        out[did] = top
    return out


def _positions(graph, model: DisplayModel, segments: dict[str, str] | None = None):
    """Layered left-to-right card centres and long-edge bend points in scene pixels; with `segments`
    (card -> top-level module), laid out one segment at a time (`composed_layout`)."""
    lay = layered_layout(graph, direction="LR") if segments is None else composed_layout(graph, segments)
    bends_raw = lay.edge_points or {}
    info = model.info
    if lay.method == "composed" and len(lay.positions) == len(info):  # every card, as Python floats already
        raw = lay.positions
    else:
        raw = {k: (float(v[0]), float(v[1])) for k, v in lay.positions.items() if k in info}
    if len(raw) < len(info):
        for did in info:  # any node the layout skipped goes to the far left, not off the map
            raw.setdefault(did, (0.0, float(len(raw))))
    # one x unit is one layer; y units are whatever the layout used: scale the closest pair apart (of the
    # cards in one column, x rounded to 6 places), in array passes
    xy = xy_array(raw)
    unit_y = float("inf")
    if len(xy):
        xs, x_of = np.unique(xy[:, 0], return_inverse=True)
        columns = [round(x, 6) for x in xs.tolist()]
        number = {c: i for i, c in enumerate(dict.fromkeys(columns))}
        column = np.array([number[c] for c in columns], dtype=np.intp)[x_of.reshape(-1)]
        order = np.lexsort((xy[:, 1], column))  # column by column, top to bottom
        column, ys = column[order], xy[order, 1]
        gaps = ys[1:] - ys[:-1]
        gaps = gaps[(column[1:] == column[:-1]) & (gaps > 1e-9)]
        if len(gaps):
            unit_y = float(gaps.min())
    if unit_y == float("inf"):
        unit_y = 1.0
    sx, sy = CARD_W + GAP_X, (CARD_H + GAP_Y) / unit_y
    positions = dict(zip(raw, zip((xy[:, 0] * sx).tolist(), (xy[:, 1] * sy).tolist(), strict=True),
                         strict=True))
    bent = [(e, pts) for e, pts in bends_raw.items() if pts]
    bends = {}
    if bent:  # every bend point scaled in one array pass, then cut back into each edge's list
        sizes = [len(pts) for _e, pts in bent]
        total = sum(sizes)
        points = np.fromiter(chain.from_iterable(chain.from_iterable(pts for _e, pts in bent)), dtype=float,
                             count=2 * total).reshape(total, 2)
        scaled = list(zip((points[:, 0] * sx).tolist(), (points[:, 1] * sy).tolist(), strict=True))
        ends = np.cumsum(sizes).tolist()
        bends = {e: scaled[end - size:end] for (e, _pts), size, end in zip(bent, sizes, ends, strict=True)}
    return positions, bends


def _extent(positions, bands: int) -> tuple[float, float]:
    """Width and height (scene pixels, cards included) of the layers wrapped into `bands` rows."""
    n_layers, span = _shape(positions)
    return _wrapped_extent(n_layers, span, bands)


def _shape(positions) -> tuple[int, float]:
    """(number of layers, vertical span of the card centres)."""
    if not positions:
        return 0, 0.0
    xy = xy_array(positions)
    return len({round(x, 3) for x in set(xy[:, 0].tolist())}), float(xy[:, 1].max() - xy[:, 1].min())


def _wrapped_extent(n_layers: int, span: float, bands: int) -> tuple[float, float]:
    per_band = -(-n_layers // bands)
    return per_band * (CARD_W + GAP_X) - GAP_X, bands * (span + CARD_H) + (bands - 1) * BAND_GAP


def _band_spans(positions, bands: int, bends=None, shape=None) -> tuple[float, list[tuple[float, float]]]:
    """(layer pitch, the lowest and highest card centre or bend of each of `bands` rows) of the layers
    wrapped; `shape`: `_shape(positions)` when known."""
    sx = CARD_W + GAP_X
    per_band = -(-(_shape(positions) if shape is None else shape)[0] // bands)
    lo = [float("inf")] * bands
    hi = [float("-inf")] * bands
    paths = (bends or {}).values()
    n = len(positions) + sum(map(len, paths))
    if n:  # each layer's row worked out once (Python), its points' lowest and highest in arrays
        xy = np.fromiter(chain.from_iterable(chain(positions.values(), chain.from_iterable(paths))),
                         dtype=float, count=2 * n).reshape(n, 2)
        row = np.minimum(bands - 1, _layer_numbers(xy[:, 0], sx) // per_band)
        low, high = np.full(bands, np.inf), np.full(bands, -np.inf)
        np.minimum.at(low, row, xy[:, 1])
        np.maximum.at(high, row, xy[:, 1])
        lo, hi = low.tolist(), high.tolist()
    return sx, [(a, b) if a <= b else (0.0, 0.0) for a, b in zip(lo, hi, strict=True)]


def _row_bases(spans: list[tuple[float, float]]) -> list[float]:
    """The scene y where each row's highest card centre goes: rows as tall as their own cards, one under
    the other with BAND_GAP between (a row holding one card is not as tall as the tallest row)."""
    bases, y = [], 0.0
    for lo, hi in spans:
        bases.append(y)
        y += hi - lo + CARD_H + BAND_GAP
    return bases


def _wrapped_size(positions, bands: int) -> tuple[float, float]:
    """Width and height (cards included) of the layers wrapped into `bands` rows of their own heights."""
    n_layers, _span = _shape(positions)
    per_band = -(-n_layers // bands)
    _sx, spans = _band_spans(positions, bands)
    height = sum(hi - lo + CARD_H for lo, hi in spans) + (bands - 1) * BAND_GAP
    return per_band * (CARD_W + GAP_X) - GAP_X, height


def best_bands(positions: dict[str, tuple[float, float]], aspect: float,
               shape: tuple[int, float] | None = None) -> int:
    """How many rows to wrap the layers into so that the graph shows largest in a canvas of `aspect`
    (width / height); 1 unless wrapping gains at least WRAP_GAIN. `shape`: `_shape(positions)` if known."""
    if not positions:
        return 1
    n_layers, span = _shape(positions) if shape is None else shape
    if n_layers < WRAP_MIN_LAYERS:
        return 1

    bands = np.arange(1, n_layers + 1)  # every row count at once (`_wrapped_extent` in arrays)
    w = -(-n_layers // bands) * (CARD_W + GAP_X) - GAP_X
    h = bands * (span + CARD_H) + (bands - 1) * BAND_GAP
    scale = np.minimum(aspect / np.maximum(w, 1.0), 1.0 / np.maximum(h, 1.0))
    best = int(np.argmax(scale))  # the fewest rows of the largest
    return best + 1 if scale[best] >= WRAP_GAIN * scale[0] else 1


def fit_bands(positions: dict[str, tuple[float, float]], width: float, height: float, max_scale: float,
              margin: float = 0.0, readable: float = 0.0, margin_y: float | None = None) -> int:
    """How many rows to wrap the layers into for a canvas of `width` x `height` pixels, drawn at most at
    `max_scale` with `margin` scene pixels around the graph (`margin_y` above and below it, when given).

    Long graphs (WRAP_MIN_LAYERS layers or more) wrap as `best_bands` says. Shorter graphs of at least
    SHORT_WRAP_MIN_LAYERS layers wrap into the fewest rows that show them largest, when that is at least
    SHORT_WRAP_GAIN times as large as one row, or when one row is drawn below the `readable` zoom and
    rows reach it: a 5-layer program in a tall canvas then fills it instead of a strip across its middle.
    Of the wrappings, the fewest rows within SHORT_WRAP_NEAR of the largest drawing, and readable where
    any is, win (each row break is an edge turning back). The zoom cap counts: a graph already drawn at
    `max_scale` stays in one row.
    """
    if not positions or width <= 0 or height <= 0:
        return 1
    n_layers, span = _shape(positions)
    if n_layers >= WRAP_MIN_LAYERS:
        return best_bands(positions, width / height)
    if n_layers < SHORT_WRAP_MIN_LAYERS:
        return 1

    def scale(bands: int) -> float:
        # rows as tall as their own cards only where one row is not readable: a graph readable in one row
        # wraps as it always did (by the tallest layer's height), reading left to right where it can
        w, h = _wrapped_size(positions, bands) if compact else _wrapped_extent(n_layers, span, bands)
        turns = 2 * TURN_W if bands > 1 else 0.0  # edges turning back to the next row pass the cards
        return min(width / (w + turns + margin), height / (h + m_y), max_scale)

    m_y = margin if margin_y is None else margin_y
    compact = False  # read by scale(); one row measures the same either way
    compact = scale(1) < readable
    options = range(1, -(-n_layers // 2) + 1)
    largest = max(scale(b) for b in options)
    enough = max(SHORT_WRAP_NEAR * largest, min(readable, largest))  # readable when rows can be
    best = next(b for b in options if scale(b) >= enough)
    if scale(1) < readable <= scale(best):
        return best
    return best if scale(best) >= SHORT_WRAP_GAIN * scale(1) else 1


def _wrap(positions, bends, edges, bands: int, shape=None):
    """Positions and bends with the layers cut into `bands` rows stacked top to bottom, the rows' starts
    and the row of each card (`shape`: `_shape(positions)` when known).

    An edge that runs from the end of one row to the start of the next turns back through the gap
    under the row: right, down, left along the gap, down, right into its target.
    """
    shape = _shape(positions) if shape is None else shape
    per_band = -(-shape[0] // bands)
    sx, spans = _band_spans(positions, bands, bends, shape)
    bases = _row_bases(spans)

    where: dict[float, tuple[float, float, float, int]] = {}  # x -> (wrapped x, top, base, band)

    def column(x: float) -> tuple[float, float, float, int]:
        got = where.get(x)
        if got is None:  # once per layer
            layer = round(x / sx)
            band = min(bands - 1, layer // per_band)
            got = where[x] = ((layer - band * per_band) * sx, spans[band][0], bases[band], band)
        return got

    def place(x: float, y: float) -> tuple[float, float]:
        new_x, top, base, _band = column(x)
        return new_x, y - top + base

    def band_of(x: float) -> int:
        return column(x)[3]

    new_pos, band = {}, {}
    if positions:  # every card moved in array passes (its layer's row, column and shift)
        ids = list(positions)
        xy = xy_array(positions)
        new_x, new_y, row = _wrapped_points(xy, sx, per_band, bands, spans, bases)
        new_pos = dict(zip(ids, zip(new_x.tolist(), new_y.tolist(), strict=True), strict=True))
        band = dict(zip(ids, row.tolist(), strict=True))
    new_bends = {}
    # the edges that bend after wrapping: those with bends before and those from one row into another (in
    # the edges' order); a short edge within one row has none, before or after
    m = len(edges)
    if m and band:
        starts, ends = zip(*edges, strict=True)
        rows = band.__getitem__
        cut = np.fromiter(map(rows, starts), dtype=np.intp, count=m) != \
            np.fromiter(map(rows, ends), dtype=np.intp, count=m)
        cut |= np.fromiter(map(bends.__contains__, edges), dtype=bool, count=m)
        bending = list(map(edges.__getitem__, np.flatnonzero(cut).tolist()))
    else:
        bending = []
    # a long edge within one row (most of those that bend): its bends move as its row, in one array pass
    # over all of them; the rest (an edge whose bends reach another row) turn back below (Python)
    moved = _moved_bends(bending, bends, band, sx, per_band, bands, spans, bases)
    for u, v in bending:
        got = moved.get((u, v))
        if got is not None:
            if got:
                new_bends[(u, v)] = got
            continue  # (a short edge within one row: no bend before or after wrapping)
        inner = bends.get((u, v), ())
        raw = [positions[u], *inner, positions[v]]
        out: list[tuple[float, float]] = []
        q, q_band = new_pos[u], band_of(raw[0][0])
        for i in range(1, len(raw)):
            x, y = raw[i]
            p, p_band = place(x, y), band_of(x)
            if p_band != q_band:  # the turn back into the next row
                turn_x = q[0] + CARD_W / 2 + GAP_X / 2  # right of the previous column's cards
                back_x = p[0] - CARD_W / 2 - GAP_X / 2  # left of the next row's first column
                # the gap under the row the edge leaves
                gap_y = bases[q_band] + spans[q_band][1] - spans[q_band][0] + CARD_H / 2 + BAND_GAP / 2
                out += [(turn_x, q[1]), (turn_x, gap_y), (back_x, gap_y), (back_x, p[1])]
            if i < len(raw) - 1:
                out.append(p)
            q, q_band = p, p_band
        if out:
            new_bends[(u, v)] = out
    starts = [base - CARD_H / 2 - BAND_GAP / 2 if b else 0.0 for b, base in enumerate(bases)]
    return new_pos, new_bends, starts, band


def _layer_numbers(x: np.ndarray, sx: float) -> np.ndarray:
    """The layer of each x (`round(x / sx)`, halves to even as Python rounds)."""
    return np.rint(x / sx).astype(np.intp)


def _wrapped_points(xy: np.ndarray, sx: float, per_band: int, bands: int, spans, bases):
    """(new x, new y, row) of points (an n x 2 array) when the layers wrap into `bands` rows of `per_band`
    layers: what `_wrap`'s `place` does to one point, in array passes."""
    layer = _layer_numbers(xy[:, 0], sx)
    row = np.minimum(bands - 1, layer // per_band)
    top = np.array([lo for lo, _hi in spans], dtype=float)
    new_x = (layer - row * per_band) * sx
    new_y = xy[:, 1] - top[row] + np.array(bases, dtype=float)[row]
    return new_x, new_y, row


def _moved_bends(bending, bends, band: dict, sx: float, per_band: int, bands: int, spans, bases) -> dict:
    """The wrapped bends of each edge of `bending` whose ends and bends all lie in one row (an empty list
    for one without bends), in one array pass over all their points; the other edges are absent."""
    same = [e for e in bending if band[e[0]] == band[e[1]]]
    out = {e: [] for e in same if not bends.get(e)}  # (no bend, or an empty list of them)
    bent = [e for e in same if bends.get(e)]
    if not bent:
        return out
    paths = list(map(bends.__getitem__, bent))
    sizes = np.fromiter(map(len, paths), dtype=np.intp, count=len(paths))
    total = int(sizes.sum())
    xy = np.fromiter(chain.from_iterable(chain.from_iterable(paths)), dtype=float, count=2 * total)
    new_x, new_y, row = _wrapped_points(xy.reshape(total, 2), sx, per_band, bands, spans, bases)
    own = np.repeat(np.fromiter(map(band.__getitem__, (u for u, _v in bent)), dtype=np.intp,
                                count=len(bent)), sizes)
    first = np.cumsum(sizes) - sizes
    inside = np.minimum.reduceat((row == own).astype(np.int8), first).astype(bool).tolist()
    points = list(zip(new_x.tolist(), new_y.tolist(), strict=True))
    for e, a, b, ok in zip(bent, first.tolist(), (first + sizes).tolist(), inside, strict=True):
        if ok:
            out[e] = points[a:b]
    return out


def _in_module(path: str | None, module: str) -> bool:
    """Whether `path` lies inside the module `module` (a rolled-up "blocks.0-3" holds blocks.0 to 3)."""
    if not path:
        return False
    if path == module or path.startswith(module + "."):
        return True
    head, _dot, span = module.rpartition(".")
    lo, dash, hi = span.partition("-")
    if dash and lo.isdigit() and hi.isdigit():
        prefix = head + "." if head else ""
        rest = path[len(prefix):] if path.startswith(prefix) else ""
        index = rest.split(".", 1)[0].split("#", 1)[0]
        return index.isdigit() and int(lo) <= int(index) <= int(hi)
    return False


def _frames(trace, model: DisplayModel, expanded: set[str]) -> list[tuple[str, str, list[str]]]:
    """A labelled frame for each expanded module that still shows cards: its path, label and members (in
    the model's card order).

    Python visits each card once to read its module and each module path once to find the expanded
    modules around it; each card is filed in those frames in array passes (cards sit in several)."""
    classes = getattr(trace, "modules", {}) or {}
    ids = list(model.info)
    nodes = trace.nodes
    wheres = [info.get("path") if info["kind"] == "module" else getattr(nodes.get(did), "module", None)
              for did, info in model.info.items()]
    number: dict = {}  # a module path -> its number (shared by many cards)
    codes = np.fromiter(map(number.setdefault, wheres, range(len(wheres))), dtype=np.intp, count=len(ids))
    framed = {path: f for f, path in enumerate(sorted(expanded, key=lambda p: (p.count("."), p)))}
    rollups = [framed[p] for p in framed if "-" in p.rpartition(".")[2]]  # "blocks.0-3": blocks.0 to 3
    paths = list(framed)
    around: dict[str, list[int]] = {"": []}  # a module path -> the frames around it (its own included)
    pair_code, pair_frame = [], []  # (a module path's number, a frame around it) for every such pair
    for where, code in number.items():
        if where:
            got = _frames_around(where, around, framed, paths, rollups)
            pair_code += [code] * len(got)
            pair_frame += got
    members: list[list[str]] = [[] for _ in framed]
    if pair_code:
        # the cards of each pair's module path, then (frame, card) pairs sorted by frame and card order
        by_code = np.argsort(codes, kind="stable")
        size = np.bincount(codes, minlength=len(wheres))
        first = np.cumsum(size) - size
        code = np.array(pair_code, dtype=np.intp)
        count = size[code]
        which = np.repeat(np.arange(len(code)), count)
        k = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
        card = by_code[first[code][which] + k]
        frame = np.array(pair_frame, dtype=np.intp)[which]
        order = np.lexsort((card, frame))
        names = list(map(ids.__getitem__, card[order].tolist()))
        ends = np.cumsum(np.bincount(frame, minlength=len(framed))).tolist()
        members = [names[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    frames = []
    for path, f in framed.items():
        if len(members[f]) > 1:  # a frame around one card would say no more than the card
            cls = classes.get(path)
            frames.append((path, f"{path} · {cls}" if cls else path, members[f]))
    return frames


def _frames_around(path: str, around: dict[str, list[int]], framed: dict[str, int], paths: list[str],
                   rollups: list[int]) -> list[int]:
    """The frames (numbers in `framed`) around module `path`, its own included: its parent's, its own, the
    rolled-up runs it lies in; each path worked out once (`around` keeps them, "" -> [])."""
    got = around.get(path)
    if got is None:
        outer = _frames_around(path.rpartition(".")[0], around, framed, paths, rollups)
        got = [*outer, framed[path]] if path in framed else outer
        more = [r for r in rollups if r not in outer and _in_module(path, paths[r])
                and not path.startswith(paths[r])]
        got = around[path] = [*got, *more] if more else got
    return got


def _ports(model: DisplayModel) -> dict[tuple[str, str], tuple[float, float]]:
    """Spread the edges leaving or entering one card over its side, in the order of the other ends.

    In array passes over the edges (a rebuild of a big graph makes few objects and Python steps)."""
    edges = model.edges
    m = len(edges)
    if not m:
        return {}
    xy, _index, ends = card_arrays(model)
    ys = xy[:, 1]
    number = np.arange(m)
    offsets = []
    for side, other in ((0, 1), (1, 0)):  # a card's outgoing edges (by their targets' y), then incoming
        card, y = ends[:, side], ys[ends[:, other]]
        order = np.lexsort((number, y, card))  # per card, top to bottom; ties in the edges' order
        card = card[order]
        first = np.flatnonzero(np.concatenate(([True], card[1:] != card[:-1])))
        size = np.diff(np.concatenate((first, [m])))
        n = np.repeat(size, size)  # edges on the side of each edge's card
        rank = number - np.repeat(first, size)  # its place among them
        step = np.minimum(12.0, (CARD_H - 30) / np.maximum(1, n - 1))
        dy = np.empty(m)
        dy[order] = (rank - (n - 1) / 2) * step  # one edge: in the middle of the side
        offsets.append(dy.tolist())
    return dict(zip(edges, zip(*offsets, strict=True), strict=True))
