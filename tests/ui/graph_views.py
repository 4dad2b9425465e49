"""A graph canvas as the graph UI tests show one: a GraphView of the trace tab's canvas size, on screen."""

from __future__ import annotations

CANVAS = (1100, 760)  # the graph canvas of a 1600x1000 window


def shown_graph(qtbot, tr, expanded=()):
    """A GraphView showing `tr` with the modules of `expanded` open, exposed on screen (not yet painted)."""
    from explorer.ui.graph.view import GraphView

    view = GraphView()
    qtbot.addWidget(view)
    view.resize(*CANVAS)
    view.show()
    qtbot.waitExposed(view)
    view.graph_scene.expanded = set(expanded)
    view.set_trace(tr)
    return view
