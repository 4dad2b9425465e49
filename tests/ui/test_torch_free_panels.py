"""A workspace's panel is built, and takes input, before torch is imported (issue 20 item 10): its modules
and its workspace model import torch where they compute, so importing them and building the panel import
no torch on the GUI thread; only the graph waits ("Loading PyTorch…") for the first result, which the
panel's Worker computes (importing torch there). Each probe runs in a fresh process: this one has torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A spy on the import system notes every import of torch made on the GUI thread (the probes below hold
# the panel's Worker: its computation waits for a go, so that "the graph waits" is seen deterministically).
SPY = """
import json, sys, threading
gui = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and threading.current_thread() is threading.main_thread():
            gui.append(name)
        return None
sys.meta_path.insert(0, Spy())
"""

PROBE = SPY + """
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
app = QApplication([])
import importlib
module = importlib.import_module(sys.argv[1])
out = {"import": "torch" in sys.modules, "networkx": "networkx" in sys.modules}
go = threading.Event()
from explorer.core.workspaces import expression as ew
compute = ew.compute
def held(*args, **kwargs):
    go.wait(120)
    return compute(*args, **kwargs)
ew.compute = held
panel = getattr(module, sys.argv[2])()
panel.resize(1200, 700)
panel.show()
app.processEvents()
out["gui_thread_imported_torch"] = bool(gui)
out["waiting"] = panel.graph_wait.waiting()
out["note"] = panel.graph_wait.note.isVisible()
panel.editor.setFocus()
panel.editor.moveCursor(QTextCursor.End)
QTest.keyClick(panel.editor, Qt.Key_Return)
QTest.keyClicks(panel.editor, "q = 2 * 3")
out["typed"] = panel.source().endswith("q = 2 * 3")
go.set()
for _ in range(1200):  # the edit's debounce, then torch's import on the Worker (seconds under load)
    QTest.qWait(100)
    if panel.result is not None and panel.result.source == panel.source():
        break
out["computed_the_typed_program"] = panel.result is not None and panel.result.source == panel.source()
out["graph_shown"] = panel.graph.isVisible()
out["gui_thread_imported_torch_before_the_result"] = bool(gui)
panel.shutdown()
print("RESULT " + json.dumps(out))
"""


def _probe(module: str, cls: str, tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE, module, cls], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_the_expression_panel_takes_input_before_torch_and_computes_it_after(tmp_path):
    out = _probe("explorer.ui.expression.panel", "ExpressionPanel", tmp_path)
    assert out["import"] is False, "importing the expression panel imported torch"
    assert out["networkx"] is False, "importing the expression panel imported networkx (~0.3 s)"
    assert out["gui_thread_imported_torch"] is False, "building the expression panel imported torch"
    assert out["waiting"] and out["note"], "the graph's place does not say that PyTorch is loading"
    assert out["typed"], "the editor did not take typing while torch loaded"
    assert out["computed_the_typed_program"], "the program typed meanwhile was not computed"
    assert out["graph_shown"], "the graph did not replace the note"


def test_the_expression_launcher_imports_no_torch():
    """`python -m explorer.ui.expression_panel` re-exports the panel probed above: its import stays light."""
    code = ("import sys, explorer.ui.expression_panel\n"
            "print('torch' in sys.modules, 'networkx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


def test_the_probe_sees_torch_imported_on_the_gui_thread(tmp_path):
    """The spy above can fail: a panel module that imports torch at import is reported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import sys, threading\nseen = []\nclass Spy:\n"
            "    def find_spec(self, name, path=None, t=None):\n"
            "        if name == 'torch' and threading.current_thread() is threading.main_thread():\n"
            "            seen.append(name)\n        return None\nsys.meta_path.insert(0, Spy())\n"
            "import explorer.core.autograd.trace\nprint(bool(seen), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]


WAIT = 120000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


def hold_core_loads(monkeypatch, module, name):
    """As in a fresh process (this one has torch): the window's loader's import of the core modules, and
    `module.name` (the panel's own import, or its first computation), take until the returned `go` is
    set; `loading` is set once the loader's import began."""
    import threading

    from explorer.ui import main_window as mw
    from explorer.ui.common import loading as wait_note

    go, loading = threading.Event(), threading.Event()
    import_core, held = mw.import_core, getattr(module, name)

    def held_import(key):
        loading.set()
        go.wait(WAIT / 1000)
        return import_core(key)

    def held_call(*args, **kwargs):
        go.wait(WAIT / 1000)
        return held(*args, **kwargs)

    monkeypatch.setattr(mw, "import_core", held_import)
    monkeypatch.setattr(module, name, held_call)
    monkeypatch.setattr(wait_note, "torch_ready", lambda: False)
    return go, loading


def test_the_window_builds_the_restored_expression_panel_while_its_core_loads(qtbot, tmp_path, monkeypatch):
    """A returning user's Expression panel exists with their program and takes typing while the core
    modules (torch) still load; it computes what was typed once they are in."""

    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtGui import QTextCursor

    from explorer.core.workspaces import expression as ew
    from explorer.ui import main_window as mw

    saved = "w = param(1.5)\nL = w * w\n"
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    settings.setValue("session", json.dumps({
        "format": "autograd-explorer-session", "version": 2, "current": "expression",
        "workspaces": {"expression": {"source": saved}}}))
    go, loading = hold_core_loads(monkeypatch, ew, "compute")  # its first computation imports torch
    window = mw.MainWindow(settings=settings)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT) as ready:
            window.show()
        assert ready.args == ["expression"]
        panel = window.panel("expression", create=False)
        assert panel is not None and panel.source() == saved, "the saved program was not restored"
        assert loading.wait(WAIT / 1000) and not go.is_set()  # the core is still loading
        assert panel.graph_wait.waiting(), "the graph's place does not say that PyTorch is loading"
        panel.editor.setFocus()
        panel.editor.moveCursor(QTextCursor.End)
        qtbot.keyClicks(panel.editor, "M = L + 1")
        qtbot.keyClick(panel.editor, Qt.Key_Return)
        assert panel.source() == saved + "M = L + 1\n"
        go.set()
        qtbot.waitUntil(lambda: panel.result is not None and panel.result.source == panel.source(),
                        timeout=WAIT)
        assert panel.result.ok and not panel.graph_wait.waiting()
        assert "M" in {n.name for n in panel.result.trace.nodes.values()}
    finally:
        go.set()
        window.persist = False
        window.close()


def test_a_close_while_the_core_loads_saves_the_edits_and_keeps_the_rest(qtbot, tmp_path, monkeypatch):
    """Closing before the core is in saves the restored workspace's live state and keeps the saved
    session's other parts as they were, without validating them (that imports every model, and torch)."""
    import threading

    from PySide6.QtCore import QSettings

    from explorer.core.workspaces import session as sessions
    from explorer.ui import main_window as mw

    network = {"preset": "toy-2d"}  # kept as saved, whatever it holds
    path = str(tmp_path / "settings.ini")
    settings = QSettings(path, QSettings.IniFormat)
    settings.setValue("session", json.dumps({
        "format": "autograd-explorer-session", "version": 2, "current": "expression",
        "workspaces": {"expression": {"source": "w = param(1.5)\nL = w * w\n"}, "network": network}}))
    go = threading.Event()
    import_core = mw.import_core
    monkeypatch.setattr(mw, "import_core", lambda key: (go.wait(WAIT / 1000), import_core(key))[1])
    validated = []
    # only the GUI thread's calls count: the held import, once released, completes the schema on its Worker
    gui = threading.main_thread()
    monkeypatch.setattr(sessions, "complete_schema",
                        lambda: validated.append(True) if threading.current_thread() is gui else None)
    window = mw.MainWindow(settings=settings)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT):
            window.show()
        panel = window.panel("expression", create=False)
        panel.editor.setPlainText("w = param(0.5)\nL = w * 3\n")
        panel.run_program()  # the editor's text into the model (a debounce does it after typing)
        window.import_wait_s = 0  # the held import is not waited for
        window.close()
    finally:
        go.set()
    saved = json.loads(QSettings(path, QSettings.IniFormat).value("session"))
    assert saved["workspaces"]["expression"]["source"] == "w = param(0.5)\nL = w * 3\n"
    assert saved["workspaces"]["network"] == network and saved["current"] == "expression"
    assert validated == [], "the close validated the whole saved session on the GUI thread (imports torch)"


def held_panel_probe(workspace: str, cls: str) -> str:
    """The start of a probe script: the `workspace` panel (class `cls`) built and shown in a fresh process
    while its Worker's import of the core (torch) waits for `go`; `out` says what was imported before it."""
    return SPY + f"""
import os
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
app = QApplication([])
from explorer.ui.{workspace} import panel as panel_module
out = {{"import": "torch" in sys.modules, "pyqtgraph": "pyqtgraph" in sys.modules}}
go = threading.Event()
load_core = panel_module.load_core
panel_module.load_core = lambda: (go.wait(120), load_core())[1]
panel = panel_module.{cls}()
panel.resize(1200, 700)
panel.show()
app.processEvents()
out["gui_thread_imported_torch"] = bool(gui)
"""


# The network panel, alone: its form takes edits while its Worker's import of the core (torch) is held;
# released, its two tabs are built and record the network as edited meanwhile.
NETWORK_PROBE = held_panel_probe("network", "NetworkPanel") + """
out["waiting"] = panel.graph_wait.waiting()
out["note"] = panel.graph_wait.note.isVisible()
form = panel.form
form.preset.setCurrentIndex(form.preset.findData("toy-2d"))
form.lr.setValue(0.125)  # the user's edit: the form's debounce hands it to the model
for _ in range(600):
    QTest.qWait(50)
    if panel.workspace.spec().lr == 0.125:
        break
out["edited"] = panel.workspace.spec().lr == 0.125 and panel.workspace.state.preset == "custom"
out["still_waiting"] = panel.graph_wait.waiting() and panel.iteration is None
out["gui_thread_imported_torch_while_editing"] = bool(gui)
go.set()
for _ in range(1200):  # torch's import on the Worker, then the tabs' slices and the first recording
    QTest.qWait(100)
    if panel.iteration is not None and panel.workspace.iteration is not None:
        break
out["recorded"] = panel.workspace.iteration is not None
out["recorded_the_edit"] = out["recorded"] and panel.iteration.session.spec.lr == 0.125
out["tabs_shown"] = not panel.graph_wait.waiting() and panel.tabs.isVisible() and panel.tabs.count() == 2
out["gui_thread_imported_torch_before_the_result"] = bool(gui)
panel.shutdown()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_the_network_panel_takes_edits_before_torch_and_records_them_after(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", NETWORK_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["import"] is False, "importing the network panel imported torch"
    assert out["pyqtgraph"] is False, "importing the network panel imported pyqtgraph (its plots wait)"
    assert out["gui_thread_imported_torch"] is False, "building the network panel imported torch"
    assert out["waiting"] and out["note"], "the tabs' place does not say that PyTorch is loading"
    assert out["edited"], "the form's edit did not reach the workspace while torch loaded"
    assert out["still_waiting"] and out["gui_thread_imported_torch_while_editing"] is False
    assert out["recorded_the_edit"], "the network edited meanwhile was not the one recorded"
    assert out["tabs_shown"], "the tabs did not replace the note"
    assert out["gui_thread_imported_torch_before_the_result"] is False


def test_the_window_builds_the_restored_network_panel_while_its_core_loads(qtbot, tmp_path, monkeypatch):
    """A returning user last on Network gets its panel with their settings, editable, while the core
    modules (torch) still load; once they are in, the rest of the session is applied and the edit made
    meanwhile is what the iteration records."""

    from PySide6.QtCore import QSettings

    from explorer.core.workspaces.network import DatasetModel
    from explorer.ui import main_window as mw
    from explorer.ui.network import panel as network_panel

    program = "w = param(0.25)\nL = w * 4\n"
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    settings.setValue("session", json.dumps({
        "format": "autograd-explorer-session", "version": 2, "current": "network",
        "workspaces": {"expression": {"source": program},
                       "network": {"preset": "toy-2d", "spec": {"seed": 0}, "iterations": 2,
                                   "dataset": DatasetModel(name="xor", noise=0.2).model_dump()}}}))
    go, loading = hold_core_loads(monkeypatch, network_panel, "load_core")  # and the panel's own import
    window = mw.MainWindow(settings=settings)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT) as ready:
            window.show()
        assert ready.args == ["network"]
        panel = window.panel("network", create=False)
        assert panel is not None and panel.iteration is None
        assert loading.wait(WAIT / 1000) and not go.is_set()  # the core is still loading
        assert panel.graph_wait.waiting(), "the tabs' place does not say that PyTorch is loading"
        assert panel.form.preset_name() == "toy-2d" and panel.form.spec().hidden == [16, 16]  # as saved
        assert panel.workspace.state.dataset.name == "xor"
        assert window._saved_session is not None  # the rest of the session waits for the core
        panel.form.lr.setValue(0.125)
        qtbot.waitUntil(lambda: panel.workspace.spec().lr == 0.125, timeout=WAIT)
        go.set()
        qtbot.waitUntil(lambda: panel.iteration is not None and panel.workspace.iteration is not None,
                        timeout=WAIT)
        panel.iteration.wait_recorded()
        assert panel.iteration.session.spec.lr == 0.125, "the edit made meanwhile was lost"
        assert panel.workspace.spec().lr == 0.125 and panel.form.lr.value() == 0.125
        assert panel.train.dataset_settings()["name"] == "xor", "the saved dataset was not shown"
        assert not panel.graph_wait.waiting()
        qtbot.waitUntil(lambda: window._saved_session is None, timeout=WAIT)  # applied, but the network
        assert window.workspaces.expression.state.source == program, "the rest of the session was lost"
    finally:
        go.set()
        window.persist = False
        window.close()


# The pretraining panel, alone: its form (and its parameter count) takes edits while its Worker's import
# of the core (torch) is held, and Train pressed meanwhile waits visibly; released, the training tab and
# the inspection tabs are built and the run starts with the form as edited meanwhile.
PRETRAIN_PROBE = held_panel_probe("pretrain", "PretrainPanel") + """
out["waiting"] = panel.graph_wait.waiting() and panel.graph_wait.note.isVisible()
out["count"] = panel.param_count.text()
started = []
panel._process.start = lambda *args, **kwargs: started.append(args)  # records the run instead of training
emb = panel.form.edit("emb_dim")
emb.setFocus()
emb.selectAll()
QTest.keyClicks(emb, "64")
app.processEvents()
out["edited"] = panel.workspace.state.config["emb_dim"] == 64 and panel.workspace.state.preset == "custom"
out["count_followed"] = panel.param_count.text() != out["count"]
train = next(a for a in panel.menu_actions() if a.text().startswith("Train"))
train.trigger()
app.processEvents()
out["pending_shown"] = "Train was pressed" in panel.graph_wait.note.text()
out["nothing_started_yet"] = not started and not panel.core_ready()
out["gui_thread_imported_torch_while_editing"] = bool(gui)
go.set()
for _ in range(1200):  # torch's import on the Worker, then the tabs' slices, then the pending Train
    QTest.qWait(100)
    if panel.core_ready() and started:
        break
out["tabs_shown"] = (panel.core_ready() and not panel.graph_wait.waiting() and panel.tabs.isVisible()
                     and panel.tabs.count() == 7 and panel.train_button.isVisible())
out["started_the_edit"] = bool(started) and started[0][0]["emb_dim"] == 64
out["gui_thread_imported_torch_before_the_result"] = bool(gui)
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)  # the estimates' traced forward may still run on its thread: no teardown to race it
"""


@pytest.mark.slow
def test_the_pretraining_panel_takes_edits_and_train_before_torch_and_starts_after(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", AUTOGRAD_EXPLORER_DATA=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", PRETRAIN_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["import"] is False, "importing the pretraining panel imported torch"
    assert out["pyqtgraph"] is False, "importing the pretraining panel imported pyqtgraph (its plots wait)"
    assert out["gui_thread_imported_torch"] is False, "building the pretraining panel imported torch"
    assert out["waiting"], "the tabs' place does not say that PyTorch is loading"
    assert "parameters" in out["count"], "the parameter count waits for torch"
    assert out["edited"] and out["count_followed"], "the form's edit did not reach the model and the count"
    assert out["pending_shown"] and out["nothing_started_yet"], "Train before torch did not wait visibly"
    assert out["gui_thread_imported_torch_while_editing"] is False
    assert out["tabs_shown"], "the training and inspection tabs did not replace the note"
    assert out["started_the_edit"], "Train pressed meanwhile did not start the run as edited"
    assert out["gui_thread_imported_torch_before_the_result"] is False


def test_the_window_builds_the_restored_pretraining_panel_while_its_core_loads(qtbot, tmp_path, monkeypatch):
    """A returning user last on Pretraining gets the form as they left it, editable, while the core
    modules (torch) still load; once they are in, the training tab is built, the edit made meanwhile is
    the workspace's, and the rest of the session is applied."""

    from PySide6.QtCore import QSettings

    from explorer.ui import main_window as mw
    from explorer.ui.pretrain import panel as pretrain_panel

    program = "w = param(0.25)\nL = w * 4\n"
    config = {"vocab_size": 128, "context_length": 64, "emb_dim": 192, "n_heads": 6, "n_layers": 6,
              "drop_rate": 0.0}
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    settings.setValue("session", json.dumps({
        "format": "autograd-explorer-session", "version": 2, "current": "pretrain",
        "workspaces": {"expression": {"source": program},
                       "pretrain": {"state": {"preset": "custom", "config": config}}}}))
    go, loading = hold_core_loads(monkeypatch, pretrain_panel, "load_core")  # and the panel's own import
    window = mw.MainWindow(settings=settings)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT) as ready:
            window.show()
        assert ready.args == ["pretrain"]
        panel = window.panel("pretrain", create=False)
        assert panel is not None and not panel.core_ready()
        assert loading.wait(WAIT / 1000) and not go.is_set()  # the core is still loading
        assert panel.graph_wait.waiting(), "the tabs' place does not say that PyTorch is loading"
        assert panel.form.preset.currentText() == "custom" and panel.form.edit("emb_dim").text() == "192"
        assert panel.form.edit("n_layers").text() == "6"
        assert "parameters" in panel.param_count.text()
        assert window._saved_session is not None  # the rest of the session waits for the core
        layers = panel.form.edit("n_layers")
        layers.selectAll()
        qtbot.keyClicks(layers, "3")
        qtbot.waitUntil(lambda: panel.workspace.state.config["n_layers"] == 3, timeout=WAIT)
        go.set()
        qtbot.waitUntil(panel.core_ready, timeout=WAIT)
        assert not panel.graph_wait.waiting() and panel.train_button.isEnabled()
        assert panel.workspace.state.config["n_layers"] == 3 and panel.form.edit("n_layers").text() == "3"
        assert panel.workspace.state.config["emb_dim"] == 192, "the restored form was lost"
        qtbot.waitUntil(lambda: window._saved_session is None, timeout=WAIT)  # applied, but the pretraining
        assert window.workspaces.expression.state.source == program, "the rest of the session was lost"
        assert panel.workspace.state.config["n_layers"] == 3, "applying the session undid the edit"
    finally:
        go.set()
        window.persist = False
        window.close()


def test_a_slot_shutting_the_network_panel_down_when_its_tabs_are_built_finds_them_whole(qtbot, monkeypatch):
    """The panel announces its late-built tabs after the construction's last piece: a slot that quits there
    (shutting the panel down, which finishes the construction) must not re-enter it ("generator already
    executing" when the signal came from inside a piece)."""
    from explorer.ui.common import loading as wait_note
    from explorer.ui.network.panel import NetworkPanel

    monkeypatch.setattr(wait_note, "torch_ready", lambda: False)  # built as before torch: tabs come later
    panel = NetworkPanel()
    qtbot.addWidget(panel)
    seen = []

    def quit_now():
        panel.shutdown()
        seen.append(panel.core.is_built())

    panel.sig_tabs_built.connect(quit_now)
    with qtbot.waitSignal(panel.sig_tabs_built, timeout=60_000):
        pass
    assert seen == [True] and panel.iteration is not None and panel.tabs.count() == 2
