"""The window can exist before torch loads: its import and construction stay off torch (about 2 s of
start-up on a quiet machine); torch loads once the window is painted (bench/startup_bench.py)."""

from __future__ import annotations

import os
import subprocess
import sys
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
"""


def test_importing_and_building_the_main_window_does_not_import_torch(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "settings.ini")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert "torch" not in lines["import"], "import explorer.ui.main_window imported torch"
    assert lines["window"] == "[]", "building the main window imported torch"


def test_the_probe_sees_torch_when_it_is_imported(tmp_path):
    """The check above can fail: the same probe reports torch once something imports it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "import sys, explorer.core.autograd.trace\n"
                          "print('torch' in sys.modules)"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stderr[-2000:]
