"""Start the desktop app: show the window first, load torch and the workspaces right after.

`main(argv)` is called by explorer/cli.py with the arguments that are not a headless command:
`[--screenshot PATH [--workspace expression|network|pretrain] [--example NAME] [--preset NAME]
[--step K]]`. Only PySide6 and small UI modules are imported before the window is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from explorer.ui.common import qt_libs

WORKSPACE_KEYS = ("expression", "network", "pretrain")
CLOSE_AFTER_READY_MS = 300  # the start-up probe's "close" mode closes the window this long after "ready"


def build_parser() -> argparse.ArgumentParser:
    """Options of the desktop app."""
    p = argparse.ArgumentParser(
        prog="python main.py",
        description="Autograd Explorer: watch PyTorch autograd work node by node. "
                    "Headless commands: grad, graph, params, train (see `python -m explorer --help`).",
    )
    p.add_argument("--screenshot", metavar="PATH", help="render the window offscreen to a PNG and exit")
    p.add_argument("--workspace", choices=WORKSPACE_KEYS, default=None,
                   help="workspace to show (default: expression, or the last one used)")
    p.add_argument("--example", metavar="NAME", help="expression example to load (file stem in "
                   "assets/examples, e.g. seed_sigmoid_bce)")
    p.add_argument("--preset", metavar="NAME", help="network or pretraining preset to load")
    p.add_argument("--step", metavar="K", type=int, default=None,
                   help="player step for the screenshot (default: the end)")
    p.add_argument("--theme", choices=("light", "dark"), default=None, help="colour theme")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the app (or render a screenshot); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if args.screenshot:
        return _screenshot(args)
    problem = no_display_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return _run_interactive(args, argv, qt_libs.start_xcb_check(os.environ, sys.platform))


def no_display_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why a window cannot open here (Linux without X11 or Wayland), else None.

    Without this, Qt aborts the process with a core dump and a message about plugins.
    """
    if not platform.startswith("linux") or environ.get("QT_QPA_PLATFORM"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set). Run it on a "
            "desktop, under xvfb-run, or render offscreen with --screenshot PATH; the headless commands "
            "(python -m explorer --help) need no display.")


def _make_app(argv: list[str]):
    from PySide6.QtWidgets import QApplication

    from explorer.ui.common.theme import STYLE_ARGS

    app = QApplication.instance() or QApplication([sys.argv[0], *STYLE_ARGS, *argv])
    app.setApplicationName("Autograd Explorer")
    app.setOrganizationName("AutogradExplorer")
    return app


def _install_wheel_guard(app) -> None:
    from explorer.ui.common.forms import install_wheel_guard

    install_wheel_guard(app)


def _run_interactive(args, argv: list[str], xcb_problem=lambda: None) -> int:
    """Open the window; `xcb_problem` (qt_libs.start_xcb_check) is asked once PySide6 is imported, before
    the QApplication loads Qt's platform plugin, which would abort the process."""
    from explorer.ui.common import theme as themes
    from explorer.ui.main_window import MainWindow

    problem = xcb_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    app = _make_app([])
    window = MainWindow()
    # The wheel guard filters every event of the app in Python: no field exists before the first paint
    # (panels and the Learn dock's contents are built after it), so it starts then.
    window.sig_first_painted.connect(lambda: _install_wheel_guard(app))  # emitted once
    if args.theme:  # the View menu's check mark must agree with the theme on screen
        window.set_theme(args.theme)
    else:  # the palettes now, the style-sheet propagation once the first frame is on screen
        themes.apply_palette(app, window.theme_name)
        window.sig_first_painted.connect(lambda: themes.use_sheet_propagation(app))
    if args.workspace:
        window.show_workspace(args.workspace)
    window.import_wait_s = 0  # the process ends with os._exit: a core import in flight is not waited for
    probe = os.environ.get("EXPLORER_STARTUP_PROBE")
    if probe:  # used by bench/startup_bench.py: report the first paint (with "ready"/"close", more)
        _install_startup_probe(app, window, probe)
    # torch loads once the window is painted, on the window's loader Worker: the visible workspace's core
    # modules first, then the other workspaces' (torch._dynamo among them), one at a time
    window.show()
    if args.example and not probe:
        window.sig_first_painted.connect(lambda: window.load_example(args.example))
    return run_event_loop(app, window)


def _install_startup_probe(app, window, mode: str) -> None:
    """Print "shown <time>" at the window's first paint and quit; with mode "ready" print "preview <time>"
    when the last look of a restored workspace is on screen, "ready <time>" once the visible workspace's
    panel exists and quit then; with mode "close" print "closing <time>" CLOSE_AFTER_READY_MS after "ready"
    and close the window (the bench times how long the process lives on).

    From the first paint to "ready" a 10 ms timer pings the event loop: "late <ms>" (printed before
    "ready") is the worst delay of a ping, i.e. the longest the window could not answer meanwhile.
    A panel built before torch (it has `graph_wait`) prints "computed <time>" when its first result is
    shown, with "late-computed <ms>", the worst delay from "ready" to then (while torch loads); the close
    mode then closes after that result.
    """
    from PySide6.QtCore import QTimer

    ping = QTimer(window)  # precise once the window is painted (Qt's namespace is not built before)
    ping.setInterval(10)
    last, worst = [0.0], [0.0]

    def pinged() -> None:
        now = time.perf_counter()
        worst[0] = max(worst[0], now - last[0] - 0.010)
        last[0] = now

    ping.timeout.connect(pinged)

    def shown() -> None:
        # when the frame was on screen: the slots of sig_first_painted connected before this one (the
        # memory overlay's menu binding, a first start's Learn dock) ran after it
        print(f"shown {window.first_painted_at or time.time():.6f}", flush=True)
        print(f"shown-cpu {window.first_painted_cpu or time.process_time():.6f}", flush=True)
        if mode not in ("ready", "close"):
            app.quit()
            return
        from PySide6.QtCore import Qt

        ping.setTimerType(Qt.PreciseTimer)
        last[0] = time.perf_counter()
        ping.start()

    def ready(key: str) -> None:
        if key != window.current_key():
            return
        pinged()
        print(f"late {1000 * worst[0]:.1f}", flush=True)  # milliseconds
        print(f"ready {time.time():.6f}", flush=True)
        panel = window.panel(key, create=False)
        wait = getattr(panel, "graph_wait", None)
        if wait is not None and wait.waiting():  # built before torch: time its first result too
            worst[0] = 0.0
            from PySide6.QtCore import Qt

            panel.sig_computed.connect(lambda _result: computed(), Qt.SingleShotConnection)
            return
        finish()

    def computed() -> None:
        pinged()
        print(f"late-computed {1000 * worst[0]:.1f}", flush=True)
        print(f"computed {time.time():.6f}", flush=True)
        finish()

    def finish() -> None:
        ping.stop()
        if mode == "close":  # once the panel is on screen, as a user would close it (and it is grabbed)
            QTimer.singleShot(CLOSE_AFTER_READY_MS, window, close)
        else:
            app.quit()

    def close() -> None:
        print(f"closing {time.time():.6f}", flush=True)
        window.close()

    def preview(key: str) -> None:
        if key == window.current_key():
            print(f"preview {time.time():.6f}", flush=True)

    window.sig_first_painted.connect(shown)
    if mode in ("ready", "close"):
        window.sig_preview_shown.connect(preview)
        window.sig_panel_ready.connect(ready)


def run_event_loop(app, window) -> int:
    """Run the app until the window closes, then end the process at once (a seam for tests, which
    drive the loop themselves).

    When the loop ends there is nothing left to do: the window stopped its panels' workers (on close,
    or on aboutToQuit) and synced the settings. Python's own teardown with torch loaded would still take
    about a second (bench/startup_bench.py prints close -> exit), and would wait for a computation still
    running on an executor thread, so the process leaves with os._exit after flushing its output.
    """
    from explorer.ui.common.standalone import run_event_loop as qt_event_loop

    status = qt_event_loop(app)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _screenshot(args) -> int:
    import tempfile

    from explorer.core.workspaces.pretrain import DATA_ENV

    # A screenshot neither shows nor adds to the user's runs: they go to a scratch data folder (unless
    # one is given), so the picture reads "Run 1" wherever it is made.
    with tempfile.TemporaryDirectory(prefix="explorer-screenshot-") as scratch, quiet_offscreen_noise():
        if not os.environ.get(DATA_ENV):
            os.environ[DATA_ENV] = scratch
        try:
            return _render_screenshot(args)
        finally:
            from explorer.ui.common.worker import shutdown_all

            shutdown_all()  # no event loop ran, so nothing else stops the panels' background jobs
            if os.environ.get(DATA_ENV) == scratch:
                del os.environ[DATA_ENV]


def _render_screenshot(args) -> int:
    from PySide6.QtCore import QSettings

    from explorer.ui.common import theme as themes
    from explorer.ui.main_window import MainWindow

    app = _make_app([])
    _install_wheel_guard(app)
    themes.apply_theme(app, args.theme or "light")
    # a screenshot must not depend on (or change) the user's saved session
    window = MainWindow(settings=QSettings(), persist=False)
    window.set_theme(args.theme or "light")  # the window styles the panels it builds in its own theme
    window.resize(1600, 900)
    key = args.workspace or "expression"
    window.show_workspace(key)
    window.show()
    panel = window.panel(key)
    if panel is None:
        print(f"error: the {key} workspace could not be opened: {window.errors.get(key)}", file=sys.stderr)
        return 1
    try:
        if hasattr(panel, "prepare_screenshot"):
            panel.prepare_screenshot(preset=args.preset, example=args.example, step=args.step)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        window.close()
        return 2
    return save_window_png(app, window, panel, args.screenshot)


def save_window_png(app, window, panel, path: str) -> int:
    """Settle the layouts, fit the panel's graphs, grab the window to a PNG and close it; exit status."""
    for _ in range(3):  # let layouts settle and the graph fit its final size
        app.processEvents()
    for view in _graph_views(panel) if panel is not None else []:
        view.fit()
    app.processEvents()
    ok = window.grab().save(path)
    window.close()
    if not ok:
        print(f"error: could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


# Qt's offscreen platform reports each window it cannot size-hint; harmless, and it would bury the
# one "error: ..." line a failed screenshot prints.
_OFFSCREEN_NOISE = ("This plugin does not support propagateSizeHints()",)


@contextlib.contextmanager
def quiet_offscreen_noise():
    """Drop the offscreen plugin's known warnings meanwhile; other Qt messages go where they went."""
    from PySide6.QtCore import qInstallMessageHandler

    previous = None

    def handler(mode, context, message: str) -> None:
        if message in _OFFSCREEN_NOISE:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            print(message, file=sys.stderr)

    previous = qInstallMessageHandler(handler)
    try:
        yield
    finally:
        qInstallMessageHandler(previous)


def _graph_views(panel):
    from explorer.ui.graph.view import GraphView

    return [v for v in panel.findChildren(GraphView) if v.isVisible()]


if __name__ == "__main__":
    raise SystemExit(main())
