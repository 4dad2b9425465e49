"""The parameter table: every named parameter with its value, gradient and last update as heatmaps."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from explorer.core.mlp.network import ParamState

COLUMNS = ("parameter", "shape", "count", "value", "grad (.grad)", "last update Δ")
HEAT_W, HEAT_H = 110, 30
_TIPS = {
    "value": "The parameter's current values: blue negative, red positive, white zero "
    "(scaled to the largest magnitude in this tensor).",
    "grad": ".grad: dL/d(parameter) stored by backward(). Empty (—) after zero_grad() until backward "
    "reaches this parameter. optimizer.step() moves the values against it.",
    "delta": "How much the last optimizer.step() changed each value (new − old).",
}


def heatmap_pixmap(array: np.ndarray, width: int = HEAT_W, height: int = HEAT_H) -> QPixmap:
    """A diverging blue-white-red picture of a 1-D or 2-D array, symmetric around zero."""
    m = np.atleast_2d(np.nan_to_num(np.asarray(array, dtype=np.float64)))
    if m.ndim > 2:
        m = m.reshape(m.shape[0], -1)
    scale = float(np.abs(m).max()) or 1.0
    t = np.clip(m / scale, -1.0, 1.0)[..., None]
    white = np.array([248.0, 248.0, 250.0])
    red = np.array([214.0, 39.0, 40.0])
    blue = np.array([37.0, 99.0, 235.0])
    rgb = np.where(t >= 0, white + (red - white) * t, white + (blue - white) * (-t))
    h, w = m.shape
    rgba = np.full((h, w, 4), 255, dtype=np.uint8)
    rgba[..., :3] = rgb.astype(np.uint8)
    image = QImage(rgba.tobytes(), w, h, 4 * w, QImage.Format_RGBA8888).copy()
    # Nearest-neighbour scaling keeps each entry a crisp block.
    return QPixmap.fromImage(image.scaled(width, height, Qt.IgnoreAspectRatio, Qt.FastTransformation))


def _summary(array: np.ndarray | None) -> str:
    if array is None:
        return "—"
    a = np.asarray(array)
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.4g}"
    return f"max |·| {float(np.abs(a).max()):.3g}"


def _tooltip(title: str, array: np.ndarray | None, tip: str) -> str:
    if array is None:
        return f"<b>{title}</b>: none yet.<br>{tip}"
    flat = np.asarray(array).reshape(-1)
    head = ", ".join(f"{v:.4g}" for v in flat[:12])
    more = ", …" if flat.size > 12 else ""
    return (
        f"<b>{title}</b> ({flat.size} values): [{head}{more}]<br>min {flat.min():.4g}, max {flat.max():.4g}, "
        f"mean {flat.mean():.4g}<br>{tip}"
    )


class ParamTable(QTableWidget):
    """Rows of parameters (objectName paramTable); `show_states` updates them to one moment."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("paramTable")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setIconSize(QSize(HEAT_W, HEAT_H))
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(HEAT_H + 8)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)  # a name is never cut ("f…")
        header.setStretchLastSection(True)
        for col in (3, 4, 5):
            header.setSectionResizeMode(col, QHeaderView.Fixed)
            self.setColumnWidth(col, HEAT_W + 110)
        for col, key in ((3, "value"), (4, "grad"), (5, "delta")):
            self.horizontalHeaderItem(col).setToolTip(_TIPS[key])
        self.setToolTip("Every trainable tensor of the network. Hover a heatmap for its numbers.")
        self._states: dict[str, ParamState] = {}
        self._highlight: str | None = None

    # -- public API ------------------------------------------------------------------------------

    def show_states(self, states: dict[str, ParamState], highlight: str | None = None) -> None:
        """Show every parameter as in `states`; `highlight` marks the row a phase is about."""
        if list(states) != list(self._states) or self.rowCount() != len(states):
            self._rebuild(states)
        for row, (name, state) in enumerate(states.items()):
            old = self._states.get(name)
            if old is None or old.value is not state.value:
                self._set_heat(row, 3, name, state.value, "value")
            if old is None or old.grad is not state.grad:
                self._set_heat(row, 4, name + ".grad", state.grad, "grad")
            if old is None or old.delta is not state.delta:
                self._set_heat(row, 5, "Δ " + name, state.delta, "delta")
        self._states = dict(states)
        self._set_highlight(highlight)

    def displayed_grad(self, name: str) -> np.ndarray | None:
        """The gradient the table currently shows for a parameter (what the user sees)."""
        state = self._states.get(name)
        return None if state is None else state.grad

    def total(self) -> int:
        """Elements of every parameter shown."""
        return int(sum(np.asarray(s.value).size for s in self._states.values()))

    # -- private -----------------------------------------------------------------------------------

    def _rebuild(self, states: dict[str, ParamState]) -> None:
        self._states = {}
        self.setRowCount(len(states))
        for row, (name, state) in enumerate(states.items()):
            shape = tuple(np.asarray(state.value).shape)
            self._set_text(row, 0, name, "A parameter: module path and tensor name.")
            self._set_text(
                row, 1, "×".join(map(str, shape)) or "scalar", "Tensor shape (out × in for weights)"
            )
            count = QTableWidgetItem(f"{int(np.prod(shape)):,}")
            count.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            count.setToolTip("Number of elements")
            self.setItem(row, 2, count)

    def _set_text(self, row: int, col: int, text: str, tip: str) -> None:
        item = QTableWidgetItem(text)
        item.setToolTip(tip)
        self.setItem(row, col, item)

    def _set_heat(self, row: int, col: int, title: str, array: np.ndarray | None, key: str) -> None:
        item = QTableWidgetItem(_summary(array))
        if array is not None:
            item.setData(Qt.DecorationRole, heatmap_pixmap(array))
        item.setToolTip(_tooltip(title, array, _TIPS[key]))
        self.setItem(row, col, item)

    def _set_highlight(self, name: str | None) -> None:
        if name == self._highlight:
            return
        self._highlight = name
        for row in range(self.rowCount()):
            mark = self.item(row, 0) is not None and self.item(row, 0).text() == name
            for col in range(self.columnCount()):
                item = self.item(row, col)
                if item is not None:
                    item.setBackground(QColor(250, 204, 21, 110) if mark else QColor(0, 0, 0, 0))
