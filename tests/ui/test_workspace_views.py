"""Views follow their models: a field set from code (a lesson, a test, a session) shows in the widgets, and a
whole session opened in a fresh window brings every field back, every run once, trained models included."""

import json
import os

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QWidget

from explorer.ui import main_window as mw
from tests.trained import trained_run

WAIT = 60000
SEED = "x = 1.1\ny = 1.0\nw = param(2.2)\nb = param(0.0)\nz = w * x + b\na = sigmoid(z)\nL = bce(a, y)\n"


def _window(qtbot):
    window = mw.MainWindow(persist=False)
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    return window


def test_fields_set_on_the_models_show_in_the_widgets(qtbot):
    window = _window(qtbot)
    expression = window.panel("expression")
    ws = window.workspaces.expression
    with qtbot.waitSignal(expression.sig_computed, timeout=WAIT):
        ws.set_source(SEED)
    assert expression.editor.toPlainText() == SEED
    ws.set_step(3)
    assert expression.player.step == 3 and expression.status.text().startswith("forward 3/")
    ws.state.lr = 0.25
    assert expression.learning.lr.value() == 0.25
    network = window.panel("network")
    window.workspaces.network.set_preset("mlp-50-30-20-3")
    assert network.form.findChild(QComboBox, "networkPreset").currentData() == "mlp-50-30-20-3"
    assert "2,213" in network.form.findChild(QLabel, "networkParamCount").text()
    pretrain = window.panel("pretrain")
    window.workspaces.pretrain.set_preset("gpt2-124m")
    assert pretrain.form.preset.currentText() == "gpt2-124m"
    assert "163,009,536" in pretrain.findChild(QLabel, "paramCount").text()
    window.close()


@pytest.mark.slow
def test_session_round_trip_in_a_fresh_window(qtbot, tmp_path):
    first = _window(qtbot)
    expression = first.panel("expression")
    with qtbot.waitSignal(expression.sig_computed, timeout=WAIT):
        first.workspaces.expression.set_source(SEED.replace("2.2", "1.7"))
    expression.player.set_step(6)
    network = first.panel("network")
    spec = first.workspaces.network.spec()
    spec.hidden, spec.activations = [7, 3], ["tanh", "relu"]
    first.workspaces.network.set_spec(spec)
    network.iteration.wait_recorded()
    network.iteration.next_iteration()
    network.iteration.wait_recorded()
    network.iteration.player.set_step(9)
    form = first.panel("pretrain").form
    qtbot.waitUntil(lambda: not form.vocab_pending(), timeout=WAIT)  # the corpus fixes vocab_size
    trained_run(first.workspaces.pretrain, seed=1)
    trained_run(first.workspaces.pretrain, seed=2)
    first.show_workspace("network")
    path = tmp_path / "session.json"
    first.save_session(path)
    saved = json.loads(path.read_text())
    assert saved["workspaces"]["network"]["iterations"] == 2 and saved["workspaces"]["network"]["step"] == 9
    assert saved["workspaces"]["network"]["preset"] == "custom"
    first.close()

    second = _window(qtbot)
    assert second.open_session(path)
    assert second.current_key() == "network"
    for key in ("expression", "network", "pretrain"):
        second.panel(key)
    second.panels["network"].iteration.wait_recorded()
    source = saved["workspaces"]["expression"]["source"]
    result = lambda: second.panels["expression"].result  # noqa: E731
    qtbot.waitUntil(lambda: result() is not None and result().source == source, timeout=WAIT)
    qtbot.waitUntil(lambda: not second.panels["pretrain"].form.vocab_pending(), timeout=WAIT)
    assert second.panels["network"].iteration.player.step == 9
    assert second.panels["expression"].player.step == 6
    for key in ("expression", "network", "pretrain"):
        assert second.workspaces.get(key).to_json() == saved["workspaces"][key], key
    pretrain = second.panels["pretrain"]
    assert pretrain.history.list.count() == 2  # every run exactly once
    legend = pretrain.plots.loss.legend
    assert len(legend.items) == 2
    tab = pretrain.findChild(QWidget, "pretrainAttention")
    tab.prompt.setText("the")
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT):
        tab.show_attention()
    assert tab.result is not None and tab.result.maps.shape[:2] == (1, 2)
    second.close()


def test_a_bad_session_changes_nothing_in_the_window(qtbot, tmp_path):
    window = _window(qtbot)
    expression = window.panel("expression")
    with qtbot.waitSignal(expression.sig_computed, timeout=WAIT):
        window.workspaces.expression.set_source(SEED)
    before = json.dumps(window.session(), sort_keys=True)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "autograd-explorer-session", "version": 2,
                               "workspaces": {"expression": {"source": "u = 1"}, "network": {"spec": []}}}))
    assert not window.open_session(bad)
    message = window.statusBar().currentMessage()
    assert "workspaces.network.spec" in message
    assert json.dumps(window.session(), sort_keys=True) == before
    assert expression.editor.toPlainText() == SEED
    window.close()


def test_file_open_reads_in_the_background_and_applies_whole_or_not_at_all(qtbot, tmp_path):
    """Issue 14: File > Open reads and validates off the GUI thread; a refused file changes nothing."""
    window = _window(qtbot)
    window.panel("expression")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "autograd-explorer-session", "version": 2, "current": "network",
                                "workspaces": {"expression": {"source": "u = param(3.0)\nL = u * u"}}}))
    with qtbot.waitSignal(window.sig_session_opened, timeout=WAIT) as opened:
        window.open_session_in_background(good)
        assert "Opening the session good.json" in window.statusBar().currentMessage()
    assert opened.args == [True]
    assert window.workspaces.expression.state.source.startswith("u = param(3.0)")
    assert window.current_key() == "network"
    window.panel("network")  # built now, so the session below already holds its model
    before = json.dumps(window.session(), sort_keys=True)
    (tmp_path / "fifo").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "fifo")  # a FIFO would block a reader forever: refused from stat, never opened
    for bad in (tmp_path / "fifo", tmp_path / "missing.json"):
        with qtbot.waitSignal(window.sig_session_opened, timeout=WAIT) as opened:
            window.open_session_in_background(bad)
        assert opened.args == [False]
        assert f"Could not open the session {bad.name}" in window.statusBar().currentMessage()
        assert json.dumps(window.session(), sort_keys=True) == before
    window.close()


@pytest.mark.slow
def test_a_restored_run_samples_and_continues_into_a_new_run(qtbot):
    window = _window(qtbot)
    pretrain = window.panel("pretrain")
    ws = window.workspaces.pretrain
    trained_run(ws, seed=1)
    source = ws.runs[1]
    before = source.checkpoint and open(source.checkpoint, "rb").read()
    pretrain.history.select_run(1)
    pretrain.sample_prompt.setText("the")
    with qtbot.waitSignal(pretrain._sampler.sig_done, timeout=WAIT):
        pretrain.sample()
    assert "asked to continue" in pretrain.samples.toPlainText()
    pretrain.form.set_values({"steps": 2, "eval_every": 1, "sample_every": 0})
    with qtbot.waitSignal(pretrain.sig_run_finished, timeout=WAIT * 2) as finished:
        assert pretrain.continue_run(1)
    new_id, status = finished.args
    assert status == "done" and new_id == 2
    resumed = ws.runs[2]
    assert "continues run 1" in resumed.name
    assert resumed.steps["step"].view()[0] == 4  # it went on from step 3
    assert open(source.checkpoint, "rb").read() == before  # the run it resumed from is untouched
    window.close()
