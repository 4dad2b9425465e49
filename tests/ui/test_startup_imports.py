"""The window can exist before torch loads: its import and construction stay off torch (about 2 s of
start-up on a quiet machine); torch loads once the window is painted (bench/startup_bench.py). Nor do
they load what only later work needs (pyqtgraph, the lessons, the example files, the memory overlay), and
the Learn dock reads the lessons (which import torch) on a Worker, not on the GUI thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import explorer.ui.main_window as mw
print("import", sorted(m for m in ("torch", "pyqtgraph") if m in sys.modules))
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from explorer.ui.common import theme
app = QApplication([])
w = mw.MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat))
theme.apply_theme(app, w.theme_name)
print("window", sorted(m for m in ("torch",) if m in sys.modules))
print("later", sorted(m for m in LATER if m in sys.modules))
"""
# what the window's first paint does not need: each is imported once something uses it
LATER = ("pyqtgraph", "explorer.core.lessons", "explorer.core.lang.examples", "explorer.ui.graph.memory",
         "explorer.ui.learn.lesson_text", "explorer.ui.common.worker", "importlib.resources")


def test_importing_and_building_the_main_window_does_not_import_torch(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    probe = PROBE.replace("LATER", repr(LATER))
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "settings.ini")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert "torch" not in lines["import"], "import explorer.ui.main_window imported torch"
    assert lines["window"] == "[]", "building the main window imported torch"
    assert lines["later"] == "[]", "the main window loaded what only later work needs"


def test_the_probe_sees_torch_when_it_is_imported(tmp_path):
    """The check above can fail: the same probe reports torch once something imports it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "import sys, explorer.core.autograd.trace\n"
                          "print('torch' in sys.modules)"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_the_learn_dock_reads_the_lessons_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from explorer.ui.learn import panel as learn_panel
    from explorer.ui.main_window import MainWindow

    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path / "data"))
    threads = []
    real = learn_panel.read_lessons

    def read():
        threads.append(threading.current_thread())
        return real()

    monkeypatch.setattr(learn_panel, "read_lessons", read)
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.sig_first_painted, timeout=60000):
        window.show()  # a first start: the dock offers itself at the first paint
    qtbot.waitUntil(lambda: window.learn.catalog is not None, timeout=60000)
    assert threads and threading.main_thread() not in threads
    assert window.learn.catalog.lessons
    window.persist = False
    window.close()
    window.shutdown_panels()


FIRST_FRAME = """
import enum, gc, os, sys
import explorer.ui.main_window as mw
from explorer.ui import app

if sys.argv[1] == "build-qt":  # the probe's own check: a window that names Qt before its first paint
    real_init = mw.MainWindow.__init__

    def init(self, *args, **kwargs):
        from PySide6.QtCore import Qt  # noqa: F401
        real_init(self, *args, **kwargs)

    mw.MainWindow.__init__ = init
real_after = mw.MainWindow._after_first_paint


def after(self):
    types = [t for t in gc.get_objects() if isinstance(t, enum.EnumType)]
    print("qt", sum(1 for t in types if t.__qualname__.startswith("Qt.")))
    print("modules", sorted(m for m in LATER_THAN_PAINT if m in sys.modules))
    sys.stdout.flush()
    real_after(self)


mw.MainWindow._after_first_paint = after
app.main([])
"""
# what the first frame does without: the Learn dock's contents and the wheel guard's field classes
LATER_THAN_PAINT = ("explorer.ui.learn.widgets", "explorer.ui.learn.prefetch", "explorer.ui.common.forms")


def first_frame(tmp_path, mode: str) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / mode), PYTHONPATH=str(ROOT), EXPLORER_STARTUP_PROBE="shown")
    probe = FIRST_FRAME.replace("LATER_THAN_PAINT", repr(LATER_THAN_PAINT))
    out = subprocess.run([sys.executable, "-c", probe, mode], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def test_the_first_frame_is_painted_before_pyside_builds_its_qt_namespace(tmp_path):
    """Naming Qt.<anything> builds the ~90 enum types of PySide's Qt namespace at once (50-100 ms, see
    ui/common/placeholder.py): the app's start (first launch) paints the window before that, and before
    the Learn dock's contents or the wheel guard's module are imported."""
    lines = first_frame(tmp_path, "app")
    assert lines["qt"] == "0", "a Qt-namespace enum type was built before the first paint"
    assert lines["modules"] == "[]"


def test_the_first_frame_probe_counts_qt_namespace_enums(tmp_path):
    assert int(first_frame(tmp_path, "build-qt")["qt"]) > 50
