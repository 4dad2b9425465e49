"""The app shell: start-up options, lazy tabs, menus, sessions, export, screenshots, clean shutdown."""

from __future__ import annotations

import json
import sys
import threading
import types
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel

from explorer.core.lang.examples import example_title
from explorer.ui import app as app_module
from explorer.ui import main_window as mw

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    w = mw.MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown_panels()


def _expression(qtbot, window):
    panel = window.panel("expression")
    qtbot.waitUntil(lambda: panel.result is not None, timeout=WAIT)
    return panel


def test_tabs_are_created_lazily(qtbot, window):
    assert [window.tabs.tabText(i) for i in range(3)] == ["Expression", "Network", "Pretraining"]
    assert window.panels == {}
    with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT) as blocker:
        window.ensure_current_panel()
    assert blocker.args == ["expression"]
    assert set(window.panels) == {"expression"}


def test_a_failing_panel_shows_a_message_in_its_tab(qtbot, window, monkeypatch):
    broken = types.ModuleType("explorer_broken_panel")

    def explode(workspace=None):
        raise RuntimeError("no GPU driver here")

    broken.BrokenPanel = explode
    monkeypatch.setitem(sys.modules, "explorer_broken_panel", broken)
    monkeypatch.setattr(mw, "WORKSPACES", [*mw.WORKSPACES[:2], ("pretrain", "Pretraining",
                                                                  "explorer_broken_panel", "BrokenPanel")])
    assert window.panel("pretrain") is None
    label = window.findChild(QLabel, "pretrainError")
    assert label is not None and "no GPU driver here" in label.text()
    assert "could not be opened" in label.text()


def test_examples_menu_lists_titles_and_loads_them(qtbot, window):
    menu = window.findChild(type(window.menuBar().actions()[0].menu()), "examplesMenu")
    names = [a.data() for a in menu.actions()]
    assert "seed_sigmoid_bce" in names and len(names) >= 4
    titles = [a.text() for a in menu.actions()]
    assert all(t and not t.startswith("#") for t in titles)
    panel = _expression(qtbot, window)
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        window.load_example("softmax_cross_entropy" if "softmax_cross_entropy" in names else names[0])
    assert panel.result.ok


def test_example_title_comes_from_the_title_line():
    assert example_title("# note\n# Title: Tensors  \nx = 1", "f") == "Tensors"
    assert example_title("x = 1", "fallback") == "fallback"


def test_session_save_and_open_round_trip(qtbot, window, tmp_path):
    panel = _expression(qtbot, window)
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        panel.set_source("u = param(3.0)\nv = u * u")
    path = tmp_path / "session.json"
    window.save_session(path)
    data = json.loads(path.read_text())
    assert data["workspaces"]["expression"]["source"].startswith("u = param")
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        panel.set_source("q = param(1.0)\nr = q + q")
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        window.open_session(path)
    assert panel.source().startswith("u = param")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    window.open_session(bad)  # shown in the status bar, not raised
    assert "Could not open" in window.statusBar().currentMessage()


def test_last_session_and_theme_are_restored_on_next_launch(qtbot, settings):
    first = mw.MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.show()
    panel = _expression(qtbot, first)
    with qtbot.waitSignal(panel.sig_computed, timeout=WAIT):
        panel.set_source("k = param(0.5)\nm = k * 2.0")
    first.set_theme("dark")
    first.close()
    second = mw.MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.theme_name == "dark"
    restored = second.panel("expression")
    qtbot.waitUntil(lambda: restored.result is not None
                    and restored.result.source.startswith("k = param(0.5)"), timeout=WAIT)
    assert restored.source().startswith("k = param(0.5)")
    second.set_theme("light")
    second.close()


def test_export_graph_png_and_svg(qtbot, window, tmp_path):
    window.show_workspace("expression")
    _expression(qtbot, window)
    assert window.export_graph(tmp_path / "g.png")
    assert QImage(str(tmp_path / "g.png")).width() > 100
    assert window.export_graph(tmp_path / "g.svg", "svg")
    assert ET.parse(tmp_path / "g.svg").getroot().tag.endswith("svg")


def test_closing_the_window_leaves_no_worker_thread(qtbot, settings):
    w = mw.MainWindow(settings=settings, persist=False)
    qtbot.addWidget(w)
    w.show()
    _expression(qtbot, w)
    w.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("expr-compute")]


def test_screenshot_option_writes_a_png(qtbot, tmp_path):
    out = tmp_path / "shot.png"
    code = app_module.main(["--screenshot", str(out), "--example", "seed_sigmoid_bce", "--step", "10"])
    assert code == 0
    image = QImage(str(out))
    assert image.width() >= 1200 and image.height() >= 700


def test_screenshot_with_unknown_example_fails_cleanly(qtbot, tmp_path, capsys):
    code = app_module.main(["--screenshot", str(tmp_path / "x.png"), "--example", "no_such_example"])
    assert code == 2
    assert "unknown example" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_bad_option_returns_usage_error(capsys):
    assert app_module.main(["--workspace", "nowhere"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_interactive_start_shows_the_window_then_loads_the_workspace(qtbot, monkeypatch):
    seen: dict = {}

    def drive(app, window):
        # the real loop would run until the user quits; here the test waits for the workspace instead
        # (ending a real app.exec() would leave Qt unable to run the next tests' event loops)
        seen["shown_before_panel"] = window.isVisible() and "expression" not in window.panels
        qtbot.waitUntil(lambda: "expression" in window.panels and window.panels["expression"].result
                        is not None, timeout=WAIT)
        seen["ok"] = window.panels["expression"].result.ok
        window.close()
        return 0

    monkeypatch.setattr(app_module, "run_event_loop", drive)
    assert app_module.main(["--example", "seed_sigmoid_bce"]) == 0
    assert seen == {"shown_before_panel": True, "ok": True}


def test_theme_option_checks_its_view_menu_entry(qtbot, monkeypatch):
    from PySide6.QtWidgets import QApplication

    from explorer.ui.common import theme as themes

    seen: dict = {}

    def look(app, window):
        # let the workspace open first, so that closing the window also stops its worker
        qtbot.waitUntil(lambda: "expression" in window.panels and window.panels["expression"].result
                        is not None, timeout=WAIT)
        seen["checked"] = [a.data() for a in window._theme_actions.actions() if a.isChecked()]
        seen["current"] = themes.get_theme()["name"]
        window.persist = False  # do not keep dark for the next tests' windows
        window.close()
        return 0

    monkeypatch.setattr(app_module, "run_event_loop", look)
    try:
        assert app_module.main(["--theme", "dark"]) == 0
    finally:
        themes.set_current("light")
        themes.apply_theme(QApplication.instance(), "light")
    assert seen == {"checked": ["dark"], "current": "dark"}


def _text_extreme(widget, darkest: bool) -> int:
    """Luminance of the darkest (or brightest) pixel of a rendered widget: its text colour."""
    image = widget.grab().toImage()
    values = [image.pixelColor(x, y).lightness() for x in range(image.width())
              for y in range(image.height())]
    return min(values) if darkest else max(values)


@pytest.mark.parametrize("name", ["light", "dark"])
def test_disabled_buttons_look_disabled_in_both_themes(qtbot, name):
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QPushButton, QWidget

    from explorer.ui.common import theme as themes

    app = QApplication.instance()
    themes.apply_theme(app, name)
    try:
        box = QWidget()
        qtbot.addWidget(box)
        row = QHBoxLayout(box)
        enabled, disabled = QPushButton("Train"), QPushButton("Train")
        disabled.setEnabled(False)
        row.addWidget(enabled)
        row.addWidget(disabled)
        box.show()
        qtbot.waitExposed(box)
        assert enabled.grab().toImage() != disabled.grab().toImage()
        light = name == "light"
        on, off = _text_extreme(enabled, light), _text_extreme(disabled, light)
        # light: disabled text is clearly paler; dark: clearly dimmer
        assert (off - on > 40) if light else (on - off > 40)
    finally:
        themes.set_current("light")
        themes.apply_theme(app, "light")


def test_run_standalone_shows_the_panel_then_shuts_it_down(qtbot, monkeypatch):
    from PySide6.QtWidgets import QApplication, QWidget

    from explorer.ui.common import standalone
    from explorer.ui.common import theme as themes

    seen: dict = {"shutdown": 0}

    class Panel(QWidget):
        def shutdown(self):
            seen["shutdown"] += 1

    def factory():
        seen["panel"] = Panel()
        return seen["panel"]

    def look(app):  # instead of app.exec(): ending a real loop would stop the next tests' loops
        panel = seen["panel"]
        seen.update(title=panel.windowTitle(), visible=panel.isVisible(),
                    size=(panel.width(), panel.height()))
        return 0

    monkeypatch.setattr(standalone, "run_event_loop", look)
    try:
        assert standalone.run_standalone(factory, "Alone", (640, 480)) == 0
    finally:
        themes.apply_theme(QApplication.instance(), "light")
    assert seen["title"] == "Alone" and seen["visible"] and seen["size"] == (640, 480)
    assert seen["shutdown"] == 1
    assert not seen["panel"].isVisible()


@pytest.mark.parametrize("module, cls", [("explorer.ui.expression.panel", "ExpressionPanel"),
                                         ("explorer.ui.network.panel", "NetworkPanel"),
                                         ("explorer.ui.pretrain.panel", "PretrainPanel")])
def test_each_panel_main_opens_through_run_standalone(monkeypatch, module, cls):
    import importlib

    from explorer.ui.common import standalone

    calls = []
    monkeypatch.setattr(standalone, "run_standalone", lambda *a, **k: calls.append(a) or 0)
    mod = importlib.import_module(module)
    assert mod.main(["prog"]) == 0
    factory, title, size = calls[0][:3]
    assert factory is getattr(mod, cls)
    assert title.startswith("Autograd Explorer") and len(size) == 2


def test_every_control_of_the_expression_and_network_workspaces_explains_itself(qtbot, window):
    from PySide6.QtWidgets import (
        QAbstractButton,
        QAbstractSlider,
        QAbstractSpinBox,
        QComboBox,
        QFormLayout,
        QScrollBar,
        QTabBar,
    )

    missing = []
    for key in ("expression", "network"):
        panel = window.panel(key)
        for cls in (QAbstractButton, QAbstractSpinBox, QComboBox, QAbstractSlider):
            for control in panel.findChildren(cls):
                inner = control.parent() is not None and isinstance(
                    control.parent(), QAbstractSpinBox | QComboBox | QTabBar)
                qt_part = control.objectName().startswith("qt_") or isinstance(control, QScrollBar)
                if not (inner or qt_part or control.toolTip()):
                    missing.append(f"{key}: {type(control).__name__} {control.objectName() or ''}")
        for form in panel.findChildren(QFormLayout):
            for row in range(form.rowCount()):
                label = form.itemAt(row, QFormLayout.LabelRole)
                if label is not None and label.widget() is not None and not label.widget().toolTip():
                    missing.append(f"{key}: label {label.widget().text()!r}")
    assert missing == []


def test_workspace_menus_follow_the_tab_order(qtbot, window):
    window.panel("network")
    window.panel("expression")
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles.index("Expression") < titles.index("Network") < titles.index("&Help")


def test_no_display_is_a_clear_message_not_a_qt_abort():
    from explorer.ui.app import no_display_problem

    assert "DISPLAY" in no_display_problem(environ={}, platform="linux")
    assert no_display_problem(environ={"DISPLAY": ":0"}, platform="linux") is None
    assert no_display_problem(environ={"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is None
    assert no_display_problem(environ={"QT_QPA_PLATFORM": "offscreen"}, platform="linux") is None
    assert no_display_problem(environ={}, platform="darwin") is None
