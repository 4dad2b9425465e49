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
        self.setExtraSelections([line_sel, under])

    def clear_error(self) -> None:
        """Remove the error marks."""
        self._error = None
        self.setExtraSelections([])

    def error_position(self) -> tuple[int, int] | None:
        """The 1-based (line, col) currently marked, or None."""
        return self._error
