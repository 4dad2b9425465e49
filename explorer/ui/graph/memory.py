"""The graph's "memory" overlay: what each node keeps for backward, and how that memory falls in backward.

Everything shown comes from the trace (`explorer.core.autograd.saved`: torch's own saved-tensor hooks)
and the Timeline (`saved_bytes_at(k)`); this module only draws it:

- a badge under each card with the bytes its grad_fn keeps (struck through once its backward has run
  and autograd has freed them),
- a legend in the canvas's top-right corner: the total saved for backward beside the weights and their
  gradients, and a plot of the saved bytes alive over the player's steps with the current step marked,
- the inspector's "Saved for backward" section: the selected node's saved tensors and the op table's
  one-line reason.

The overlay is switched for every graph at once by the View menu's "Memory overlay" action
(explorer.ui.common.actions "app.memory_overlay").
"""

from __future__ import annotations

import bisect
import html

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainterPath, QPen
from PySide6.QtWidgets import QApplication, QGraphicsItem, QGroupBox, QLabel, QVBoxLayout
from shiboken6 import isValid

# The core modules below load numpy and networkx (seconds on a busy machine): this module is imported by
# the main window before its first paint, so they are imported where a graph is drawn.

BADGE_H = 18.0
LEGEND_W = 260.0
PLOT_H = 54.0


class OverlaySetting(QObject):
    """Whether the memory overlay is on, for every graph of the app (one per QApplication)."""

    sig_changed = Signal(bool)
    """The overlay was switched on or off."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.enabled = False

    def set_enabled(self, on: bool) -> None:
        """Switch the overlay on every graph."""
        on = bool(on)
        if on != self.enabled:
            self.enabled = on
            self.sig_changed.emit(on)


def setting() -> OverlaySetting:
    """The app-wide overlay switch (created on first use, owned by the QApplication)."""
    app = QApplication.instance()
    found = app.findChild(OverlaySetting, "memoryOverlaySetting")
    if found is None:
        found = OverlaySetting(app)
        found.setObjectName("memoryOverlaySetting")
    return found


def bind_menu_action(action) -> None:
    """Make the View menu's action a check box that follows the app-wide switch."""
    switch = setting()
    action.setCheckable(True)
    action.setChecked(switch.enabled)
    switch.sig_changed.connect(action.setChecked)


class MemoryBadge(QGraphicsItem):
    """The strip under a card: "keeps 48 B" (or "freed 48 B" once its backward has run)."""

    def __init__(self, text: str, nbytes: int, theme: dict[str, str]):
        super().__init__()
        self.text = text
        self.nbytes = nbytes
        self.theme = theme
        self.freed = False
        self.setZValue(-1)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        """A strip as wide as the card."""
        from explorer.core.graph.display import CARD_W

        return QRectF(-CARD_W / 2, 0, CARD_W, BADGE_H)

    def set_freed(self, freed: bool) -> None:
        """Show the bytes as freed (backward has run this node) or kept."""
        if freed != self.freed:
            self.freed = freed
            self.update()

    def paint(self, painter, option, widget=None) -> None:
        """A tinted rounded strip with the text; struck through when freed."""
        t = self.theme
        rect = self.boundingRect().adjusted(6, 2, -6, -1)
        accent = QColor(t["keyword"])
        fill = QColor(accent)
        fill.setAlpha(40 if self.freed else 70)
        painter.setPen(QPen(accent if not self.freed else QColor(t["muted"]), 1.0))
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 4, 4)
        font = QFont()
        font.setPointSizeF(8.5)
        painter.setFont(font)
        painter.setPen(QColor(t["muted"] if self.freed else t["text"]))
        text = self.text if not self.nbytes else ("freed " if self.freed else "keeps ") + self.text
        shown = painter.fontMetrics().elidedText(text, Qt.ElideRight, int(rect.width() - 8))
        painter.drawText(rect.adjusted(4, 0, -4, 0), Qt.AlignVCenter | Qt.AlignLeft, shown)
        if self.freed:
            y = rect.center().y()
            painter.drawLine(QPointF(rect.left() + 4, y), QPointF(rect.left() + 4 + painter.fontMetrics()
                                                                   .horizontalAdvance(shown), y))


class MemoryOverlay:
    """The overlay of one GraphView: badges in its scene, the legend in its foreground."""

    def __init__(self, view):
        self.view = view
        self.badges: dict[str, MemoryBadge] = {}  # display id -> badge
        self._free_step: dict[str, int] = {}  # display id -> step after which its members' saves are freed
        self._born_step: dict[str, int] = {}  # display id -> the step its first member saves something
        self._totals = None  # (trace, (weight bytes, grad bytes), recompute steps) for the legend
        self._shown = 0  # the step the badges show
        self._changes: tuple[list[int], list[str]] = ([], [])  # steps where a badge changes, sorted; ids
        self._plot: tuple | None = None  # (key, path) of the legend's plot: drawn once per trace and size
        switch = setting()
        self.enabled = switch.enabled
        switch.sig_changed.connect(self.set_enabled)
        view.sig_graph_changed.connect(self.refresh)

    def set_enabled(self, on: bool) -> None:
        """Show or hide the overlay on this view (the app-wide switch outlives views: a deleted one is
        left alone)."""
        self.enabled = bool(on)
        if isValid(self.view):
            self.refresh()

    def refresh(self) -> None:
        """Put the badges back after the scene was rebuilt (or remove them when off)."""
        scene = self.view.graph_scene
        for badge in self.badges.values():
            if isValid(badge) and badge.scene() is scene:  # a rebuild's scene.clear() deleted the others
                scene.removeItem(badge)
        self.badges = {}
        self._free_step = {}
        self._born_step = {}
        self._totals = None
        tr = scene.trace
        if self.enabled and tr is not None and getattr(tr, "saved_memory", None) is not None:
            from explorer.core.autograd.saved import node_bytes
            from explorer.core.graph.display import CARD_H

            timeline = scene.model.timeline
            for did, info in scene.model.info.items():  # from the model: no card object is made
                members = [tr.nodes[m] for m in info.get("members", []) if m in tr.nodes]
                nbytes = sum(node_bytes(n) for n in members)
                recomputed = any(s.recomputed for n in members for s in n.saved or ())
                if not nbytes and not recomputed:
                    continue
                text = badge_text(members, nbytes) if nbytes else "nothing: recomputed in backward"
                badge = MemoryBadge(text, nbytes, scene.theme)
                x, y = scene.model.positions[did]
                badge.setPos(QPointF(x, y + CARD_H / 2 + 2))
                scene.addItem(badge)
                self.badges[did] = badge
                keeping = [n for n in members if node_bytes(n)] or members
                steps = [timeline.step_of("backward", n.id) for n in keeping]
                if nbytes and steps and None not in steps:
                    self._free_step[did] = max(steps)
                self._born_step[did] = min(timeline.value_at.get(n.id, 0) for n in keeping)
            pairs = sorted([(k, d) for d, k in self._free_step.items()] + [(k, d) for d, k in
                                                                           self._born_step.items()])
            self._changes = ([k for k, _d in pairs], [d for _k, d in pairs])
            self._update_badges(self.badges)
        self.view.viewport().update()

    def on_step(self) -> None:
        """Mark the badges of nodes whose backward has run as freed; redraw the legend's marker.

        Only badges with a change between the old and the new step are touched (found by bisection), so a
        player step costs the same on 10 or 10,000 cards."""
        k = self.view.step
        steps, ids = self._changes
        lo, hi = min(self._shown, k), max(self._shown, k)
        touched = ids[bisect.bisect_right(steps, lo):bisect.bisect_right(steps, hi)]
        self._update_badges({d: self.badges[d] for d in touched if d in self.badges})
        if self.enabled:
            self.view.viewport().update()

    def _update_badges(self, badges: dict[str, MemoryBadge]) -> None:
        k = self._shown = self.view.step
        for did, badge in badges.items():
            if not isValid(badge):  # the scene is being rebuilt: refresh() follows
                continue
            at = self._free_step.get(did)
            badge.set_freed(at is not None and k >= at)
            badge.setVisible(k >= self._born_step.get(did, 0))

    def paint_legend(self, painter) -> None:
        """The totals and the plot of saved bytes alive per step, in the viewport's top-right corner."""
        scene = self.view.graph_scene
        tr, timeline = scene.trace, scene.model.timeline
        if not self.enabled or tr is None or timeline is None or tr.saved_memory is None:
            return
        t = scene.theme
        memory = tr.saved_memory
        if self._totals is None or self._totals[0] is not tr:  # computed once per trace, not per paint
            from explorer.core.autograd.saved import param_bytes, recompute_steps

            self._totals = (tr, param_bytes(tr), recompute_steps(timeline))
        (weights, grads), recomputes = self._totals[1], self._totals[2]
        k = self.view.step
        lines = legend_lines(memory, weights, grads, timeline.saved_bytes_at(k))
        font = QFont()
        font.setPointSizeF(8.5)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        line_h = metrics.height() + 2
        width = max(LEGEND_W, 24 + max(metrics.horizontalAdvance(text) for text in lines))
        width = min(width, max(LEGEND_W, self.view.viewport().width() - 20))
        box = QRectF(self.view.viewport().width() - width - 10, 10, width,
                     12 + line_h * len(lines) + PLOT_H + 10)
        bg = QColor(t["panel"])
        bg.setAlpha(235)
        painter.setPen(QColor(t["card_border"]))
        painter.setBrush(bg)
        painter.drawRoundedRect(box, 6, 6)
        y = box.top() + 6
        for i, text in enumerate(lines):
            painter.setPen(QColor(t["text"] if i == 0 else t["muted"]))
            painter.drawText(QRectF(box.left() + 10, y, box.width() - 20, line_h),
                             Qt.AlignVCenter | Qt.AlignLeft, text)
            y += line_h
        plot = QRectF(box.left() + 10, y + 4, box.width() - 20, PLOT_H)
        self._paint_plot(painter, plot, timeline, k, t, recomputes)

    def _paint_plot(self, painter, plot: QRectF, timeline, k: int, t: dict[str, str],
                    recomputes: dict[str, int]) -> None:
        alive = timeline.saved_alive
        n = len(alive) - 1
        peak = max(alive) or 1
        painter.setPen(QPen(QColor(t["grid"]), 1.0))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(plot)
        if n <= 0:
            return
        x_of = lambda i: plot.left() + plot.width() * i / n  # noqa: E731
        y_of = lambda b: plot.bottom() - plot.height() * b / peak  # noqa: E731
        fwd = timeline.forward_length
        split = QPen(QColor(t["muted"]), 1.0, Qt.DotLine)
        painter.setPen(split)
        painter.drawLine(QPointF(x_of(fwd), plot.top()), QPointF(x_of(fwd), plot.bottom()))
        key = (n, plot.left(), plot.top(), plot.width(), plot.height())
        if self._plot is None or self._plot[0] is not alive or self._plot[1] != key:  # every paint draws
            # the legend: its plot is built once per trace and size
            path = QPainterPath(QPointF(x_of(0), y_of(alive[0])))
            for i in range(1, n + 1):  # a step function: memory changes at events
                path.lineTo(QPointF(x_of(i), y_of(alive[i - 1])))
                path.lineTo(QPointF(x_of(i), y_of(alive[i])))
            self._plot = (alive, key, path)
        painter.setPen(QPen(QColor(t["keyword"]), 1.8))
        painter.drawPath(self._plot[2])
        font = QFont()
        font.setPointSizeF(7.5)
        painter.setFont(font)
        for group, step in recomputes.items():  # checkpointing runs the forward again here
            painter.setPen(QPen(QColor(t["edge_forward"]), 1.0, Qt.DashLine))
            painter.drawLine(QPointF(x_of(step), plot.top() + 12), QPointF(x_of(step), plot.bottom()))
            painter.drawText(QRectF(x_of(step) - 30, plot.bottom() - 12, 60, 12), Qt.AlignCenter,
                             "↻ " + group.rpartition(".")[2])
        painter.setPen(QPen(QColor(t["current"]), 2.0))
        x = x_of(max(0, min(k, n)))
        painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        painter.setPen(QColor(t["muted"]))
        painter.drawText(QRectF(plot.left() + 2, plot.top(), plot.width() / 2, 12),
                         Qt.AlignLeft | Qt.AlignTop, "forward")
        painter.drawText(QRectF(x_of(fwd) + 2, plot.top(), plot.right() - x_of(fwd) - 4, 12),
                         Qt.AlignLeft | Qt.AlignTop, "backward")


def badge_text(members: list, nbytes: int) -> str:
    """"48 B: output" for one node with one saved tensor, "1.5 KiB in 3 tensors" otherwise."""
    from explorer.core.numbers import format_bytes

    saved = [s for n in members for s in n.saved or () if not s.recomputed and not s.param]
    if len(saved) == 1:
        return f"{format_bytes(nbytes)}: {saved[0].role}"
    return f"{format_bytes(nbytes)} in {len(saved)} tensors"


def legend_lines(memory, weights: int, grads: int, alive: int) -> list[str]:
    """The legend's text: the total saved for backward, what is alive at this step, weights and grads."""
    from explorer.core.numbers import format_bytes

    lines = [f"Saved for backward: {format_bytes(memory.activations)}",
             f"alive at this step: {format_bytes(alive)}",
             f"weights {format_bytes(weights)} · their grads {format_bytes(grads)}"]
    if memory.params:
        lines.append(f"(it also refers to {format_bytes(memory.params)} of weights: no extra memory)")
    if memory.recomputed:
        lines.append(f"{memory.recomputed} tensors not kept: checkpointing recomputes them (↻ block)")
    return lines


# ------------------------------------------------------------------------------------------ inspector


def add_inspector_section(inspector) -> QGroupBox:
    """The inspector's "Saved for backward" box (objectName inspectorSaved), hidden until a node has one."""
    box = QGroupBox("Saved for backward")
    box.setObjectName("inspectorSaved")
    box.setToolTip("The tensors this op's grad_fn keeps until its backward runs, read from torch's "
                   "saved-tensor hooks: training needs this memory, inference does not.")
    label = QLabel("")
    label.setObjectName("inspectorSavedText")
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    QVBoxLayout(box).addWidget(label)
    box.setVisible(False)
    inspector.saved_box, inspector.saved_label = box, label
    return box


def show_saved(inspector, node) -> None:
    """Fill the inspector's box for `node`: its saved tensors and the op table's reason."""
    text = saved_html(node)
    inspector.saved_label.setText(text)
    inspector.saved_box.setVisible(bool(text))


def saved_html(node) -> str:
    """Rich text listing a node's saved tensors (role, shape, dtype, bytes, sharing) and why; "" if none."""
    from explorer.core.autograd.saved import reason_for
    from explorer.core.numbers import format_bytes

    saved = getattr(node, "saved", None)
    if not saved:
        return ""
    rows = []
    for s in saved:
        if s.recomputed:
            rows.append(f"<li><b>{html.escape(s.role)}</b>: not kept, recomputed during backward "
                        f"(activation checkpointing)</li>")
            continue
        shape = "×".join(str(d) for d in s.shape) or "scalar"
        notes = [n for n, on in (("a weight: kept anyway", s.param), ("shared with another node", s.shared))
                 if on]
        extra = f" <i>({', '.join(notes)})</i>" if notes else ""
        # a break opportunity (zero-width space) after the dot: the name fits a narrow inspector column
        where = html.escape(f"{s.grad_fn}.\u200b_saved_{s.attr}")
        rows.append(f"<li><b>{html.escape(s.role)}</b>: {shape} {s.dtype}, {format_bytes(s.bytes)}"
                    f" <span style='color:gray'>{where}</span>{extra}</li>")
    reason = reason_for(node)
    why = f"<p>{html.escape(reason)}</p>" if reason else ""
    return f"{why}<ul style='margin-left:-20px'>{''.join(rows)}</ul>"
