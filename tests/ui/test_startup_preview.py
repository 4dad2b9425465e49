"""A returning user sees the workspace as it was left while torch loads: the window grabs its visible
panel at close, and the next start shows that picture (marked as loading) until the panel is built."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from explorer.ui import main_window as mw

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


def _closed_on_expression(qtbot, settings_path) -> mw.MainWindow:
    first = mw.MainWindow(settings=QSettings(str(settings_path), QSettings.IniFormat))
    qtbot.addWidget(first)
    first.show()
    panel = first.panel("expression")
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT)
    first.close()
    return first


def test_the_last_look_is_saved_at_close_and_shown_at_the_next_start_until_the_panel_exists(qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    first = _closed_on_expression(qtbot, settings_path)
    path = first.preview_path()
    assert path is not None and path.is_file()
    picture = QImage(str(path))
    assert not picture.isNull() and picture.width() > 200 and picture.height() > 200

    second = mw.MainWindow(settings=QSettings(str(settings_path), QSettings.IniFormat))
    qtbot.addWidget(second)
    built = []
    second._load_current_panel = lambda: built.append(second.current_key())  # torch "still loading"
    with qtbot.waitSignal(second.sig_preview_shown, timeout=WAIT) as shown:
        second.show()
    # the picture is read on a Worker while the panel's load is queued after the first paint: either may
    # come first (the suite once saw the picture before the load was asked for)
    qtbot.waitUntil(lambda: built == ["expression"], timeout=WAIT)
    assert shown.args == ["expression"]
    label = second.findChild(QLabel, "expressionPreview")
    assert label is not None and not label.pixmap().isNull()
    assert label.pixmap().size() == picture.size()
    note = second.findChild(QLabel, "expressionPreviewNote")
    assert "as you left it" in note.text()
    assert second.panels == {}  # only a picture: the panel is built once its modules are in

    del second._load_current_panel  # the real loader: the panel takes the picture's place
    with qtbot.waitSignal(second.sig_panel_ready, timeout=WAIT):
        second._load_current_panel()
    qtbot.waitUntil(lambda: second.findChild(QLabel, "expressionPreview") is None, timeout=WAIT)
    second.persist = False
    second.close()


def test_no_picture_is_shown_for_another_workspace_or_theme(qtbot, tmp_path):
    settings_path = tmp_path / "settings.ini"
    _closed_on_expression(qtbot, settings_path)
    settings = QSettings(str(settings_path), QSettings.IniFormat)
    settings.setValue("theme", "dark")  # the picture shows the light theme
    settings.sync()
    second = mw.MainWindow(settings=QSettings(str(settings_path), QSettings.IniFormat))
    qtbot.addWidget(second)
    assert second._preview_wanted is None
    second.persist = False
    second.close()


def test_a_window_that_does_not_persist_writes_no_picture(qtbot, tmp_path):
    w = mw.MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(w)
    w.show()
    panel = w.panel("expression")
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT)
    w.close()
    assert not (tmp_path / mw.PREVIEW_NAME).exists()


def test_a_picture_that_could_not_be_written_is_not_replaced_by_an_older_one(qtbot, tmp_path, monkeypatch):
    from explorer.core import files

    settings_path = tmp_path / "settings.ini"
    _closed_on_expression(qtbot, settings_path)  # a first picture, of the expression workspace

    def refuse(path, data):
        raise files.FileProblem(f"{path}: disk full")

    monkeypatch.setattr(files, "write_atomic", refuse)
    again = _closed_on_expression(qtbot, settings_path)  # its picture cannot be written
    assert not again.save_preview()
    third = mw.MainWindow(settings=QSettings(str(settings_path), QSettings.IniFormat))
    qtbot.addWidget(third)
    assert third._preview_wanted is None  # the older picture is not shown as this session's
    third.persist = False
    third.close()
