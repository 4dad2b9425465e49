"""The Learn panel's own widgets: the lesson list that wraps long titles and the chooser of a choice
exercise. Imported when the panel's contents are built, after the window's first paint."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtWidgets import QComboBox, QStyledItemDelegate, QTreeWidget


class WrappingTree(QTreeWidget):
    """The lesson list: a long lesson or step title wraps in the narrow dock instead of ending in "…"."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextElideMode(Qt.ElideNone)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setItemDelegate(WrapDelegate(self))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.doItemsLayout()  # the rows' heights follow the new width


class WrapDelegate(QStyledItemDelegate):
    """Rows as tall as their title wrapped at the tree's width (a QTreeView sizes rows for one line)."""

    def __init__(self, tree: QTreeWidget):
        super().__init__(tree)
        self._tree = tree

    def sizeHint(self, option, index):  # noqa: N802 (Qt's name)
        hint = super().sizeHint(option, index)
        depth, parent = 1, index.parent()  # the root's expand arrow takes an indentation too
        while parent.isValid():
            depth, parent = depth + 1, parent.parent()
        width = max(40, self._tree.viewport().width() - self._tree.indentation() * depth - 10)
        text = str(index.data() or "")
        wrapped = option.fontMetrics.boundingRect(QRect(0, 0, width, 100_000), Qt.TextWordWrap, text)
        hint.setHeight(max(hint.height(), wrapped.height() + 4))
        return hint


class ChoiceBox(QComboBox):
    """The chooser of a choice exercise: Enter checks, as in the answer field."""

    sig_enter = Signal()
    """Enter was pressed on the closed chooser."""

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Enter or Return checks the chosen option; other keys choose as usual."""
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            event.accept()
            self.sig_enter.emit()
            return
        super().keyPressEvent(event)
