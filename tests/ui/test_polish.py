"""Issue 12, points 5-9 outside the graph canvas: stable layout, attention maps, forms, dark theme, runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFormLayout,
    QScrollArea,
    QSpinBox,
    QWidget,
)

from explorer.ui.common.forms import install_wheel_guard


def wheel(widget: QWidget, notches: int = -1) -> None:
    """A synthesized mouse-wheel turn over the middle of `widget` (negative: towards the user)."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


# -- point 7: the wheel over a field without focus scrolls the form -----------------------------------
@pytest.fixture
def long_form(qtbot):
    install_wheel_guard()
    inner = QWidget()
    form = QFormLayout(inner)
    spins = []
    for i in range(30):
        spin = QSpinBox()
        spin.setRange(0, 100)
        spin.setValue(50)
        form.addRow(f"field {i}", spin)
        spins.append(spin)
    combo = QComboBox()
    combo.addItems(["auto", "cpu", "cuda"])
    form.addRow("Device", combo)
    area = QScrollArea()
    area.setWidget(inner)
    area.setWidgetResizable(True)
    area.resize(300, 200)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    return area, spins, combo


def test_wheel_over_an_unfocused_field_scrolls_the_form_and_leaves_the_field(qtbot, long_form):
    area, spins, combo = long_form
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    wheel(spins[1], -1)
    assert spins[1].value() == 50
    assert bar.value() > 0
    before = bar.value()
    wheel(spins[2].lineEdit(), -1)  # the line edit inside the spin box gets the event first
    assert spins[2].value() == 50 and bar.value() > before
    wheel(combo, -1)
    assert combo.currentText() == "auto"
    assert not combo.hasFocus() and not spins[1].hasFocus()


def test_a_focused_field_still_takes_the_wheel(qtbot, long_form):
    _area, spins, combo = long_form
    spins[0].setFocus()
    qtbot.waitUntil(spins[0].hasFocus)
    wheel(spins[0], 1)
    assert spins[0].value() == 51


def test_the_wheel_over_the_pretraining_form_leaves_device_alone(qtbot):
    from explorer.ui.pretrain.panel import PretrainPanel

    install_wheel_guard()
    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 420)  # short: the form scrolls
    panel.show()
    qtbot.waitExposed(panel)
    device = panel.form.device
    before = device.currentText()
    area = next(a for a in panel.findChildren(QScrollArea) if a.isAncestorOf(device))
    wheel(device, -3)
    wheel(device, 3)
    wheel(device, -1)
    assert device.currentText() == before
    assert area.verticalScrollBar().value() > 0
    panel.shutdown()
