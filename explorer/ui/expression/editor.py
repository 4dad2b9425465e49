"""The program editor: monospace text, syntax highlighting, the language's error underlined in place."""

from __future__ import annotations

import re

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QToolTip

from explorer.core.lang.ops import OPS
from explorer.ui.common import theme as themes

_TOKEN = re.compile(
    r"(?P<comment>#.*$)|(?P<number>\b\d+(\.\d*)?([eE][-+]?\d+)?\b)|(?P<def>^\s*[A-Za-z_]\w*(?=\s*=[^=]))"
    r"|(?P<call>\b[A-Za-z_]\w*(?=\s*\())|(?P<attr>\.[A-Za-z_]\w*)"
)


def known_functions() -> set[str]:
    """Names the language accepts as functions: the op table's."""
    return set(OPS)


def op_help(word: str) -> str:
    """Rich-text help for a function of the language: signature, what it does, local derivative."""
    spec = OPS.get(word) if word else None
    if spec is None:
        return ""
    return (f"<b>{spec.signature()}</b><br>{spec.doc}<br><i>local derivative:</i> "
            f"<code>{spec.local_derivative}</code>")


class ProgramHighlighter(QSyntaxHighlighter):
    """Colours names being assigned, function calls (known ones stronger), numbers and comments."""

    def __init__(self, document, theme: dict[str, str] | None = None):
        super().__init__(document)
        self.functions = known_functions()
        self.set_theme(theme or themes.get_theme())

    def set_theme(self, theme: dict[str, str]) -> None:
        """Use the colours of `theme`."""
        def fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
            f = QTextCharFormat()
            f.setForeground(QColor(theme[color]))
            if bold:
                f.setFontWeight(QFont.Bold)
            f.setFontItalic(italic)
            return f

        self.formats = {
            "comment": fmt("comment", italic=True), "number": fmt("number"),
            "def": fmt("name_def", bold=True), "call": fmt("function", bold=True),
            "unknown_call": fmt("keyword"), "attr": fmt("function"),
        }
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt API)
        """Colour one line."""
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "call" and m.group(kind) not in self.functions:
                kind = "unknown_call"
            start, end = m.span(m.lastgroup)
            self.setFormat(start, end - start, self.formats[kind])


class ProgramEditor(QPlainTextEdit):
    """Monospace editor for expression programs; Ctrl+Enter asks for a recompute."""

    sig_run_requested = Signal()
    """The user pressed Ctrl+Enter."""
    sig_line_clicked = Signal(int)
    """The user clicked (without selecting text) on 1-based line n."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("programEditor")
        font = QFont("DejaVu Sans Mono")
        font.setStyleHint(QFont.Monospace)
        font.setPointSize(11)
        self.setFont(font)
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.setToolTip("Your program: one assignment per line, e.g. z = w * x + b.\n"
                        "param(...) makes a leaf that requires a gradient. The last name assigned is\n"
                        "the output that backward() starts from. Ctrl+Enter recomputes now.")
        self.setAccessibleName("Program editor")
        self.highlighter = ProgramHighlighter(self.document())
        self._error: tuple[int, int] | None = None
        self._error_marks: list = []
        self._line: int | None = None  # the line that made the node the player is on
        self._line_marks: list = []

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Ctrl+Enter runs; everything else edits."""
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and event.modifiers() & Qt.ControlModifier:
            self.sig_run_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def event(self, event) -> bool:
        """Hovering a function name shows what it computes and its local derivative."""
        if event.type() == QEvent.ToolTip:
            cursor = self.cursorForPosition(event.pos())
            cursor.select(QTextCursor.WordUnderCursor)
            text = op_help(cursor.selectedText())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
                return True
        return super().event(event)

    def set_theme(self, theme: dict[str, str]) -> None:
        """Recolour the highlighting and the error mark."""
        self.highlighter.set_theme(theme)
        if self._error:
            self.mark_error(*self._error)
        self.highlight_line(self._line)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        """A plain click on a line asks for the node that line made."""
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton and not self.textCursor().hasSelection():
            self.sig_line_clicked.emit(self.textCursor().blockNumber() + 1)

    def highlight_line(self, line: int | None) -> None:
        """Tint 1-based `line` (the line that made the node the player is on); None clears it."""
        self._line = line
        self._line_marks = []
        block = self.document().findBlockByNumber(line - 1) if line else None
        if block is not None and block.isValid():
            mark = QTextEdit.ExtraSelection()
            mark.cursor = QTextCursor(block)
            colour = QColor(themes.get_theme()["selected"])
            colour.setAlpha(56)  # a light wash of the selection colour, readable in both themes
            mark.format.setBackground(colour)
            mark.format.setProperty(QTextFormat.FullWidthSelection, True)
            self._line_marks = [mark]
            if not self.hasFocus():  # not typing: scroll the line into view (the cursor goes with it)
                self.setTextCursor(QTextCursor(block))
                self.ensureCursorVisible()
        self._show_marks()

    def highlighted_line(self) -> int | None:
        """The 1-based line tinted for the player, or None."""
        return self._line if self._line_marks else None

    def _show_marks(self) -> None:
        self.setExtraSelections(self._line_marks + self._error_marks)

    def mark_error(self, line: int, col: int) -> None:
        """Underline (wavy, red) the token at 1-based line:col and tint its line."""
        self._error = (line, col)
        doc = self.document()
        block = doc.findBlockByNumber(max(0, line - 1))
        if not block.isValid():
            block = doc.lastBlock()
        text = block.text()
        start = min(max(0, col - 1), max(0, len(text) - 1)) if text else 0
        m = re.match(r"\w+|\S", text[start:])
        length = len(m.group(0)) if m else 1
        theme = themes.get_theme()
        under = QTextEdit.ExtraSelection()
        cursor = QTextCursor(block)
        cursor.setPosition(block.position() + start)
        cursor.setPosition(block.position() + min(len(text), start + length), QTextCursor.KeepAnchor)
        under.cursor = cursor
        under.format.setUnderlineStyle(QTextCharFormat.WaveUnderline)
        under.format.setUnderlineColor(QColor(theme["error"]))
        line_sel = QTextEdit.ExtraSelection()
        line_sel.cursor = QTextCursor(block)
        line_sel.format.setBackground(QColor(theme["error_bg"]))
        line_sel.format.setProperty(QTextFormat.FullWidthSelection, True)
        self._error_marks = [line_sel, under]
        self._show_marks()

    def clear_error(self) -> None:
        """Remove the error marks."""
        self._error = None
        self._error_marks = []
        self._show_marks()

    def error_position(self) -> tuple[int, int] | None:
        """The 1-based (line, col) currently marked, or None."""
        return self._error
