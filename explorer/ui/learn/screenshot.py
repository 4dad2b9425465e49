"""Render the window with a lesson mid-exercise to a PNG, without a screen (the README's picture).

    python -m explorer.ui.learn.screenshot docs/screenshot-lesson.png
    python -m explorer.ui.learn.screenshot out.png --lesson tensors --step shape --answer "(3, 2)" \
        --theme dark

The step's action runs as when the student picks it; `--answer` is typed and checked (a wrong one shows
the hint). Settings and lesson progress go to throwaway folders: the user's are never read or changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    """Write the screenshot; exit status 2 and one line on stderr for an unknown lesson or step."""
    parser = argparse.ArgumentParser(prog="python -m explorer.ui.learn.screenshot", description=__doc__.split(
        "\n")[0])
    parser.add_argument("out", help="the PNG file to write")
    parser.add_argument("--lesson", default="gradients-three-ways", help="lesson id")
    parser.add_argument("--step", default="by-hand", help="step id")
    parser.add_argument("--answer", default="-0.09", help="the answer typed and checked ('' for none)")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from explorer.ui.app import quiet_offscreen_noise  # the offscreen plugin's known warnings

    with quiet_offscreen_noise():
        return _render(args)


def _render(args) -> int:
    scratch = tempfile.mkdtemp(prefix="explorer-lesson-shot-")
    os.environ["AUTOGRAD_EXPLORER_DATA"] = scratch  # fresh progress: no ticks from the user's own

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer.ui.app import save_window_png
    from explorer.ui.common import theme as themes
    from explorer.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *themes.STYLE_ARGS])
    themes.apply_theme(app, args.theme)
    window = MainWindow(settings=QSettings(os.path.join(scratch, "settings.ini"), QSettings.IniFormat),
                        persist=False)
    window.set_theme(args.theme)
    window.resize(1600, 900)
    window.show()
    app.processEvents()
    dock = window.learn
    dock.show()
    dock.ensure_built()
    lessons = dock.catalog.lessons
    try:
        i = next(i for i, lesson in enumerate(lessons) if lesson.id == args.lesson)
        j = next(j for j, step in enumerate(lessons[i].steps) if step.id == args.step)
    except StopIteration:
        ids = ", ".join(lesson.id for lesson in lessons)
        print(f"error: no lesson {args.lesson!r} with a step {args.step!r} (lessons: {ids})", file=sys.stderr)
        window.close()
        return 2
    dock.open_step(i, j)
    dock.wait_opened()
    panel = window.panel(window.current_key())
    if panel is not None and hasattr(panel, "wait_computed"):
        panel.wait_computed()
    if args.answer and dock.step.exercise is not None and dock.step.exercise.kind in ("number", "shape"):
        dock.answer_edit.setText(args.answer)
        dock.check_answer()
    return save_window_png(app, window, panel, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
