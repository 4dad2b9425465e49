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
