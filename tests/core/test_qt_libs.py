"""Point 10 of issue 12: when Qt's xcb plugin cannot load, one message names the missing libraries and the
apt line. Pure functions only: no Qt is imported here."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.ui.common import qt_libs

LDD_WITH_TWO_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f01)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f02)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)
"""


def test_missing_libraries_are_read_from_ldd_once_each_in_order():
    assert qt_libs.missing_from_ldd(LDD_WITH_TWO_MISSING) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert qt_libs.missing_from_ldd("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_the_message_names_the_libraries_and_the_apt_command():
    text = qt_libs.missing_libraries_message(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "\n" not in text
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert text.endswith("sudo apt install libxcb-icccm4 libxcb-keysyms1")
    assert qt_libs.missing_libraries_message([]) is None


def test_an_unknown_library_is_named_without_a_made_up_package():
    text = qt_libs.missing_libraries_message(["libxcb-cursor.so.0", "libfoo.so.9"])
    assert "sudo apt install libxcb-cursor0" in text
    assert "libfoo.so.9" in text and "libfoo9" not in text
    assert qt_libs.apt_command(["libfoo.so.9"]) == ""


def test_the_check_runs_only_where_qt_would_load_xcb(monkeypatch):
    monkeypatch.setattr(qt_libs, "find_missing_xcb_libraries", lambda: ["libxcb-icccm.so.4"])
    assert "libxcb-icccm4" in qt_libs.xcb_problem({}, "linux")
    assert "libxcb-icccm4" in qt_libs.xcb_problem({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert qt_libs.xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert qt_libs.xcb_problem({"QT_QPA_PLATFORM": "wayland"}, "linux") is None
    assert qt_libs.xcb_problem({}, "darwin") is None
    monkeypatch.setattr(qt_libs, "find_missing_xcb_libraries", lambda: [])
    assert qt_libs.xcb_problem({}, "linux") is None


def test_the_readme_gives_the_one_apt_line_of_every_known_package():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    lines = [ln for ln in readme.splitlines() if re.match(r"\s*sudo apt install libxcb", ln)]
    assert len(lines) == 1
    assert lines[0].split()[3:] == list(qt_libs.README_APT_PACKAGES)
    assert set(qt_libs.README_APT_PACKAGES) <= set(qt_libs.APT_PACKAGES.values())


@pytest.mark.parametrize("loads", [True, None])
def test_the_detection_imports_no_qt(loads):
    # The detection runs before any Qt: it must import none, whether or not the plugin loads on this
    # machine (None: the real answer here). Where the plugin loads (every healthy start) it must not
    # import subprocess either: ldd runs, and costs its import, only when the plugin did not load.
    stub = "qt_libs.plugin_loads = lambda _plugin: True; " if loads else ""
    code = ("import sys; from explorer.ui.common import qt_libs; " + stub
            + "qt_libs.xcb_problem({}, 'linux'); "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'subprocess'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    imported = ast.literal_eval(out.stdout.strip())
    assert [m for m in imported if m != "subprocess"] == []
    if loads:
        assert imported == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_the_app_prints_one_line_and_exits_2_before_qt_loads_its_platform_plugin():
    # the check (start_xcb_check) is asked once PySide6 is imported, before the QApplication
    code = ("import sys; from explorer.ui.common import qt_libs; "
            "qt_libs.plugin_loads = lambda _plugin: False; "
            "qt_libs.ldd_missing = lambda _plugin: ['libxcb-icccm.so.4', 'libxcb-keysyms.so.1']; "
            "from explorer.ui import app; status = app.main([]); "
            "from PySide6.QtCore import QCoreApplication; "
            "print(status, QCoreApplication.instance())")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["DISPLAY"] = ":0"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "2 None"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Qt's xcb platform plugin cannot load")
    assert lines[0].endswith("sudo apt install libxcb-icccm4 libxcb-keysyms1")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_ldd_runs_only_when_the_plugin_does_not_load(monkeypatch):
    started = []

    def fake_ldd(_plugin):
        started.append(True)
        return ["libxcb-cursor.so.0"]

    monkeypatch.setattr(qt_libs, "ldd_missing", fake_ldd)
    monkeypatch.setattr(qt_libs, "xcb_plugin_path", lambda: Path("libqxcb.so"))
    monkeypatch.setattr(qt_libs, "plugin_loads", lambda _plugin: True)
    assert qt_libs.find_missing_xcb_libraries() == [] and started == []
    monkeypatch.setattr(qt_libs, "plugin_loads", lambda _plugin: False)
    assert qt_libs.find_missing_xcb_libraries() == ["libxcb-cursor.so.0"] and started == [True]


def test_a_library_that_cannot_be_loaded_is_told_apart():
    assert not qt_libs.plugin_loads(Path("/nonexistent/libqxcb.so"))
