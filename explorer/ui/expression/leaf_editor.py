"""Editors for the program's parameters: slider + spin box per scalar, an editable grid per tensor."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from explorer.ui.graph.items import fmt_number

SLIDER_STEPS = 1000
GRID_MAX_CELLS = 64  # bigger tensors are shown read-only by the inspector instead


class ScalarEditor(QWidget):
    """A slider and a spin box that edit one number together."""

    sig_changed = Signal(float)
    """The value was changed by the user."""

    def __init__(self, name: str, value: float, parent=None):
        super().__init__(parent)
        span = max(2.0, 2.0 * abs(value))
        self.lo, self.hi = value - span, value + span
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setObjectName(f"slider_{name}")
        self.slider.setToolTip(f"Drag to change {name}: forward and backward run again at once")
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName(f"spin_{name}")
        self.spin.setRange(-1e6, 1e6)
        self.spin.setDecimals(4)
        self.spin.setSingleStep(0.1)
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip(f"Type a value for {name}")
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 0, 0)
        layout.addWidget(self.spin, 0, 1)
        self.set_value(value)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> float:
        """The current value."""
        return float(self.spin.value())

    def set_value(self, value: float) -> None:
        """Show `value` without emitting sig_changed."""
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.spin.setValue(value)
        frac = (value - self.lo) / (self.hi - self.lo)
        self.slider.setValue(int(round(min(1.0, max(0.0, frac)) * SLIDER_STEPS)))
        for w in (self.slider, self.spin):
            w.blockSignals(False)

    def _from_slider(self, pos: int) -> None:
        value = round(self.lo + (self.hi - self.lo) * pos / SLIDER_STEPS, 4)
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.sig_changed.emit(value)

    def _from_spin(self, value: float) -> None:
        self.set_value(value)
        self.sig_changed.emit(float(value))


class TensorEditor(QTableWidget):
    """An editable grid of a small 1-D or 2-D tensor parameter."""

    sig_changed = Signal(object)
    """The user edited a cell: the whole new value as a nested list."""

    def __init__(self, name: str, value, parent=None):
        super().__init__(parent)
        self.setObjectName(f"grid_{name}")
        self.setToolTip(f"Edit the entries of {name}; the graph recomputes when you press Enter")
        arr = np.asarray(value, dtype=np.float64)
        self.shape = arr.shape
        m = arr.reshape(1, -1) if arr.ndim <= 1 else arr.reshape(-1, arr.shape[-1])
        self.setRowCount(m.shape[0])
        self.setColumnCount(m.shape[1])
        self.horizontalHeader().setDefaultSectionSize(58)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setMaximumHeight(min(180, 28 + 22 * m.shape[0]))
        self.set_value(value)
        self.itemChanged.connect(self._edited)

    def set_value(self, value) -> None:
        """Show `value` without emitting sig_changed."""
        m = np.asarray(value, dtype=np.float64).reshape(self.rowCount(), self.columnCount())
        self.blockSignals(True)
        for r in range(m.shape[0]):
            for c in range(m.shape[1]):
                self.setItem(r, c, QTableWidgetItem(fmt_number(float(m[r, c]))))
        self.blockSignals(False)

    def value(self) -> list:
        """The grid's numbers in the parameter's shape (cells that are not numbers count as 0)."""
        m = np.zeros((self.rowCount(), self.columnCount()))
        for r in range(m.shape[0]):
            for c in range(m.shape[1]):
                try:
                    m[r, c] = float(self.item(r, c).text())
                except (AttributeError, ValueError):
                    m[r, c] = 0.0
        return m.reshape(self.shape).tolist()

    def _edited(self, _item) -> None:
        self.sig_changed.emit(self.value())


class LeafEditor(QGroupBox):
    """One editor per parameter of the program; rebuilt only when the set of parameters changes."""

    sig_value_changed = Signal(str, object)
    """The user changed a parameter: (name, float or nested list)."""

    def __init__(self, parent=None):
        super().__init__("Parameters", parent)
        self.setObjectName("leafEditor")
        self.setToolTip("Leaves created with param(...) require gradients. Change them here: the "
                        "forward and backward passes run again at once.")
        self._grid = QGridLayout(self)
        self._editors: dict[str, QWidget] = {}
        self._signature: tuple = ()
        self._empty = QLabel("No param(...) in the program.")
        self._grid.addWidget(self._empty, 0, 0)

    def editors(self) -> dict[str, QWidget]:
        """name -> ScalarEditor or TensorEditor."""
        return dict(self._editors)

    def set_params(self, values: dict[str, object]) -> None:
        """Show these parameter values, rebuilding the editors when names or shapes changed."""
        signature = tuple((k, np.shape(v)) for k, v in values.items())
        if signature != self._signature:
            self._rebuild(values)
            self._signature = signature
            return
        for name, v in values.items():
            self._editors[name].set_value(v)

    def _rebuild(self, values: dict[str, object]) -> None:
        while self._grid.count():
            w = self._grid.takeAt(0).widget()
            if w is not None and w is not self._empty:
                w.hide()  # off the screen now, not only once the event loop deletes it (a grab between)
                w.deleteLater()
        self._editors = {}
        self._empty.setVisible(not values)
        if not values:
            self._grid.addWidget(self._empty, 0, 0)
        for row, (name, v) in enumerate(values.items()):
            label = QLabel(f"<b>{name}</b>")
            label.setToolTip(f"parameter {name}")
            if np.size(v) == 1:
                editor = ScalarEditor(name, float(np.asarray(v).reshape(-1)[0]))
            elif np.size(v) <= GRID_MAX_CELLS and np.ndim(v) <= 2:
                editor = TensorEditor(name, v)
            else:
                editor = QLabel(f"{'×'.join(map(str, np.shape(v)))} tensor (see the inspector)")
                editor.set_value = lambda _v: None
            if hasattr(editor, "sig_changed"):
                editor.sig_changed.connect(lambda value, n=name: self.sig_value_changed.emit(n, value))
            self._grid.addWidget(label, row, 0)
            self._grid.addWidget(editor, row, 1)
            self._editors[name] = editor
