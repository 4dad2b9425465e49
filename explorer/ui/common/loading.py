"""The "Loading PyTorch…" state of a workspace's computing area.

A panel is built, and takes input, before torch is imported (its modules import torch where they
compute); only the parts that show what torch computed (the graph, plots fed by training) wait. They
show this note in their place until the panel's first result arrives, then the real widget.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget


def torch_ready() -> bool:
    """Whether torch is imported whole (not absent, not half-way through its import on another thread)."""
    torch = sys.modules.get("torch")
    spec = getattr(torch, "__spec__", None)
    return torch is not None and not getattr(spec, "_initializing", False)


class TorchWait(QStackedWidget):
    """`widget` behind a note saying that PyTorch is loading, shown while `waiting()` (see `done()`).

    The note is centred in the widget's place, in the palette's placeholder colour (both themes), with a
    busy cursor; `done()` shows the widget for good.
    """

    def __init__(self, widget: QWidget, what: str, meanwhile: str, object_name: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note = QLabel()
        self.set_text(what, meanwhile)
        self.note.setObjectName(object_name)
        self.note.setAlignment(Qt.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setMargin(24)
        self.note.setForegroundRole(QPalette.PlaceholderText)
        self.note.setCursor(Qt.BusyCursor)
        self.note.setToolTip("PyTorch computes everything this area shows; its first import takes a few "
                             "seconds")
        self.widget = widget
        self.addWidget(self.note)
        self.addWidget(widget)
        self.setCurrentWidget(self.note if not torch_ready() else widget)

    def set_text(self, what: str, meanwhile: str) -> None:
        """The note's two sentences under "Loading PyTorch…": what waits, and what works meanwhile."""
        self.note.setText(f"<p style='font-size:15pt'><b>Loading PyTorch…</b></p><p>{what}</p>"
                          f"<p>{meanwhile}</p>")

    def waiting(self) -> bool:
        """Whether the note is shown (the widget waits for the first result)."""
        return self.currentWidget() is self.note

    def done(self) -> None:
        """Show the widget (the first result is in)."""
        if self.waiting():
            self.setCurrentWidget(self.widget)
