"""Lesson text is inert in the Learn panel (issue 24, item 5): a hostile lesson file, opened in the real
window, makes the panel read no file, block on no pipe, connect nowhere and parse no HTML; links open in
the system browser only on a click, and only http(s) ones. What the core allows is
tests/core/test_lesson_markup.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QLabel, QTextBrowser

from tests.core.test_lesson_markup import png

WAIT = 20000
DEEP_TABLES = "<table><tr><td>" * 22 + "cell" + "</td></tr></table>" * 22


@contextlib.contextmanager
def watched_fifo(path):
    """A FIFO with a writer (a child process) that serves every reader in turn and says so: yields a
    function that ends the writer and returns how many times someone opened the FIFO to read. (A reader
    without a writer would block forever; with this one the old panel fails instead of hanging.)"""
    os.mkfifo(path)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys\nwhile True:\n    f = open(sys.argv[1], 'wb')\n"
         "    print('opened', flush=True)\n    f.write(b'X')\n    f.close()\n", str(path)],
        stdout=subprocess.PIPE, text=True)
    counted: list[int] = []

    def readers() -> int:
        if not counted:
            writer.terminate()  # it waits in open() for a reader that never came: end it
            out, _ = writer.communicate(timeout=60)
            counted.append(out.count("opened"))
        return counted[0]

    try:
        yield readers
    finally:
        readers()


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that must see no connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def _connections(sock) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def _lesson_file(folder, url: str, secret, fifo) -> None:
    steps = {
        "images": f"Images ![fifo](pipe.png) ![abs fifo]({fifo}) ![zero](/dev/zero) "
                  f"![zero url](file:///dev/zero) ![linked zero](zero.png) ![remote]({url}img.png) "
                  f"![secret]({secret}) ![ok](fig.png)",
        "links": f"Links: [remote]({url}) [file](file://{secret}) [path]({secret}) [pipe](file://{fifo}) "
                 f"[zero](file:///dev/zero) and a plain path {secret}",
        "tables": DEEP_TABLES,
    }
    text = 'id = "hostile"\ntitle = "Hostile"\nsummary = "<img src=\'/dev/zero\'>"\n'
    for key, body in steps.items():
        text += f"[[steps]]\nid = \"{key}\"\ntitle = \"{key}\"\ntext = '''\n{body}\n'''\n"
    text += ('[steps.exercise]\nkind = "do"\nprompt = "<img src=\'pipe.png\'> ![p](pipe.png) Pin a node."\n'
             'answer = { fact = "selected" }\n')
    (folder / "01-hostile.toml").write_text(text, encoding="utf-8")


def _click(qtbot, browser: QTextBrowser, word: str) -> None:
    """A real mouse click on the first occurrence of `word` in the browser."""
    from PySide6.QtCore import Qt

    found = browser.document().find(word)
    assert not found.isNull(), word
    cursor = QTextCursor(browser.document())
    cursor.setPosition(found.selectionStart() + 1)
    browser.ensureCursorVisible()
    rect = browser.cursorRect(cursor)
    qtbot.mouseClick(browser.viewport(), Qt.LeftButton, pos=rect.center())


def test_a_hostile_lesson_reads_no_file_follows_no_link_and_parses_no_html(qtbot, tmp_path, monkeypatch,
                                                                          listener):
    from PySide6.QtGui import QDesktopServices

    from explorer.core import lessons as core
    from tests.ui.test_learn import _close, _learn, _window

    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "fig.png").write_bytes(png(4, 3))
    os.symlink("/dev/zero", folder / "zero.png")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET CONTENTS", encoding="utf-8")
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda target: opened.append(QUrl(target).toString()))
    with watched_fifo(folder / "pipe.png") as pipe_read, watched_fifo(tmp_path / "abs.png") as abs_read:
        _lesson_file(folder, url, secret, tmp_path / "abs.png")
        catalog = core.load_catalog(folder)
        assert not catalog.problems, catalog.problems
        monkeypatch.setattr(core, "load_catalog", lambda folder=None: catalog)
        window = _window(qtbot, tmp_path)
        dock = _learn(qtbot, window)
        dock.show()
        browser = dock.findChild(QTextBrowser, "lessonText")
        error = dock.findChild(QLabel, "lessonError")

        dock.open_step(0, 0)  # the images: only fig.png is loaded; the others are placeholders
        dock.grab()  # lays the text out: Qt asks for every image now
        assert "Image not shown" in error.text() and "\n" not in error.text()
        assert browser.loadResource(QTextDocument.ImageResource, QUrl("fig.png")).width() == 4
        assert browser.loadResource(QTextDocument.ImageResource, QUrl("/dev/zero")).isNull()

        dock.open_step(0, 1)  # the links: nothing happens until a click; a click opens only http(s)
        dock.grab()
        shown = browser.toPlainText()
        for word in ("file", "path", "pipe", "zero"):
            _click(qtbot, browser, word)
            assert browser.toPlainText() == shown  # never navigates: the lesson stays on screen
            assert "not opened from a lesson" in error.text()
        assert opened == []
        _click(qtbot, browser, "remote")
        assert opened == [url]
        assert "TOP SECRET" not in browser.toPlainText()

        dock.open_step(0, 2)  # 22 nested tables: shown as the text written, never parsed
        dock.grab()
        assert browser.toPlainText().count("<table>") == 22
        assert browser.document().rootFrame().childFrames() == []  # no table was built
        assert "HTML in a lesson shows as written" in error.text()
        prompt = dock.findChild(QLabel, "lessonPrompt")
        assert prompt.isVisible() and "Pin a node." in prompt.text()
        dock.grab()

        assert pipe_read() == 0, "the panel opened a FIFO of the lesson folder"
        assert abs_read() == 0, "the panel opened a FIFO named by an absolute path"
    assert _connections(listener) == 0
    _close(window)


def test_only_the_checked_images_are_handed_to_qt(qtbot, tmp_path):
    from explorer.ui.learn.lesson_text import LessonText

    (tmp_path / "fig.png").write_bytes(png(5, 2))
    (tmp_path / "in sub.png").write_bytes(png(3, 1))
    view = LessonText()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    note = view.show_lesson_text("![a](fig.png) ![b](notes.png) ![c](http://127.0.0.1:9/x.png)", tmp_path)
    view.grab()
    assert note.startswith("Image not shown: notes.png (no such file) and 1 more")
    assert set(view.resources_asked) >= {"fig.png", "notes.png", "http://127.0.0.1:9/x.png"}
    # every answer is non-null (None would make Qt read the file itself); only fig.png has pixels
    assert view.loadResource(QTextDocument.ImageResource, QUrl("fig.png")).size().toTuple() == (5, 2)
    view.show_lesson_text("![a](in%20sub.png)", tmp_path)
    assert view.loadResource(QTextDocument.ImageResource, QUrl("in%20sub.png")).size().toTuple() == (3, 1)
    view.show_lesson_text("![a](fig.png) ![b](notes.png) ![c](http://127.0.0.1:9/x.png)", tmp_path)
    for name in ("notes.png", "/etc/passwd", "data:image/png;base64,AAAA"):
        assert view.loadResource(QTextDocument.ImageResource, QUrl(name)) is not None
    assert view.loadResource(QTextDocument.StyleSheetResource, QUrl("/etc/passwd")) == ""


def test_setmarkdown_is_inert_too_and_a_refusal_is_one_line(qtbot):
    from explorer.core.lessons.markup import MAX_NESTING
    from explorer.ui.learn.lesson_text import LessonText

    view = LessonText()
    qtbot.addWidget(view)
    view.setMarkdown("**bold** <b>tag</b>")  # the welcome page and any other page of the panel
    assert view.toPlainText() == "bold <b>tag</b>"
    note = view.show_lesson_text("> " * (MAX_NESTING + 5) + "deep", None)
    assert note.startswith("This step's text is not shown: ") and "\n" not in note
    assert view.toPlainText() == note
