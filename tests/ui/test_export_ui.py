"""File > Export as Python script / notebook: from the current workspace's model to a file, errors in the
status bar."""

from __future__ import annotations

import ast

import nbformat
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from explorer.ui import main_window as mw
from explorer.ui.common import actions

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


@pytest.fixture
def window(qtbot, tmp_path):
    w = mw.MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown_panels()


def _file_action(window, action_id):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    return next(a for a in file_menu.actions() if a.property(actions.ACTION_ID) == action_id)


def test_the_menu_action_writes_the_workspaces_program_as_a_script(qtbot, window, tmp_path, monkeypatch):
    window.workspaces.get("expression").set_source("w = param(3.0)\nL = w * w")
    target = tmp_path / "mine.py"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    _file_action(window, "app.export_script").trigger()
    qtbot.waitUntil(target.exists, timeout=WAIT)
    code = target.read_text(encoding="utf-8")
    ast.parse(code)
    assert "w = torch.tensor(3.0, requires_grad=True)" in code
    qtbot.waitUntil(lambda: "Exported to" in window.statusBar().currentMessage(), timeout=WAIT)


def test_the_notebook_action_exports_the_network_workspace(qtbot, window, tmp_path, monkeypatch):
    window.show_workspace("network")
    window.workspaces.get("network").set_preset("mlp-50-30-20-3")
    target = tmp_path / "net.ipynb"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    _file_action(window, "app.export_notebook").trigger()
    qtbot.waitUntil(target.exists, timeout=WAIT)
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    assert any("nn.Linear(50, 30)" in c.source for c in nb.cells)


def test_problems_go_to_the_status_bar(qtbot, window, tmp_path):
    window.workspaces.get("expression").set_source("x = = 1")
    assert not window.export_code(tmp_path / "bad.py")
    assert "Could not export this workspace" in window.statusBar().currentMessage()
    assert not (tmp_path / "bad.py").exists()
    window.workspaces.get("expression").set_source("x = param(1.0)")
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    assert window.export_code(blocker / "inside" / "x.py")
    qtbot.waitUntil(lambda: "Could not export:" in window.statusBar().currentMessage(), timeout=WAIT)
