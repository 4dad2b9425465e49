"""pyqtgraph plots whose right-click menu costs nothing until it is opened.

Every pyqtgraph ViewBox builds its right-click menu ("View All", the X and Y axis forms, "Mouse Mode")
when it is made: a QMenu tree and two forms of a dozen widgets each, about a third of what making a
PlotWidget costs on the GUI thread. A workspace that makes several plots at once (the Pretraining page
makes six on its first visit) paid for menus nobody had opened. Here the menu is made at the first
right-click instead (`LazyMenuViewBox`), and a plot that offers no menu at all makes none
(`plot_widget(menu=False)`; `ViewBox.setMenuEnabled(False)` after the fact drops a menu already built).

The menu a user opens is pyqtgraph's own, unchanged: only the moment it is built moves.
"""

from __future__ import annotations

import pyqtgraph as pg


class LazyMenuViewBox(pg.ViewBox):
    """A ViewBox whose right-click menu is built the first time it is asked for (a right-click)."""

    menus_built = 0
    """How many of these ViewBoxes built their menu (tests count them; a plot made builds none)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["enableMenu"] = False  # pyqtgraph's __init__ would build the menu now
        super().__init__(*args, **kwargs)
        self.state["enableMenu"] = True  # wanted (menuEnabled() says so), built by getMenu

    def getMenu(self, ev):  # noqa: N802 - pyqtgraph's name
        if self.menu is None and self.menuEnabled():
            LazyMenuViewBox.menus_built += 1
            self.setMenuEnabled(True)  # pyqtgraph builds the menu of a ViewBox that has none
        return self.menu

    def getContextMenus(self, event):  # noqa: N802 - pyqtgraph's name
        menu = self.getMenu(event)
        return menu.actions() if menu is not None else []


def plot_widget(menu: bool = True, **kwargs) -> pg.PlotWidget:
    """A pg.PlotWidget (same keywords) whose menu is built at the first right-click, or that has none
    (`menu=False`)."""
    if not menu:
        return pg.PlotWidget(enableMenu=False, **kwargs)
    return pg.PlotWidget(viewBox=LazyMenuViewBox(), **kwargs)


def add_plot(layout, menu: bool = True, **kwargs) -> pg.PlotItem:
    """`layout.addPlot(**kwargs)` (a GraphicsLayout or GraphicsLayoutWidget), its menu as `plot_widget`'s."""
    if not menu:
        return layout.addPlot(enableMenu=False, **kwargs)
    return layout.addPlot(viewBox=LazyMenuViewBox(), **kwargs)
