"""Guards of issue 20 item 6 (no freeze over 100 ms) that count work instead of timing it.

The figures themselves come from bench/freeze_bench.py; these tests fail when the expensive thing is back:
an application-wide style sheet (Qt re-polishes every widget on a switch), a file write on the GUI thread.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.ui.common import theme as themes


@pytest.fixture
def light_after():
    from PySide6.QtWidgets import QApplication

    yield QApplication.instance()
    themes.apply_theme(QApplication.instance(), "light")


def test_a_theme_switch_is_a_palette_change_without_an_application_style_sheet(qtbot, tmp_path, light_after):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QLabel

    from explorer.ui.main_window import MainWindow

    app = light_after
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(window)
    # a label whose sheet sets only its font: its text must follow the palette through the switch
    mono = QLabel("x", window)
    mono.setStyleSheet("font-family: monospace;")
    window.show()
    qtbot.waitExposed(window)
    for name in ("dark", "light", "dark"):
        window.set_theme(name)
        theme = themes.get_theme(name)
        assert app.styleSheet() == ""  # no re-polish of every widget of the app
        assert app.palette().color(QPalette.Window).name() == theme["window"]
        assert app.palette().color(QPalette.Disabled, QPalette.ButtonText).name() == theme["disabled_text"]
        assert mono.palette().color(QPalette.WindowText).name() == theme["text"]


def test_only_sheets_that_take_the_palette_colour_are_re_applied(qtbot):
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    box = QWidget()
    qtbot.addWidget(box)
    QVBoxLayout(box)
    plain = [QLabel("a", box) for _ in range(30)]
    coloured = QLabel("b", box)
    coloured.setStyleSheet("color: #dc2626; font-size: 11px;")
    fonts = QLabel("c", box)
    fonts.setStyleSheet("font-family: monospace; background-color: #ffffff;")
    assert themes.refresh_style_sheets([box, *plain, coloured, fonts]) == 1
