"""pyqtgraph's right-click menus are built when opened, not with every plot (issue 20 item 6).

Counts, never clocks: how many ViewBox menus building a panel makes, and that a right-click still opens
pyqtgraph's menu on a plot that offers one.
"""

from __future__ import annotations

import importlib

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

viewbox_module = importlib.import_module("pyqtgraph.graphicsItems.ViewBox.ViewBox")


@pytest.fixture
def menus_made(monkeypatch):
    """The ViewBox menus made while the test runs (a list that grows)."""
    made: list = []
    real = viewbox_module.ViewBoxMenu

    class Counting(real):
        def __init__(self, view):
            made.append(view)
            super().__init__(view)

    monkeypatch.setattr(viewbox_module, "ViewBoxMenu", Counting)
    return made


def _right_click(qtbot, widget) -> None:
    widget.resize(300, 200)
    widget.show()
    qtbot.waitExposed(widget)
    viewport = widget.viewport()
    QTest.mouseClick(viewport, Qt.RightButton, Qt.NoModifier, QPoint(150, 100))


def test_a_plain_plot_widget_builds_its_menu_only_at_the_first_right_click(qtbot, menus_made):
    from explorer.ui.common.plot_menus import plot_widget

    widget = plot_widget()
    qtbot.addWidget(widget)
    box = widget.getPlotItem().getViewBox()
    assert menus_made == [] and box.menu is None
    assert box.menuEnabled()  # offered: the user's right-click opens it
    _right_click(qtbot, widget)
    assert menus_made == [box]
    qtbot.waitUntil(lambda: box.menu.isVisible())
    texts = [action.text() for action in box.menu.actions()]
    assert "View All" in texts  # pyqtgraph's own menu
    box.menu.close()
    _right_click(qtbot, widget)  # the second right-click reuses it
    assert menus_made == [box]
    box.menu.close()


def test_a_plot_without_a_menu_builds_none_and_a_right_click_opens_nothing(qtbot, menus_made):
    import pyqtgraph as pg

    from explorer.ui.common.plot_menus import add_plot, plot_widget

    widget = plot_widget(menu=False)
    qtbot.addWidget(widget)
    box = widget.getPlotItem().getViewBox()
    assert not box.menuEnabled() and not widget.getPlotItem().menuEnabled()
    _right_click(qtbot, widget)
    assert menus_made == [] and box.menu is None
    layout = pg.GraphicsLayoutWidget()
    qtbot.addWidget(layout)
    lazy, none = add_plot(layout, row=0, col=0), add_plot(layout, menu=False, row=0, col=1)
    assert lazy.getViewBox().menuEnabled() and not none.getViewBox().menuEnabled()
    assert menus_made == []
    assert lazy.getViewBox().getContextMenus(None)  # asked for (a child item's right-click): built now
    assert menus_made == [lazy.getViewBox()] and none.getViewBox().getContextMenus(None) == []


def test_building_the_pretraining_page_makes_no_plot_menu(qtbot, menus_made):
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    qtbot.waitExposed(panel)
    try:
        plots = [panel.plots.loss_widget, panel.plots.lr_widget, panel.plots.grad_widget,
                 panel.health_tab.grad_plot, panel.health_tab.ratio_plot]
        # before: one menu per plot, each with two axis forms. pyqtgraph's ColorBarItem (the attention
        # tab's scale) builds one and drops it in its own __init__: the one menu left
        attention = panel.findChild(QWidget, "pretrainAttention")
        assert [id(view) for view in menus_made] == [id(attention.colour_bar.getViewBox())]
        assert all(plot.getPlotItem().getViewBox().menu is None for plot in plots)
        # the training plots still offer pyqtgraph's menu; the health plots never did
        assert all(plot.getPlotItem().getViewBox().menuEnabled() for plot in plots[:3])
        assert not any(plot.getPlotItem().getViewBox().menuEnabled() for plot in plots[3:])
    finally:
        panel.shutdown()


def test_building_the_network_page_makes_no_plot_menu_but_its_colour_bars(qtbot, menus_made):
    import pyqtgraph as pg

    from explorer.ui.network.panel import NetworkPanel

    panel = NetworkPanel()
    qtbot.addWidget(panel)
    try:
        bars = [item.getViewBox() for item in panel.findChildren(pg.GraphicsView)
                for item in item.items() if isinstance(item, pg.ColorBarItem)]
        # pyqtgraph's ColorBarItem builds its own menu and drops it (the landscape's scale): nothing else
        assert [id(view) for view in menus_made] == [id(view) for view in bars]
        plots = [plot for plot in panel.findChildren(pg.PlotWidget)]
        assert len(plots) >= 5 and all(plot.getPlotItem().getViewBox().menu is None for plot in plots)
    finally:
        panel.shutdown() if hasattr(panel, "shutdown") else None
