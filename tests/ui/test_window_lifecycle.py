"""Regression tests of the bugs found while building the workspace models (issue 8, section 8).

The window's birth and death: it builds its visible workspace when shown and only after its first paint
(also for a restored session), its threads stop when the application quits, and the process ends soon
after the window closes. The quit tests run the app in a subprocess: what they check happens at exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from explorer.ui import main_window as mw

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion
# A hang, not a speed: what these tests catch is a process that waits for its training process, a stuck
# thread or the interpreter's teardown for ever (the children run under a 60-120 s timeout). The
# requirement (1 s after the close, 0.8 s for the training process) is a bench figure:
# bench/startup_bench.py prints close->exit. A fully loaded machine took 8.7 s for what takes 1 s alone.
QUIT_BOUND_S = 30.0


def _settings(tmp_path, session: dict | None = None) -> QSettings:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    if session is not None:
        settings.setValue("session", json.dumps(session))
        settings.sync()
    return settings


def _run_child(code: str, tmp_path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "settings.ini")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_window_shown_on_its_own_builds_its_visible_workspace(qtbot, tmp_path):
    window = mw.MainWindow(settings=_settings(tmp_path))
    qtbot.addWidget(window)
    assert window.panels == {}  # nothing heavy before the window is up
    with qtbot.waitSignal(window.sig_panel_ready, timeout=WAIT) as ready:
        window.show()
    assert ready.args == ["expression"]
    assert "expression" in window.panels
    window.shutdown_panels()


def test_a_restored_network_session_paints_first_then_builds_and_restores_the_panel(qtbot, tmp_path):
    from explorer.core.mlp.network import preset_spec

    state = {"preset": "toy-2d", "spec": preset_spec("toy-2d").to_dict(), "skip_zero_grad": True}
    session = {"format": "autograd-explorer-session", "version": 2, "current": "network",
               "workspaces": {"network": state}}
    window = mw.MainWindow(settings=_settings(tmp_path, session))
    qtbot.addWidget(window)
    order = []
    window.sig_first_painted.connect(lambda: order.append("painted"))
    window.sig_panel_ready.connect(lambda key: order.append(key))
    assert window.current_key() == "network" and window.panels == {}
    window.show()
    qtbot.waitUntil(lambda: "network" in window.panels, timeout=WAIT)
    assert order == ["painted", "network"]
    panel = window.panels["network"]
    assert panel.workspace.state.preset == "toy-2d"  # the saved state reached the panel built later
    assert panel.workspace.state.skip_zero_grad is True and panel.iteration.skip.isChecked()
    window.shutdown_panels()


def test_add_layer_builds_its_row_without_an_error(qtbot):
    from explorer.ui.network.form import SpecForm

    form = SpecForm()
    qtbot.addWidget(form)
    rows = form.layers.rowCount()
    # before the fix every click raised AttributeError in a slot (pytest-qt fails the test on it)
    qtbot.mouseClick(form.add_layer, Qt.LeftButton)
    qtbot.mouseClick(form.add_layer, Qt.LeftButton)
    assert form.layers.rowCount() == rows + 2
    assert len(form.spec().hidden) == rows + 2
    assert form.preset_name() == "custom"


NETWORK_TRAINING_THEN_QUIT = """
    import sys
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from explorer.ui.main_window import MainWindow

    app = QApplication([])
    window = MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat))
    window.show_workspace("network")

    def train():
        panel = window.panels["network"]
        panel.ensure_core()  # built before torch: its tabs (the training among them) once torch is in
        train = panel.train
        train.steps.setValue(train.steps.maximum())
        train.train_or_pause()  # a run far from its end: its thread is running when the app quits
        print("training", train.is_training(), flush=True)
        # exit() ends the event loop without closing the window (quit() closes it first in Qt 6): only
        # aboutToQuit is left to stop the thread before Python exits
        QTimer.singleShot(0, lambda: app.exit(0))

    def ready(key):
        window.panels[key]._use_toy_preset()
        QTimer.singleShot(1000, train)  # after the form's debounced spec change (it stops training)

    window.sig_panel_ready.connect(ready)
    window.show()
    app.exec()
    print("left the event loop", flush=True)
"""


@pytest.mark.slow
def test_quitting_with_the_network_workspace_open_exits_cleanly(tmp_path):
    out = _run_child(NETWORK_TRAINING_THEN_QUIT, tmp_path)
    assert "training True" in out.stdout, out.stderr[-2000:]
    assert "QThread: Destroyed" not in out.stderr
    assert out.returncode == 0, out.stderr[-2000:]


PRETRAIN_TRAINING_THEN_CLOSE = """
    import sys, time
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from explorer.ui.main_window import MainWindow

    app = QApplication([])
    window = MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat))
    window.show_workspace("pretrain")

    def close():
        print(f"closing {time.time():.6f}", flush=True)
        window.close()

    def ready(key):
        window.panels[key].ensure_core()  # a fresh process: the training tab comes once torch is in
        print("started", window.panels[key].train(), flush=True)
        QTimer.singleShot(1000, close)  # the training process is still starting or training then

    window.sig_panel_ready.connect(ready)
    window.show()
    app.exec()
"""


@pytest.mark.slow
def test_the_process_ends_soon_after_the_window_closes_during_a_pretraining_run(tmp_path):
    out = _run_child(PRETRAIN_TRAINING_THEN_CLOSE, tmp_path)
    ended = time.time()
    assert "started True" in out.stdout, out.stderr[-2000:]
    closing = float(next(line for line in out.stdout.splitlines() if line.startswith("closing")).split()[1])
    assert ended - closing < QUIT_BOUND_S, f"the process lived {ended - closing:.1f} s after the close"
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_the_launcher_paints_a_restored_network_session_first_and_exits_soon_after_close(tmp_path):
    config = tmp_path / "config" / "AutogradExplorer"
    config.mkdir(parents=True)
    settings = QSettings(str(config / "autograd-explorer.ini"), QSettings.IniFormat)
    settings.setValue("session", json.dumps({"format": "autograd-explorer-session", "version": 2,
                                             "current": "network", "workspaces": {}}))
    settings.sync()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=str(tmp_path / "config"), EXPLORER_STARTUP_PROBE="close")
    out = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    ended = time.time()
    times = dict((line.split()[0], float(line.split()[1])) for line in out.stdout.splitlines()
                 if line.split()[:1] in (["shown"], ["ready"], ["closing"]))
    assert set(times) == {"shown", "ready", "closing"}, out.stderr[-2000:]
    assert times["shown"] < times["ready"]  # painted before the Network panel (torch) was built
    assert ended - times["closing"] < QUIT_BOUND_S
    assert out.returncode == 0, out.stderr[-2000:]


STUCK_JOB_THEN_CLOSE = """
    import os, sys, threading, time
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from explorer.ui.common.worker import Worker
    from explorer.ui.main_window import MainWindow

    app = QApplication([])
    window = MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat))
    never = threading.Event()
    worker = Worker(window)
    started = threading.Event()

    def stuck(job):  # ignores cancellation, as a read blocked in the kernel would
        started.set()
        never.wait()

    def close():
        print(f"stuck {started.is_set()}", flush=True)
        print(f"closing {time.time():.6f}", flush=True)
        window.close()
        app.quit()

    worker.submit(stuck)
    window.show()
    QTimer.singleShot(300, close)
    status = app.exec()
    print(f"left {time.time():.6f}", flush=True)
    # ends as the app does (explorer.ui.app.run_event_loop): no interpreter teardown, which aborts the
    # process ("exception not rethrown") when a daemon thread is still importing torch for the window
    sys.stderr.flush()
    os._exit(status)
"""


def test_closing_the_window_with_a_stuck_job_ends_promptly_and_quietly(tmp_path):
    """Issue 14: a job that never returns does not hold the window (no 10 s wait, no QThread abort)."""
    out = _run_child(STUCK_JOB_THEN_CLOSE, tmp_path, timeout=120)
    assert "stuck True" in out.stdout, out.stderr[-2000:]
    times = {line.split()[0]: float(line.split()[1]) for line in out.stdout.splitlines()
             if line.split()[:1] in (["closing"], ["left"])}
    # The close waits for the stuck job at most the workers' one shared deadline (1 s), then the event
    # loop ends (the rest of the bound is the close's own work on a loaded machine); the stuck daemon
    # thread does not keep the process (the run above has a 60 s timeout). It took 10 s, then aborted.
    took = times["left"] - times["closing"]
    assert took < QUIT_BOUND_S, f"the close took {took:.1f} s"
    assert "QThread" not in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.returncode == 0, out.stderr[-2000:]


LEFT_BEHIND_THEN_EXIT = """
    import sys, threading
    from PySide6.QtWidgets import QApplication
    from explorer import cli
    from explorer.ui.common import worker

    app = QApplication([])
    job_worker = worker.Worker()
    started = threading.Event()

    def stuck(job):
        started.set()
        threading.Event().wait()  # never returns, whatever the cancel says

    def fake_main():
        job_worker.submit(stuck)
        started.wait(10)
        worker.shutdown_all(200)
        print("left behind", len(worker.left_behind()), flush=True)
        return 3

    cli.main = fake_main
    cli.run_as_program()
"""


def test_a_job_left_behind_at_exit_ends_the_process_with_the_apps_status(tmp_path):
    """The app's exit status survives a job stuck past the deadline (no teardown abort, no hang)."""
    out = _run_child(LEFT_BEHIND_THEN_EXIT, tmp_path, timeout=120)
    assert "left behind 1" in out.stdout, out.stderr[-2000:]
    assert out.returncode == 3, out.stderr[-2000:]
