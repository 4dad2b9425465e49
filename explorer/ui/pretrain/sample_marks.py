"""The samples list follows the step chosen on the loss curve (explorer/ui/common/step_sync.py).

`SampleMarks` appends each generated sample to the panel's samples view (a QTextBrowser) and remembers
where it lies. `show_step(step)` highlights the sample of the run in focus (the one the
Network health tab shows, else any run) written at the latest step at or before `step`, and scrolls to
it; None clears the mark and goes back to the newest sample at the bottom.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QTextCursor, QTextFormat
from PySide6.QtWidgets import QTextBrowser, QTextEdit


class SampleMarks:
    """Sample positions in a samples view, and the highlight of the chosen one."""

    def __init__(self, view: QTextBrowser, focus_run=lambda: None) -> None:
        self.view = view
        self.focus_run = focus_run  # () -> the run id in focus, or None
        self.marks: list[tuple[int, int, int, int]] = []  # (run id, step, first and last position)
        self.shown: tuple[int, int] | None = None  # (run id, step) highlighted now
        self.colour = QColor("#fde68a")

    def append(self, run_id: int, step, html: str) -> None:
        """Append a sample's HTML to the view, remembering where it lies when `step` is a step number."""
        document = self.view.document()
        # append() starts a new paragraph after the last one's separator (none in an empty document)
        start = 0 if document.isEmpty() else document.characterCount()
        self.view.append(html)
        if isinstance(step, int) and not isinstance(step, bool):
            self.marks.append((run_id, step, start, document.characterCount() - 1))

    def clear(self) -> None:
        """The view was cleared."""
        self.marks = []
        self.shown = None

    def set_theme(self, theme: dict[str, str]) -> None:
        """The highlight's background: a pale amber on a light theme, the grid grey on a dark one (where
        amber would drown the run-coloured heading); the current mark is redrawn."""
        dark = QColor(theme["panel"]).lightness() < 128
        colour = QColor(theme["grid"] if dark else theme["current"])
        if not dark:
            colour.setAlpha(90)
        self.colour = colour
        if self.shown is not None:
            shown, self.shown = self.shown, None
            self.view.setExtraSelections([])
            for i, (run_id, step, _start, _end) in enumerate(self.marks):
                if (run_id, step) == shown:
                    self._mark(i)

    def show_step(self, step: int | None) -> None:
        """Highlight and scroll to the sample nearest at or before `step` (None: none, newest in view)."""
        chosen = None if step is None else self._sample_at(step)
        if chosen is None:
            if self.shown is not None:
                self.view.setExtraSelections([])
                bar = self.view.verticalScrollBar()
                bar.setValue(bar.maximum())
            self.shown = None
            return
        self._mark(chosen)

    def _mark(self, index: int) -> None:
        run_id, sample_step, start, end = self.marks[index]
        last = self.view.document().characterCount() - 1
        start, end = min(start, last), min(end, last)
        cursor = QTextCursor(self.view.document())
        cursor.setPosition(start)
        cursor.setPosition(max(start, end), QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        selection.cursor = cursor
        selection.format.setBackground(self.colour)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        self.view.setExtraSelections([selection])
        # Scroll so the sample's first line is at the top (its end stays in view when it fits).
        place = QTextCursor(self.view.document())
        place.setPosition(start)
        top = self.view.cursorRect(place).top()
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.value() + top - 4)
        self.shown = (run_id, sample_step)

    def _sample_at(self, step: int) -> int | None:
        focus = self.focus_run()
        for only_focus in (True, False):
            best = None
            for i, (run_id, sample_step, _start, _end) in enumerate(self.marks):
                if only_focus and run_id != focus:
                    continue
                if sample_step <= step and (best is None or sample_step >= self.marks[best][1]):
                    best = i
            if best is not None:
                return best
        return None
