"""Open one workspace panel alone in its own window (`python -m explorer.ui.<panel>`).

Every panel module ends with a `main()` that calls `run_standalone`, so the three workspaces start the
same way: one QApplication, the theme, the panel as a top-level window, a clean shutdown of its workers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from PySide6.QtWidgets import QApplication, QWidget

from explorer.ui.common import theme as themes


def run_standalone(
    panel_factory: Callable[[], QWidget],
    title: str,
    size: tuple[int, int],
    argv: Sequence[str] | None = None,
    theme: str = "light",
) -> int:
    """Show `panel_factory()` as a window titled `title` of `size` (width, height) until it closes.

    Reuses a running QApplication (tests) or makes one from `argv`; applies `theme`; calls the
    panel's `shutdown()` when the event loop ends. Returns the event loop's exit status.
    """
    from explorer.ui.common.forms import install_wheel_guard  # (run_event_loop serves the app before its
                                                              # first paint: forms names Qt's namespace)

    args = list(argv if argv is not None else sys.argv)
    app = QApplication.instance() or QApplication([*args, *themes.STYLE_ARGS])
    themes.apply_theme(app, theme)
    install_wheel_guard(app)
    panel = panel_factory()
    themes.style_labels(panel, themes.get_theme())
    panel.setWindowTitle(title)
    panel.resize(*size)
    panel.show()
    stopped = []

    def shutdown() -> None:  # once, whether the app quits or only the event loop ends
        if not stopped and hasattr(panel, "shutdown"):
            stopped.append(True)
            panel.shutdown()

    app.aboutToQuit.connect(shutdown)
    try:
        return run_event_loop(app)
    finally:
        app.aboutToQuit.disconnect(shutdown)
        shutdown()
        panel.close()


def run_event_loop(app) -> int:
    """Run the app until its last window closes (a seam for tests, which must not end the loop).

    The one place that enters Qt's event loop (QApplication.exec, not Python's exec builtin).
    """
    return app.exec()
