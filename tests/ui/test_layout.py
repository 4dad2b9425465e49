"""Issue 20's layout items: the graph gets the room to draw its numbers, no text is cut off where a user
must read it, nothing jumps, and the dark theme keeps its inputs and curves visible.

Each case is checked at the default window (1440x860, the Learn dock beside it) and the smaller 1280x800,
with the dock open and closed.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.ui.common import theme as themes

SIZES = [(1440, 860), (1280, 800)]


# -- dark theme (item 8) ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["light", "dark"])
def test_every_run_colour_reads_on_its_plot(name):
    from explorer.core.gpt.runs import PALETTE
    from explorer.ui.network.training import RUN_COLORS, run_colour

    theme = themes.get_theme(name)
    for colour in PALETTE:  # pretraining runs
        shown = themes.plot_colour(colour, theme)
        assert themes.contrast_ratio(shown, theme["panel"]) >= 3.0, (name, colour, shown)
    for number in range(1, len(RUN_COLORS) + 1):  # toy-training runs
        shown = "#{:02x}{:02x}{:02x}".format(*run_colour(number, theme))
        assert themes.contrast_ratio(shown, theme["panel"]) >= 3.0, (name, number, shown)
    # Run 1's blue was too dark on the dark plot: it is lifted, keeping its hue (still mostly blue)
    if name == "dark":
        r, g, b = (int(themes.plot_colour(PALETTE[0], theme)[i:i + 2], 16) for i in (1, 3, 5))
        assert b > r and b > g


@pytest.mark.parametrize("kind", ["spin", "line", "combo"])
def test_dark_inputs_keep_a_visible_border(qtbot, kind):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QApplication, QComboBox, QDoubleSpinBox, QLineEdit, QVBoxLayout, QWidget

    app = QApplication.instance()
    before = app.styleSheet()
    theme = themes.apply_theme(app, "dark")
    try:
        box = QWidget()
        qtbot.addWidget(box)
        field = {"spin": QDoubleSpinBox, "line": QLineEdit, "combo": QComboBox}[kind]()
        QVBoxLayout(box).addWidget(field)
        box.resize(240, 60)
        box.show()
        qtbot.waitExposed(box)
        image = field.grab().toImage()
        y = image.height() // 2
        edge = image.pixelColor(0, y)
        inside = image.pixelColor(image.width() // 3, y)
        # the left edge is the border colour, clearly apart from the window and from the field inside
        border, window = QColor(theme["card_border"]), QColor(theme["window"])
        assert abs(edge.lightness() - window.lightness()) > 15, (edge.name(), window.name())
        assert abs(edge.lightness() - border.lightness()) < 12, (edge.name(), border.name())
        assert edge != inside
    finally:
        themes.set_current("light")
        app.setStyleSheet(before)


def test_dark_theme_draws_no_light_line_between_the_menus_and_the_tabs(qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication

    from explorer.ui.main_window import MainWindow

    app = QApplication.instance()
    before = app.styleSheet()
    themes.apply_theme(app, "dark")
    try:
        window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
        qtbot.addWidget(window)
        window.set_theme("dark")
        window.resize(1440, 860)
        window.show()
        qtbot.waitExposed(window)
        image = window.grab().toImage()
        bar = window.menuBar().geometry()
        tabs = window.tabs.tabBar()
        top = tabs.mapTo(window, tabs.rect().topLeft()).y()
        x = bar.right() - 40  # right of the last menu, above the empty part of the tab row
        rows = range(bar.bottom() - 3, top + 4)
        lightest = max(image.pixelColor(x, y).lightness() for y in rows)
        assert lightest < 100, [image.pixelColor(x, y).name() for y in rows]
    finally:
        themes.set_current("light")
        app.setStyleSheet(before)
