"""Shared set-up of the UI tests: headless Qt and a throwaway settings store.

QT_QPA_PLATFORM must be set before any Qt module loads, so it is set at import time of this file,
which pytest imports before the test modules of this folder.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory):
    """Point QSettings at a temporary folder so tests never read or write the user's settings."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("qsettings")
    for scope in (QSettings.UserScope, QSettings.SystemScope):
        QSettings.setPath(QSettings.IniFormat, scope, str(folder))
        QSettings.setPath(QSettings.NativeFormat, scope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test():
    """Each test's background jobs end with it, and its garbage goes before the next test starts.

    Otherwise one test's leftover widgets are collected while the next test's worker thread runs, which
    made runs of the whole suite hang or crash now and then in the garbage collector. What survives the
    collection (modules, caches: torch's and Qt's objects) is then frozen, so the next test's collection
    scans only what that test made: a full collection over millions of long-lived objects took ~0.35 s
    per UI test (190 s of a 570 s suite).
    """
    yield
    import gc

    from explorer.ui.common import worker

    worker.shutdown_all(10000)
    gc.collect()
    gc.freeze()
