"""A one-shot background job for the pretraining panel (attention maps, tracing a step).

The job is a plain function; it runs in a QThread and its result or its error message comes back
as a signal on the GUI thread. Widgets are never touched off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal


class FunctionThread(QThread):
    """Run `fn()` off the GUI thread; emit `sig_done(result)` or `sig_failed(message)`."""

    sig_done = Signal(object)
    """The function returned this value."""
    sig_failed = Signal(str)
    """The function raised: a one-line message for the panel."""

    def __init__(self, fn: Callable[[], Any], parent=None) -> None:
        super().__init__(parent)
        self._fn = fn

    def run(self) -> None:
        """The thread's body: call the function, report the outcome by signal."""
        try:
            result = self._fn()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.sig_failed.emit(text if isinstance(exc, ValueError) and text
                                 else f"{type(exc).__name__}: {text}".rstrip(": "))
            return
        self.sig_done.emit(result)
