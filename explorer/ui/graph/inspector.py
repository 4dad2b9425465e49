"""The inspector: everything about the selected node, in full.

Value and gradient as a grid (or a heatmap for big tensors), the tensor's metadata, the chain rule
with numbers, and for parameters autograd beside finite differences and the manual formula.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLayout,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.core.numbers import fmt_peak
from explorer.ui.common.labels import WrapAnywhereLabel
from explorer.ui.graph import memory
from explorer.ui.graph.items import fmt_number, heatmap_image, is_integer_dtype, snapshot_matrix

INSPECTOR_MIN_W = 230  # narrow enough to leave the graph its room; wide enough for the check table
CHECK_HEADERS = ["method", "gradient", "max |diff|"]  # "max" over "|diff|" where the column is narrow
GRID_MAX = 100  # tensors up to this many elements are shown as a grid of numbers, bigger as a heatmap

_META_HELP = {
    "shape": "Size of each dimension.",
    "dtype": "Element type; tensors from Python ints are int64, from floats float32.",
    "stride": "How many elements to skip in memory to move one step along each dimension. "
              "Views (.T, view, reshape without copy) share memory and change only the strides.",
    "contiguous": "True when the elements lie in memory in row-major order with no gaps.",
    "requires_grad": "Whether autograd records operations on this tensor to compute gradients.",
    "grad_fn": "The backward function autograd will run for the op that produced this tensor.",
    "is_leaf": "Leaves are tensors not produced by a recorded op; only leaves keep .grad.",
}


class Inspector(QScrollArea):
    """Details of the selected node: metadata, value, gradient, chain rule, gradient checks."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.setWidgetResizable(True)
        self.setMinimumWidth(INSPECTOR_MIN_W)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # its text wraps to the column instead
        body = QWidget()
        # the body is exactly as wide as the column: text wraps to it and nothing runs past its edge
        body.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self._layout = QVBoxLayout(body)
        self._layout.setSizeConstraint(QLayout.SetNoConstraint)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self.summary = QLabel("")
        self.summary.setObjectName("gradSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.summary.setToolTip("The gradient of the output with respect to every param, as far as the "
                                "backward pass has got: ? until backward reaches that param")
        self.summary.setStyleSheet("font-family: monospace; padding: 4px;")
        self.follow_hint = QLabel("following the player · click a node to pin it")
        self.follow_hint.setObjectName("followHint")
        self.follow_hint.setStyleSheet("color: gray; font-size: 8pt;")
        self.follow_hint.setWordWrap(True)
        self.follow_hint.setVisible(False)
        self.title = QLabel("Click a node in the graph to inspect it.")
        self.title.setObjectName("inspectorTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.RichText)
        self.grad_label = QLabel("")
        self.grad_label.setObjectName("inspectorGrad")
        self.grad_label.setWordWrap(True)
        self.grad_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.meta_box = QGroupBox("Tensor")
        self.meta_form = QFormLayout(self.meta_box)
        self.meta_labels: dict[str, QLabel] = {}
        for key, tip in _META_HELP.items():
            label = WrapAnywhereLabel("")  # grad_fn names such as BinaryCrossEntropyBackward0 are long
            label.setToolTip(tip)
            name = QLabel(key)
            name.setToolTip(tip)
            self.meta_form.addRow(name, label)
            self.meta_labels[key] = label
        self.value_box, self.value_view = self._matrix_box("Value", "The forward value of this node.")
        self.grad_box, self.grad_view = self._matrix_box(
            "Gradient dL/d(node)", "How much the output L changes per unit change of each element.")
        self.chain_box = QGroupBox("Chain rule")
        self.chain_box.setToolTip("The gradient arriving from later ops (upstream) times this op's local "
                                  "derivative gives the gradient of this node.")
        chain_layout = QVBoxLayout(self.chain_box)
        self.chain_label = WrapAnywhereLabel("")  # formulas with no spaces wrap inside, not off the edge
        self.chain_label.setObjectName("chainRule")
        self.chain_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.chain_label.setStyleSheet("font-family: monospace;")
        chain_layout.addWidget(self.chain_label)
        self.check_box = QGroupBox("Gradient check")
        self.check_box.setToolTip("Autograd's gradient beside a central finite-difference estimate in "
                                  "float64 and the op table's hand-written formula.")
        check_layout = QVBoxLayout(self.check_box)
        check_layout.setContentsMargins(4, 4, 4, 4)  # the table's three columns need the room
        self.check_table = _CheckTable(0, 3)
        self.check_table.setObjectName("gradCheckTable")
        self.check_table.setHorizontalHeaderLabels(CHECK_HEADERS)
        self.check_table.verticalHeader().setVisible(False)
        self.check_table.horizontalHeader().setStretchLastSection(True)
        self.check_table.setMaximumHeight(130)
        self.check_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.check_table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.check_table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.check_table.setToolTip("autograd: what backward() computed. finite differences: "
                                    "(L(p + ε) − L(p − ε)) / 2ε in float64. manual formula: the op "
                                    "table's derivative by hand. max |diff|: largest gap to autograd.")
        check_layout.addWidget(self.check_table)
        self.tensor_box = QGroupBox("Chain rule in numbers")
        self.tensor_box.setObjectName("tensorChain")
        self.tensor_box.setToolTip("Each path: the upstream gradient, the op's local derivative and the term "
                                   "it sends back; a value read by several ops sums its paths. Click an "
                                   "element of a result to see its own scalar chain.")
        self._tensor_layout = QVBoxLayout(self.tensor_box)
        self.element_label = WrapAnywhereLabel("")
        self.element_label.setObjectName("elementChain")
        self.element_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.element_label.setStyleSheet("font-family: monospace;")
        self._tensor_parts: list[QWidget] = []
        self._trace = None
        self._node_id: str | None = None
        for box in (self.meta_box, self.value_box, self.grad_box, self.chain_box, self.check_box,
                    self.tensor_box):
            box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
        memory.add_inspector_section(self)  # saved_box: what the node keeps for backward
        for w in (self.summary, self.follow_hint, self.title, self.grad_label, self.chain_box,
                  self.tensor_box, self.value_box, self.grad_box, self.check_box, self.saved_box,
                  self.meta_box):
            self._layout.addWidget(w)
        self._layout.addStretch(1)
        self.setWidget(body)
        self.clear()

    def set_summary(self, text: str) -> None:
        """The one-line gradient summary of all params at the current step."""
        self.summary.setText(text)
        self.summary.setVisible(bool(text))

    def clear(self, message: str = "Click a node in the graph to inspect it.") -> None:
        """Show nothing but a hint."""
        self.follow_hint.setVisible(False)
        self.title.setText(message)
        self.grad_label.setText("")
        for box in (self.meta_box, self.value_box, self.grad_box, self.chain_box, self.check_box,
                    self.saved_box, self.tensor_box):
            box.setVisible(False)

    def show_node(self, node, *, title: str, chain: str = "", check: dict | None = None,
                  show_grad: bool = True, trace=None) -> None:
        """Fill the inspector for a trace node; `check` holds the gradient comparison of a param.

        With `trace`, a tensor of up to explain.MAX_GRID elements gets its chain rule as grids."""
        self.follow_hint.setVisible(False)
        kind = "output" if node.is_output else node.kind
        torch_name = f" · <code>{node.torch_name}</code>" if node.torch_name else ""
        self.title.setText(f"<b style='font-size:14pt'>{title}</b> &nbsp; {kind}"
                           f"{' · ' + node.op if node.op else ''}{torch_name}")
        v = node.value
        self.meta_box.setVisible(True)
        meta = {
            "shape": str(tuple(v.shape)), "dtype": v.dtype, "stride": str(tuple(v.stride)),
            "contiguous": str(v.is_contiguous), "requires_grad": str(v.requires_grad),
            "grad_fn": str(v.grad_fn), "is_leaf": str(v.is_leaf),
        }
        for key, text in meta.items():
            self.meta_labels[key].setText(text)
        self._show_matrix(self.value_box, self.value_view, v)
        grad = node.grad if show_grad else None
        self.grad_box.setTitle(f"Gradient dL/d{title}" if title.isidentifier() else f"Gradient dL/d({title})")
        if grad is not None:
            self._show_matrix(self.grad_box, self.grad_view, grad)
            self.grad_label.setText(self._grad_sentence(title, grad))
        else:
            self.grad_box.setVisible(False)
            self.grad_label.setText("gradient: not reached yet" if node.grad is not None else
                                    "no gradient: nothing that needs one depends on it")
        self.chain_box.setVisible(bool(chain) and grad is not None)
        self.chain_label.setText(chain)
        self._show_check(check if grad is not None else None)
        memory.show_saved(self, node)
        self._show_tensor_chain(trace if grad is not None else None, node.id)

    def show_element(self, index: tuple[int, ...]) -> None:
        """The scalar chain rule of one element of the shown tensor (what a click on a grid cell shows)."""
        from explorer.core.autograd import explain

        if self._trace is None or self._node_id is None:
            return
        self.element_label.setText("\n".join(explain.element_chain(self._trace, self._node_id, index)))
        self.element_label.setVisible(True)

    def show_selection(self, view, display_id: str | None = None) -> None:
        """Show the card selected in a GraphView (default: its selection) at the view's step.

        Serves every graph alike (expression, network iteration, GPT trace): a module card shows its
        output, the last of its members; values and gradients appear once the player has reached them.
        """
        from explorer.core.autograd import explain

        scene = view.graph_scene
        did = display_id if display_id is not None else scene.selected
        info = scene.model.info.get(did) if did else None
        trace, timeline = scene.trace, scene.model.timeline
        if info is None or trace is None or timeline is None:
            self.clear()
            return
        members = [m for m in trace.forward_order if m in set(info["members"])]
        if not members:
            self.clear()
            return
        nid, step = members[-1], view.step
        if not timeline.value_known(nid, step):
            self.clear(f"{info['title']}: not computed yet at this step of the player.")
            return
        show_grad = timeline.grad_known(nid, step)
        if info["kind"] == "module":
            title = f"{info['title']} ({info.get('path', did)})"
            head = (f"module of {len(members)} nodes; its output is {explain.node_text(trace, nid)}:\n"
                    if len(members) > 1 else "")
            chain = head + explain.chain_rule_text(trace, nid) if show_grad else ""
        else:
            title = explain.node_text(trace, nid)
            chain = explain.chain_rule_text(trace, nid) if show_grad else ""
        self.show_node(trace.nodes[nid], title=title, chain=chain, show_grad=show_grad, trace=trace)

    def follow(self, view) -> None:
        """Show whatever `view` selects, and refresh when its graph is rebuilt (one call wires a graph)."""
        view.sig_node_selected.connect(lambda did: self.show_selection(view, did or None))
        view.sig_graph_changed.connect(lambda: self.show_selection(view))

    # -- private -----------------------------------------------------------------------------

    def _show_tensor_chain(self, trace, node_id: str) -> None:
        """Per path: upstream grid × local derivative (grid or formula) = term grid; then their sum."""
        from explorer.core.autograd import explain

        for w in self._tensor_parts:
            self._tensor_layout.removeWidget(w)
            w.hide()  # gone from the screen now, not only when the event loop deletes it
            w.deleteLater()
        self._tensor_parts = []
        self._trace, self._node_id = trace, node_id
        tc = explain.tensor_chain(trace, node_id) if trace is not None else None
        self.tensor_box.setVisible(tc is not None and bool(tc.terms))
        if tc is None or not tc.terms:
            return
        for i, term in enumerate(tc.terms, 1):
            consumer = explain.node_text(trace, term.consumer_id)
            head = f"path {i} of {len(tc.terms)}, via {consumer}: " if len(tc.terms) > 1 else ""
            if head:
                self._add_part(_wrapped(head, bold=True))
            self._add_part(_wrapped(term.text, mono=True))
            # one grid under the other: a column this narrow has no room for three grids side by side
            upstream = f"upstream {explain.d_of(trace, term.consumer_id)}"
            self._add_part(_captioned(upstream, _grid(term.upstream)))
            if term.local is not None:
                self._add_part(_captioned(f"× local {term.local_formula}", _grid(term.local)))
            else:
                self._add_part(_wrapped(f"⟶ {term.local_formula} ⟶"))
            result = self._clickable(_grid(term.result))
            self._add_part(_captioned("= term" if len(tc.terms) > 1 else f"= {tc.name}", result))
        if len(tc.terms) > 1:
            self._add_part(_captioned(f"sum over the {len(tc.terms)} paths = {tc.name}",
                                      self._clickable(_grid(tc.total))))
        hint = _wrapped(f"click an element for its own chain: {tc.name}[i, j] = Σ upstream × local")
        hint.setStyleSheet("color: gray; font-size: 8pt;")
        self._add_part(hint)
        self.element_label.setText("")
        self.element_label.setVisible(False)
        self._add_part(self.element_label, keep=True)

    def _add_part(self, widget: QWidget, keep: bool = False) -> None:
        self._tensor_layout.addWidget(widget)
        if not keep:
            self._tensor_parts.append(widget)

    def _clickable(self, table: QTableWidget) -> QTableWidget:
        shape = table.property("shape")
        table.cellClicked.connect(lambda r, c: self.show_element(_index_of(shape, r, c)))
        return table

    def _grad_sentence(self, title: str, grad) -> str:
        if grad.numel == 1:
            return f"dL/d{title} = {fmt_number(float(grad.item()))}"
        m = snapshot_matrix(grad)
        peak = fmt_number(float(np.max(np.abs(m)))) if m is not None and m.size else "?"
        # the shape as a tuple: "3 tensor" would read as the value 3
        return f"dL/d{title}: tensor of shape {tuple(grad.shape)}, max |g| = {peak}"

    def _matrix_box(self, title: str, tip: str):
        box = QGroupBox(title)
        box.setToolTip(tip)
        layout = QVBoxLayout(box)
        table = QTableWidget()
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.horizontalHeader().setDefaultSectionSize(64)
        table.verticalHeader().setDefaultSectionSize(22)
        table.setMaximumHeight(220)
        heat = QLabel()
        heat.setAlignment(Qt.AlignCenter)
        scalar = QLabel()
        scalar.setStyleSheet("font-family: monospace; font-size: 13pt;")
        scalar.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        scalar.setTextInteractionFlags(Qt.TextSelectableByMouse)
        for w in (scalar, table, heat):
            layout.addWidget(w)
        return box, (scalar, table, heat)

    def _show_matrix(self, box: QGroupBox, views, snap) -> None:
        scalar, table, heat = views
        box.setVisible(True)
        integer = is_integer_dtype(snap.dtype)
        scalar.setVisible(snap.numel == 1)
        table.setVisible(1 < snap.numel <= GRID_MAX)
        heat.setVisible(snap.numel > GRID_MAX)
        if snap.numel == 1:
            scalar.setText(fmt_number(float(snap.item()), integer))
            return
        m = snapshot_matrix(snap)
        if m is None:
            return
        if snap.numel <= GRID_MAX:
            table.setRowCount(m.shape[0])
            table.setColumnCount(m.shape[1])
            for r in range(m.shape[0]):
                for c in range(m.shape[1]):
                    item = QTableWidgetItem(fmt_number(float(m[r, c]), integer))
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    table.setItem(r, c, item)
            table.setMaximumHeight(min(220, 26 + 22 * m.shape[0]))
        else:
            img = heatmap_image(m)
            pix = QPixmap.fromImage(img).scaled(240, 240, Qt.KeepAspectRatio, Qt.FastTransformation)
            heat.setPixmap(pix)
            heat.setToolTip(f"{m.shape[0]}×{m.shape[1]} heatmap: red positive, blue negative"
                            + (" (truncated)" if getattr(snap, "truncated", False) else ""))

    def _show_check(self, check: dict | None) -> None:
        self.check_box.setVisible(bool(check))
        if not check:
            return
        auto = check.get("autograd")
        rows = [("autograd", auto), ("finite differences", check.get("numeric")),
                ("manual formula", check.get("manual"))]
        rows = [(k, v) for k, v in rows if v is not None]
        self.check_table.setRowCount(len(rows))
        for r, (method, value) in enumerate(rows):
            diff = "" if method == "autograd" or auto is None else _fmt_diff(value, auto)
            for c, text in enumerate((method, fmt_peak(_to_array(value), short=True), diff)):
                item = QTableWidgetItem(text)
                item.setToolTip(fmt_peak(_to_array(value)) if c == 1 else text)
                self.check_table.setItem(r, c, item)
        self.check_table.fit_columns()


class _CheckTable(QTableWidget):
    """The gradient check's table: every column whole in its width. Where the three columns do not fit
    side by side, the method names wrap ("finite" over "differences") and the last header takes two lines,
    so the numbers keep their room; exactly as high as its rows."""

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width() and self.rowCount():
            self.fit_columns()

    def fit_columns(self) -> None:
        """Size the columns (and the rows and the height that follow from them) to the table's width."""
        header = self.horizontalHeader()
        self.setWordWrap(False)
        self.setHorizontalHeaderLabels(CHECK_HEADERS)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        self.resizeColumnsToContents()
        if sum(self.columnWidth(c) for c in range(3)) > self.viewport().width():
            metrics = self.fontMetrics()
            words = [w for r in range(self.rowCount()) for w in self.item(r, 0).text().split()]
            self.setWordWrap(True)
            self.setHorizontalHeaderLabels([h.replace(" ", "\n") for h in CHECK_HEADERS])
            self.setColumnWidth(0, max(metrics.horizontalAdvance(w) for w in [*words, "method"]) + 12)
            self.resizeColumnToContents(2)
        header.setSectionResizeMode(1, QHeaderView.Stretch)  # long tensor summaries elide, never scroll
        self.resizeRowsToContents()
        # exactly the rows: no blank strip under the last method, no clipped header
        height = header.height() + 2 * self.frameWidth()
        height += sum(self.rowHeight(r) for r in range(self.rowCount()))
        self.setFixedHeight(height)


def _as_rows(arr: np.ndarray) -> np.ndarray:
    """A tensor as a 2-D grid: the last dimension across, every other one down."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(-1, arr.shape[-1])


def _index_of(shape: tuple, row: int, col: int) -> tuple[int, ...]:
    """The tensor index of a cell of `_as_rows`'s grid."""
    if len(shape) <= 1:
        return (col,) if shape else ()
    return tuple(int(i) for i in np.unravel_index(row * shape[-1] + col, shape))


class _Grid(QTableWidget):
    """A compact read-only grid of numbers, as wide as its columns or its column in the inspector (then it
    scrolls sideways), and always exactly as high as its rows plus the scroll bar when it shows one."""

    def __init__(self, rows: np.ndarray, shape: tuple):
        super().__init__(rows.shape[0], rows.shape[1])
        self.setProperty("shape", tuple(shape))
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setVisible(False)
        self.verticalHeader().setVisible(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        for r in range(rows.shape[0]):
            for c in range(rows.shape[1]):
                item = QTableWidgetItem(fmt_number(float(rows[r, c])))
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        self.verticalHeader().setDefaultSectionSize(20)
        self._rows_h = 20 * rows.shape[0] + 2 * self.frameWidth() + 2
        self._full_w = sum(self.columnWidth(c) for c in range(rows.shape[1])) + 2 * self.frameWidth() + 2
        self.setMaximumWidth(self._full_w)
        self.setMinimumWidth(min(self._full_w, 60))
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.setFixedHeight(self._rows_h)

    def sizeHint(self):  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        hint.setWidth(self._full_w)
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        bar = self.horizontalScrollBar().sizeHint().height() if self.width() < self._full_w else 0
        if self.height() != self._rows_h + bar:
            self.setFixedHeight(self._rows_h + bar)


def _grid(arr: np.ndarray) -> QTableWidget:
    """A compact read-only grid of numbers (explorer.core.numbers formats them)."""
    arr = np.asarray(arr, dtype=np.float64)
    return _Grid(_as_rows(arr), arr.shape)


def _wrapped(text: str, *, mono: bool = False, bold: bool = False) -> QLabel:
    """A line of the tensor chain that wraps to the column, inside a formula too."""
    label = WrapAnywhereLabel(text)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    style = ("font-family: monospace;" if mono else "") + ("font-weight: bold;" if bold else "")
    if style:
        label.setStyleSheet(style)
    return label


def _captioned(caption: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(1)
    label = WrapAnywhereLabel(caption)
    label.setStyleSheet("color: gray; font-size: 8pt;")
    layout.addWidget(label)
    layout.addWidget(widget, 0, Qt.AlignLeft)
    return box


def _to_array(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().double().cpu().numpy()
    elif hasattr(v, "data") and hasattr(v, "numel") and not isinstance(v, np.ndarray):
        v = v.data
    return np.asarray(v, dtype=np.float64)


def _fmt_diff(v, ref) -> str:
    a, b = _to_array(v), _to_array(ref)
    try:
        return f"{float(np.max(np.abs(a - b))):.1e}"  # two digits say how close; the column is narrow
    except ValueError:
        return "shape differs"
