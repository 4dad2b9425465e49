"""Status lines and banners that never move the buttons around them.

A word-wrapped QLabel grows by a line when its text gets longer, and a banner that appears pushes
everything below it down: the buttons moved under the cursor and a new user misclicked. An ElidedLabel
has a fixed number of lines, cuts what does not fit with an ellipsis and shows the whole text as its
tooltip; `keep_space_when_hidden` makes a banner hold its place while it is hidden.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QFontMetrics, QTextDocument, QTextLayout, QTextOption
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

ELLIPSIS = "…"


def fit_lines(text: str, width: int, lines: int, advance) -> tuple[list[str], bool]:
    """`text` wrapped at word boundaries into at most `lines` lines of at most `width` pixels.

    `advance(s)` gives the width of string s. Returns the lines and whether anything was cut (the cut
    line then ends with an ellipsis). Explicit newlines start a new line.
    """
    wrapped: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if not line or advance(candidate) <= width:
                line = candidate
            else:
                wrapped.append(line)
                line = word
        wrapped.append(line)
    while len(wrapped) > 1 and not wrapped[-1].strip():
        wrapped.pop()
    cut = len(wrapped) > lines
    shown = wrapped[:lines]
    if cut:
        shown[-1] = " ".join([shown[-1], *wrapped[lines:]])
    out = []
    for i, line in enumerate(shown):
        if (cut and i == len(shown) - 1) or advance(line) > width:
            cut = True
            line = _elide(line, width, advance)
        out.append(line)
    return out, cut


def _elide(line: str, width: int, advance) -> str:
    """The longest start of `line` that fits in `width` with an ellipsis after it."""
    lo, hi = 0, len(line)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if advance(line[:mid].rstrip() + ELLIPSIS) <= width:
            lo = mid
        else:
            hi = mid - 1
    return line[:lo].rstrip() + ELLIPSIS


class ElidedLabel(QLabel):
    """A plain-text label of a fixed height of `lines` lines; cut text ends in "…", the tooltip has it all.

    `text()` returns the full text, as with a QLabel. Horizontally it takes what the layout gives it and
    never asks for more, so a long status cannot widen its panel either.
    """

    def __init__(self, text: str = "", lines: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lines = max(1, int(lines))
        self._full = ""
        self._base_tip = ""
        self.setTextFormat(Qt.PlainText)
        self.setWordWrap(False)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.setMinimumWidth(40)
        self._fix_height()
        self.setText(text)

    # QLabel's API, with the full text
    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        """Show `text` (cut to the label's lines; the tooltip then holds all of it)."""
        self._full = str(text)
        self._refresh()

    def text(self) -> str:
        """The full text, not the cut one on screen."""
        return self._full

    def setToolTip(self, tip: str) -> None:  # noqa: N802 (Qt's name)
        """The tooltip shown when nothing is cut (the full text comes first when something is)."""
        self._base_tip = tip
        self._refresh()

    def shown_text(self) -> str:
        """What the label draws now (with the ellipsis if cut)."""
        return super().text()

    def is_elided(self) -> bool:
        """Whether part of the text is hidden behind the ellipsis."""
        return self._elided

    def line_count(self) -> int:
        """The fixed number of lines."""
        return self._lines

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._refresh()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() in (QEvent.FontChange, QEvent.StyleChange):
            self._fix_height()
            self._refresh()

    def _fix_height(self) -> None:
        metrics = QFontMetrics(self.font())
        chrome = self.height() - self.contentsRect().height()  # frame, margins and style-sheet padding
        self.setFixedHeight(metrics.lineSpacing() * self._lines + chrome + 2)

    def _refresh(self) -> None:
        metrics = QFontMetrics(self.font())
        width = max(10, self.contentsRect().width() - 2)
        lines, self._elided = fit_lines(self._full, width, self._lines, metrics.horizontalAdvance)
        super().setText("\n".join(lines))
        if self._elided:
            tip = self._full if not self._base_tip else f"{self._full}\n\n{self._base_tip}"
        else:
            tip = self._base_tip
        super().setToolTip(plain_tooltip(tip))


def plain_tooltip(text: str) -> str:
    """`text` as a tooltip that Qt shows as plain text: Qt renders a tooltip that looks like HTML as HTML
    (images, links), so such text (corpus tokens, file names) is escaped inside a rich-text wrapper."""
    if not GuiQt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


_BREAK_AT = re.compile(r"(?<=[a-z0-9])(?=[A-Z][a-z])|(?<=[._])(?=[A-Za-z])")


def breakable(text: str) -> str:
    """`text` with a zero-width space where a long identifier may break across lines: where a capitalised
    word starts after a lower-case letter or digit ("BinaryCross|Entropy|Backward0", but "ReLU" whole) and
    after "." or "_" before a letter. For item views, whose word wrap breaks only at spaces; the text
    reads the same."""
    return _BREAK_AT.sub("\u200b", text)


def wrap_anywhere(text: str, width: float, font) -> list[str]:
    """`text` broken into lines no wider than `width` pixels in `font`: at spaces where it can, inside a
    word (a chain rule such as "dL/d(linear(x,W1,b1))") where a word alone is wider than the line."""
    lines: list[str] = []
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapAtWordBoundaryOrAnywhere)
    for paragraph in text.split("\n"):
        if not paragraph:
            lines.append("")
            continue
        layout = QTextLayout(paragraph, font)
        layout.setTextOption(option)
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(max(1.0, width))
            start = line.textStart()
            lines.append(paragraph[start:start + line.textLength()].rstrip(" "))
        layout.endLayout()
    return lines


class WrapAnywhereLabel(QLabel):
    """A plain-text label that wraps to its width like a word-wrapped QLabel, and also inside a word that
    is wider than the label (monospace formulas with no spaces), so nothing runs past its right edge.

    `text()` is the full text; the label never asks for more width than it is given, and its height
    follows the lines the text needs at that width.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._wrapped_for = -1
        self.setTextFormat(Qt.PlainText)
        self.setWordWrap(False)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        policy = QSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        """Show `text`, wrapped to the label's width."""
        self._full = str(text)
        self._wrapped_for = -1
        self._rewrap()
        self.updateGeometry()

    def text(self) -> str:
        """The full text (without the line breaks the wrapping added)."""
        return self._full

    def shown_text(self) -> str:
        """What the label draws now: the text with the line breaks of its wrapping."""
        return super().text()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt's name)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        """The height of the text's lines at `width`."""
        chrome = self.width() - self.contentsRect().width()
        room = width - chrome - 2 * self.margin()
        lines = wrap_anywhere(self._full, room, self.font()) if self._full else []
        extra = self.height() - self.contentsRect().height() + 2 * self.margin()
        return QFontMetrics(self.font()).lineSpacing() * max(1, len(lines)) + extra + 2

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        width = max(40, self.width())
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(40, self.heightForWidth(max(40, self.width())))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._rewrap()
            self.updateGeometry()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() in (QEvent.FontChange, QEvent.StyleChange):
            self._wrapped_for = -1
            self._rewrap()
            self.updateGeometry()

    def _rewrap(self) -> None:
        width = self.contentsRect().width() - 2 * self.margin()
        if width == self._wrapped_for:
            return
        self._wrapped_for = width
        super().setText("\n".join(wrap_anywhere(self._full, width, self.font())) if self._full else "")


def text_is_cut(label: QLabel) -> bool:
    """Whether part of a label's text is not on screen: an ElidedLabel's ellipsis, a word-wrapped label
    whose lines need more height than it has, or a one-line label narrower than its text (tests use this
    to find text a user cannot read)."""
    if isinstance(label, ElidedLabel):
        return label.is_elided()
    text = label.shown_text() if isinstance(label, WrapAnywhereLabel) else label.text()
    if not text:
        return False
    rect = label.contentsRect()
    margin = 2 * label.margin()
    width, height = rect.width() - margin, rect.height() - margin
    fmt = label.textFormat()
    rich = fmt == Qt.RichText or (fmt == Qt.AutoText and GuiQt.mightBeRichText(text))
    if label.wordWrap() or rich:
        doc = QTextDocument()
        doc.setDefaultFont(label.font())
        doc.setDocumentMargin(0)
        option = doc.defaultTextOption()
        option.setWrapMode(QTextOption.WordWrap)  # as a QLabel wraps: a word wider than the line overflows
        doc.setDefaultTextOption(option)
        if rich:
            doc.setHtml(text)
        else:
            doc.setPlainText(text)
        if label.wordWrap():
            doc.setTextWidth(max(1, width))
        size = doc.size()
        return size.height() > height + 2 or doc.idealWidth() > width + 2
    metrics = QFontMetrics(label.font())
    lines = text.split("\n")
    return max(metrics.horizontalAdvance(line) for line in lines) > width + 1 or \
        metrics.lineSpacing() * len(lines) > height + 2


class FixedLinesLabel(QLabel):
    """A word-wrapped (rich-text) label `lines` lines high in its own font, also after a style sheet
    changes that font: a longer text never moves what is below it, and the height follows the font."""

    def __init__(self, text: str = "", lines: int = 4, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._lines = max(1, int(lines))
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self._fix_height()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() in (QEvent.FontChange, QEvent.StyleChange, QEvent.PolishRequest):
            self._fix_height()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.ensurePolished()
        self._fix_height()
        super().showEvent(event)

    def _fix_height(self) -> None:
        metrics = QFontMetrics(self.font())
        chrome = self.height() - self.contentsRect().height() + 2 * self.margin()
        self.setFixedHeight(metrics.lineSpacing() * self._lines + max(chrome, 0) + 4)


class RoomForLongest(QLabel):
    """A word-wrapped label as high as the longest of the texts it may show (at its current width), so
    switching between them (a preset's description, "Your own network.") moves nothing below it."""

    def __init__(self, texts: list[str] | tuple[str, ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._texts = [str(t) for t in texts]
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)

    def set_candidates(self, texts) -> None:
        """Every text this label may show."""
        self._texts = [str(t) for t in texts]
        self.updateGeometry()

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        """The height of the longest candidate (or of the text shown) at `width`."""
        probe = QLabel()
        probe.setWordWrap(True)
        probe.setFont(self.font())
        probe.setMargin(self.margin())
        tallest = super().heightForWidth(width)
        for text in self._texts:
            probe.setText(text)
            tallest = max(tallest, probe.heightForWidth(width))
        return tallest

    def sizeHint(self):  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        hint.setHeight(self.heightForWidth(max(hint.width(), self.width())))
        return hint

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        hint.setHeight(self.heightForWidth(max(self.width(), hint.width())))
        return hint


def keep_space_when_hidden(widget: QWidget) -> QWidget:
    """Make a banner keep its place in the layout while hidden, so showing it moves nothing; returns it."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)
    return widget
