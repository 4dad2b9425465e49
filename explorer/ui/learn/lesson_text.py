"""The text view of the Learn panel: a step's Markdown, rendered inert (issue 24).

Qt's text browser would, by itself, read any file a link or an image names (a pipe blocks it forever,
/dev/zero exhausts memory), follow links inside the view and parse HTML in exponential time. This view
renders Markdown with HTML switched off, loads no resource except the images that
explorer.core.lessons.markup already read and checked from the lesson's own folder (every other request
gets an empty answer, so Qt never falls back to reading the file itself), never navigates, and opens an
http(s) link in the system browser only when the student clicks it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QTextDocument
from PySide6.QtWidgets import QTextBrowser

_FEATURE = QTextDocument.MarkdownFeature
MARKDOWN_FEATURES = _FEATURE.MarkdownDialectGitHub | _FEATURE.MarkdownNoHTML
"""GitHub Markdown without HTML: a tag shows as the characters written."""


def label_markdown(text: str) -> str:
    """`text` made inert for a label that renders Markdown (explorer.core.lessons.markup.label_markdown)."""
    from explorer.core.lessons import markup

    return markup.label_markdown(text)


class LessonText(QTextBrowser):
    """The step's text (objectName `lessonText`). `show_lesson_text` renders Markdown inertly."""

    sig_note = Signal(str)
    """One line to show the student: a link that is not followed (empty: nothing to say)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("lessonText")
        self.setOpenLinks(False)  # never navigate inside the view: a click goes to _on_anchor
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self._images: dict[str, bytes] = {}
        self._decoded: dict[str, QImage] = {}
        self.resources_asked: list[str] = []  # every resource Qt asked for (what tests look at)

    def show_lesson_text(self, text: str, folder: str | Path | None = None) -> str:
        """Render a step's Markdown with the images of `folder` it names; returns the one-line note to
        show (a refusal, images not shown, HTML shown as text) or ""."""
        from explorer.core.lessons import markup  # the lessons core loads with the panel's contents

        prepared = markup.prepare(text, folder)
        # by the name as written and as Qt hands it back (`in%20sub.png` comes back as `in sub.png`)
        self._images = {**{QUrl(k).toString(): v for k, v in prepared.images.items()}, **prepared.images}
        self._decoded = {}
        self.document().clear()  # drops the resources Qt cached for the previous step
        self.document().setMarkdown(prepared.markdown, MARKDOWN_FEATURES)
        if prepared.refused:
            self.setPlainText(prepared.refused)
        return prepared.note

    def setMarkdown(self, text: str) -> None:  # noqa: N802 - the Qt name, made inert for every caller
        """Markdown from the app itself (the welcome page): rendered like a step's text, without images."""
        self.show_lesson_text(text, None)

    def loadResource(self, kind: int, name: QUrl):  # noqa: N802 - Qt's virtual
        """Only an image that markup already read from the lesson's folder; an empty answer to anything
        else (never None: that would make Qt read the file itself)."""
        key = name.toString()
        self.resources_asked.append(key)
        if int(kind) != int(QTextDocument.ResourceType.ImageResource):
            return ""
        for candidate in (key, name.toString(QUrl.ComponentFormattingOption.FullyDecoded)):
            if candidate in self._decoded:
                return self._decoded[candidate]
            data = self._images.get(candidate)
            if data is not None:
                image = QImage.fromData(data)
                self._decoded[candidate] = image
                return image
        return QImage()

    def _on_anchor(self, url: QUrl) -> None:
        from explorer.core.lessons import markup

        target = markup.external_link(url.toString())
        if target is None:
            self.sig_note.emit(markup.link_note(url.toString()))
            return
        self.sig_note.emit("")
        QDesktopServices.openUrl(QUrl(target))
