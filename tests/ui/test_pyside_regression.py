"""Regression guard for a PySide6 bug: 6.12.0 on CPython 3.11 leaks a reference to None on every void
Qt call and dies with `Fatal Python error: none_dealloc` after a few thousand of them."""

from __future__ import annotations

import subprocess
import sys

LOOP = """
from PySide6.QtCore import QRectF
r = QRectF(0, 0, 1, 1)
for _ in range(5000):
    r.setHeight(2.0)
print("done", r.height())
"""


def test_many_void_qt_calls_do_not_crash_the_interpreter():
    """5,000 void calls run to the end and the interpreter exits cleanly."""
    proc = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, timeout=120)
    assert "none_dealloc" not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "done 2.0"
