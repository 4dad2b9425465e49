"""Form behaviour shared by every panel: a mouse wheel over a field that has no focus scrolls the form.

Qt's spin boxes and combo boxes take wheel events whenever the pointer is over them, so scrolling down a
long form changed whatever field passed under the cursor (the pretraining form's Device became cuda).
One application-wide event filter fixes every form at once, including fields created later: a field
changes on the wheel only once it has the focus (a click or Tab), and otherwise the wheel goes to the
scroll area around it.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

FIELD_TYPES = (QAbstractSpinBox, QComboBox)


def _field_of(obj: QObject) -> QWidget | None:
    """The spin box or combo box that `obj` is (or the line edit inside one), else None."""
    if isinstance(obj, FIELD_TYPES):
        return obj
    parent = obj.parent() if isinstance(obj, QWidget) else None
    return parent if isinstance(parent, FIELD_TYPES) else None


def _scroll_bar_for(widget: QWidget, horizontal: bool):
    """The scroll bar of the nearest enclosing scroll area that can scroll that way (a field inside a
    short table inside a long form scrolls the form), or None."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            bar = parent.horizontalScrollBar() if horizontal else parent.verticalScrollBar()
            if bar.maximum() > bar.minimum():
                return bar
        parent = parent.parentWidget()
    return None


class WheelGuard(QObject):
    """The application-wide filter: see the module docstring. Install it with `install_wheel_guard`."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Polish and isinstance(obj, FIELD_TYPES):
            # a wheel would otherwise give the field focus first, and the next notch would change it
            if obj.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            return False
        if kind != QEvent.Type.Wheel:
            return False
        field = _field_of(obj)
        if field is None or field.hasFocus():
            return False
        horizontal = abs(event.angleDelta().x()) > abs(event.angleDelta().y())
        bar = _scroll_bar_for(field, horizontal)
        if bar is not None:
            QCoreApplication.sendEvent(bar, event)
        return True  # the field itself never sees it


_guard: WheelGuard | None = None


def install_wheel_guard(app: QApplication | None = None) -> WheelGuard:
    """Install the one WheelGuard on the application (again is a no-op); returns it."""
    global _guard
    app = app or QApplication.instance()
    if _guard is None:
        _guard = WheelGuard()
        app.installEventFilter(_guard)
    return _guard
