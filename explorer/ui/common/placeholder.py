"""A line of text centred in its place, made without Qt's alignment flags (for the window's first frame).

Naming any member of PySide's `Qt` namespace (Qt.AlignCenter, Qt.RightDockWidgetArea, ...) builds the
whole namespace's ~90 enum types at once: 50-100 ms of Python before the first paint on this project's
machines. What the first frame shows is made without it; the rest of the window uses Qt as usual.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget


def centred_line(text: str) -> QWidget:
    """A widget that shows `text` centred in the room it gets (stretches around a QLabel, which is the
    returned widget's `line`)."""
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    row = QHBoxLayout()
    row.addStretch(1)
    box.line = QLabel(text)
    row.addWidget(box.line)
    row.addStretch(1)
    column.addStretch(1)
    column.addLayout(row)
    column.addStretch(1)
    return box
