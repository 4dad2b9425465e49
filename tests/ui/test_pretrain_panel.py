"""pytest-qt tests of the pretraining workspace (training runs in a real spawned process)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QWidget  # noqa: E402

from explorer.core.gpt.checkpoint import read_checkpoint  # noqa: E402
from explorer.core.gpt.child_process import BatchSender  # noqa: E402
from explorer.core.gpt.data import char_vocab_size  # noqa: E402
from explorer.core.gpt.model import PRESETS, GPTConfig, count_parameters  # noqa: E402
from explorer.core.gpt.runs import PretrainRun  # noqa: E402
from explorer.ui.pretrain.panel import PretrainPanel  # noqa: E402

# A model small enough that a step takes milliseconds: the tests stop it long before `steps`.
FAST = {"context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
        "batch_size": 4, "steps": 100000, "warmup_steps": 5, "eval_every": 5, "sample_every": 10,
        "lr": 0.001, "sample_tokens": 30, "eval_batches": 2}
WAIT_MS = 60000


@pytest.fixture
def panel(qtbot, tmp_path):
    widget = PretrainPanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 820)
    widget.show()
    yield widget
    widget.shutdown()


def _load(panel, data):
    """Open saved pretraining data in the panel through its workspace (validated, then applied)."""
    panel.workspace.load(panel.workspace.validate(data))


def _text(panel, name):
    return panel.findChild(QLabel, name).text()


def _steps(run):
    return len(run.steps["step"])


def test_object_names_exist(panel):
    for name in ("pretrainPreset", "pretrainTrainButton", "pretrainStopButton", "pretrainLossPlot",
                 "samplesView", "paramCount"):
        assert panel.findChild(object, name) is not None, name


def test_gpt2_param_count_untied_and_tied(panel, qtbot):
    panel.form.apply_preset("gpt2-124m")
    assert "163,009,536" in _text(panel, "paramCount")
    panel.form.tie_weights.setChecked(True)
    assert "124,412,160" in _text(panel, "paramCount")
    # It can be inspected but not trained on this (CPU) machine: a warning and no Train.
    assert panel.fit_warning.isVisible()
    assert "will not train" in panel.fit_warning.text()
    assert not panel.findChild(QPushButton, "pretrainTrainButton").isEnabled()


def test_invalid_field_shows_its_message(panel, qtbot):
    emb = panel.form.edit("emb_dim")
    emb.clear()
    qtbot.keyClicks(emb, "12x")
    assert emb.property("invalid") is True
    assert "must be a whole number" in panel.form.error_label("emb_dim").text()
    assert panel.form.error_label("emb_dim").isVisible()
    assert not panel.train_button.isEnabled()
    assert "–" in _text(panel, "paramCount")
    emb.clear()
    qtbot.keyClicks(emb, "130")  # 130 is not divisible by 4 heads
    assert emb.property("invalid") is False
    assert "divisible" in panel.form.error_label("n_heads").text()
    qtbot.keyClick(emb, Qt.Key_Backspace)
    qtbot.keyClicks(emb, "2")  # 132 / 4 = 33: fine again
    assert panel.form.is_valid()
    assert panel.train_button.isEnabled()
    assert "parameters" in _text(panel, "paramCount")


def test_bad_corpus_file_is_marked(panel, tmp_path):
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x00\x01\x02" * 1000)
    panel.form.corpus.setText(str(binary))
    assert "binary" in panel.form.error_label("corpus").text()
    assert panel.train() is False
    assert panel.banner.isVisible() and "binary" in panel.banner.text()
    assert panel.runs() == []


@pytest.mark.slow
def test_train_stop_retrain_compare_and_close(panel, qtbot, small_corpus):
    # One test for the whole cycle: each spawned training process costs seconds of start-up.
    panel.form.set_values({**FAST, "corpus": small_corpus})
    qtbot.mouseClick(panel.findChild(QPushButton, "pretrainTrainButton"), Qt.LeftButton)
    assert panel.is_training()
    first = panel.runs()[0]
    qtbot.waitUntil(lambda: _steps(first) >= 3 and bool(first.samples), timeout=WAIT_MS)
    # The count beside the form is the one of the model that trains (vocab_size from the tokenizer).
    trained = count_parameters(GPTConfig(**first.config))["total"]
    assert f"<b>{trained:,}</b>" in _text(panel, "paramCount")
    assert panel.form.edit("vocab_size").text() == str(first.config["vocab_size"])
    assert first.evals["val_loss"].view().size >= 1
    assert "step" in panel.samples.toPlainText()
    chars = first.config["vocab_size"]
    assert f"guesses among {chars} tokens evenly" in panel.samples.toPlainText()  # where the curve starts
    with qtbot.waitSignal(panel.sig_run_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(panel.findChild(QPushButton, "pretrainStopButton"), Qt.LeftButton)
    assert blocker.args == [first.run_id, "stopped"]
    assert first.checkpoint and os.path.exists(first.checkpoint)
    assert read_checkpoint(first.checkpoint).step == first.last_step["step"]

    # Tweak one hyperparameter, train again: a second run, a second curve. Retrain is for a run that
    # is going (stop it and start anew), so with none going only Train can be pressed.
    lr = panel.form.edit("lr")
    lr.clear()
    qtbot.keyClicks(lr, "0.003")
    assert not panel.retrain_button.isEnabled() and panel.train_button.isEnabled()
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert panel.retrain_button.isEnabled() and not panel.train_button.isEnabled()
    assert len(panel.runs()) == 2
    second = panel.runs()[1]
    assert second.settings["lr"] == 0.003 and first.settings["lr"] == 0.001
    qtbot.waitUntil(lambda: _steps(second) >= 3, timeout=WAIT_MS)
    panel.plots.flush()
    assert panel.plots.curve_count() == 2
    assert len(panel.plots.loss.legend.items) == 2
    assert panel.history.list.count() == 2

    # Retrain while running: the running run stops (checkpoint kept), a third one starts.
    panel.form.set_values({"batch_size": 2})
    panel.retrain()
    qtbot.waitUntil(lambda: len(panel.runs()) == 3 and panel.is_training(), timeout=WAIT_MS)
    assert second.status == "stopped" and os.path.exists(second.checkpoint)
    third = panel.runs()[2]
    assert third.settings["batch_size"] == 2
    qtbot.waitUntil(lambda: _steps(third) >= 2, timeout=WAIT_MS)
    # Attention maps of the run as it trains: the process writes its current weights first.
    attention = panel.findChild(QWidget, "pretrainAttention")
    with qtbot.waitSignal(attention.sig_shown, timeout=WAIT_MS):
        attention.show_attention()
    assert attention.result.step >= 2 and attention.result.maps.shape[:2] == (1, 2)
    # Paused, it still answers; then closing the window stops it cleanly, checkpoint intact.
    qtbot.mouseClick(panel.pause_button, Qt.LeftButton)
    assert panel.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: not attention.is_busy(), timeout=WAIT_MS)
    with qtbot.waitSignal(attention.sig_shown, timeout=WAIT_MS):
        attention.show_attention()
    panel.shutdown()
    assert not panel.is_training()
    assert third.status == "stopped"
    assert read_checkpoint(third.checkpoint).step >= 2
    panel.plots.flush()
    assert panel.plots.curve_count() == 3


@pytest.fixture
def small_corpus(tmp_path):
    """A short corpus: the trainer's data preparation takes no time."""
    path = tmp_path / "corpus.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n" * 40,
                    encoding="utf-8")
    return str(path)


def test_corpus_the_core_rejects_gives_a_message(panel, qtbot, tmp_path):
    noisy = tmp_path / "noisy.txt"
    noisy.write_text("\x01\x02\x03 abc " * 400, encoding="utf-8")
    panel.form.set_values({**FAST, "corpus": str(noisy)})
    assert panel.form.is_valid()  # the quick check passes; the trainer's full check does not
    with qtbot.waitSignal(panel.sig_run_finished, timeout=WAIT_MS) as blocker:
        panel.train()
    assert blocker.args[1] == "error"
    assert panel.banner.isVisible() and "binary" in panel.banner.text()
    assert "Traceback" not in panel.banner.text()
    assert panel.train_button.isEnabled()  # the app stays usable


def _fake_run(run_id, lr):
    run = PretrainRun(run_id, f"Run {run_id}", {"n_layers": 1, "emb_dim": 32, "n_heads": 4, "vocab_size": 60},
                      {"lr": lr, "batch_size": 4},
              color="#2563eb")
    for step in range(1, 30):
        run.add({"type": "step", "step": step, "tokens": step * 64, "train_loss": 4.0 / step, "lr": lr,
                 "grad_norm": 1.0, "tokens_per_s": 100.0})
    run.add({"type": "eval", "step": 29, "tokens": 29 * 64, "val_loss": 0.5})
    run.add({"type": "done", "message": "finished"})
    return run


def test_history_hide_delete_and_state_roundtrip(panel, qtbot, tmp_path):
    runs = [_fake_run(1, 1e-3).to_state(), _fake_run(2, 3e-3).to_state()]
    state = {"state": {"preset": "tiny"}, "runs": runs}
    _load(panel, json.loads(json.dumps(state)))
    panel.plots.flush()
    assert panel.plots.curve_count() == 2
    item = panel.history.list.item(0)
    item.setCheckState(Qt.Unchecked)
    panel.plots.flush()
    assert panel.plots.curve_count() == 1
    panel.history.list.setCurrentRow(1)
    dialog = panel.history.compare()
    assert dialog.isVisible()
    dialog.close()
    qtbot.mouseClick(panel.history.delete_button, Qt.LeftButton)
    assert [run.run_id for run in panel.runs()] == [1]
    panel.plots.flush()
    assert panel.plots.curve_count() == 0  # run 1 is hidden, run 2 deleted
    saved = json.loads(json.dumps(panel.workspace.to_json()))
    other = PretrainPanel()
    qtbot.addWidget(other)
    _load(other, saved)
    assert [run.name for run in other.runs()] == ["Run 1"]
    assert other.runs()[0].final_losses()[1] == pytest.approx(0.5)


def test_smoothing_and_axes(panel):
    run = _fake_run(1, 1e-3)
    _load(panel, {"runs": [run.to_state()]})
    panel.plots.smoothing.setValue(0)
    panel.plots.flush()
    curves = panel.plots.curves(1)
    x, y = curves.train.getData()
    assert y[0] == pytest.approx(4.0) and x[-1] == 29
    panel.plots.smoothing.setValue(90)
    panel.plots.x_axis.setCurrentIndex(1)
    panel.plots.flush()
    x, y = curves.train.getData()
    assert x[-1] == 29 * 64
    assert y[-1] > 4.0 / 29  # smoothed lags behind a falling loss
    panel.plots.log_scale.setChecked(True)
    assert panel.plots.loss.getAxis("left").logMode


def test_editing_makes_the_preset_custom_and_a_preset_restores_it(panel, qtbot):
    layers = panel.form.edit("n_layers")
    layers.clear()
    qtbot.keyClicks(layers, "2")
    assert panel.form.preset.currentText() == "custom"
    assert panel.form.config_dict()["n_layers"] == 2
    panel.form.preset.setCurrentText("tiny")
    assert panel.form.config_dict()["n_layers"] == 4
    assert panel.form.settings_dict()["steps"] > 0


def test_batch_sender_coalesces_records():
    class FakeQueue:
        def __init__(self):
            self.puts = []

        def put(self, item):
            self.puts.append(list(item))

    queue = FakeQueue()
    sender = BatchSender(queue)
    for i in range(2000):
        sender.add({"type": "step", "step": i})
    sender.add({"type": "done"})
    sender.close()
    received = [record for batch in queue.puts for record in batch]
    assert [r.get("step") for r in received[:-1]] == list(range(2000))
    assert received[-1]["type"] == "done"
    assert len(queue.puts) < 100  # one message per ~50 ms, not one per record


@pytest.fixture
def trained_checkpoint(tmp_path, small_corpus):
    """A checkpoint of a few steps of a very small model, written by the core trainer in-process."""
    from explorer.core.gpt.train import Trainer, TrainSettings

    config = {"vocab_size": 128, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
              "drop_rate": 0.0}
    settings = TrainSettings(steps=3, batch_size=2, eval_every=0, sample_every=0, device="cpu",
                             corpus_path=small_corpus)
    trainer = Trainer(config, settings)
    for _ in trainer.run():
        pass
    from explorer.core.workspaces.pretrain import CHECKPOINT, run_folder

    path = run_folder(1) / CHECKPOINT  # where the app keeps run 1's checkpoint
    path.parent.mkdir(parents=True)
    trainer.save_checkpoint(path)
    run = _fake_run(1, 1e-3)
    run.config = trainer.config.to_dict()
    run.checkpoint = str(path)
    return run


def test_attention_maps_of_a_checkpoint(panel, qtbot, trained_checkpoint):
    _load(panel, {"runs": [trained_checkpoint.to_state()]})
    tab = panel.findChild(QWidget, "pretrainAttention")
    tab.prompt.setText("the fox")
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        qtbot.mouseClick(tab.button, Qt.LeftButton)
    maps = tab.result.maps
    assert maps.shape == (2, 2, 7, 7)  # layers, heads, query tokens, key tokens
    assert np.allclose(maps.sum(axis=-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(maps[0, 0], 1), 0.0)  # causal: nobody looks ahead
    assert len(tab.canvas.ci.items) == 4  # one heatmap per layer and head


def test_attention_without_checkpoint_says_so(panel, qtbot):
    tab = panel.findChild(QWidget, "pretrainAttention")
    tab.show_attention()
    assert "train" in tab.status.text().lower()
    assert tab.result is None


def test_trace_one_step_reaches_the_canvas(panel, qtbot, trained_checkpoint):
    _load(panel, {"runs": [trained_checkpoint.to_state()]})
    tab = panel.findChild(QWidget, "pretrainTrace")
    tab.tokens.setValue(4)
    with qtbot.waitSignal(tab.sig_traced, timeout=WAIT_MS):
        qtbot.mouseClick(tab.button, Qt.LeftButton)
    modules = {node.module for node in tab.trace.nodes.values() if node.module}
    assert any(m.startswith("blocks.1") for m in modules)
    assert tab.view.step_count == len(tab.trace.forward_order) + len(tab.trace.backward_order)
    assert tab.player.length == tab.view.step_count
    # Collapsed by module: far fewer cards than traced nodes.
    assert 0 < len(tab.view.graph_scene.cards) < len(tab.trace.nodes)


@pytest.mark.parametrize("kind, message", [
    ("nonfinite", "Training stopped at step 7: the loss nan is not a number. The model keeps its last good"),
    ("oom", "The CUDA ran out of memory at step 3. Try a smaller batch_size or context_length"),
])
def test_error_records_become_a_message_and_the_panel_stays_usable(panel, kind, message):
    # The records a failing run sends (see explorer/core/train.py), fed to the panel directly.
    run = _fake_run(1, 1e-3)
    run.status = "running"
    panel.workspace.runs[run.run_id] = run
    panel._active = run
    panel.plots.add_run(run)
    panel.history.add_run(run)
    panel._on_records([{"type": "error", "kind": kind, "step": 7, "message": message}])
    panel._on_finished({"status": "error", "message": message, "checkpoint": None})
    assert panel.banner.isVisible()
    assert message in panel.banner.text() and "Traceback" not in panel.banner.text()
    assert run.status == "error"
    assert panel.train_button.isEnabled() and not panel.retrain_button.isEnabled()
    assert not panel.stop_button.isEnabled()


def test_screenshot_setup_checks_the_preset_and_never_trains_what_cannot_train(panel):
    with pytest.raises(ValueError, match="unknown pretraining preset"):
        panel.prepare_screenshot(preset="gpt5")
    panel.prepare_screenshot(preset="gpt2-124m")  # inspected, not trained: returns at once
    assert panel.runs() == [] and not panel.is_training()
    assert "163,009,536" in _text(panel, "paramCount")


def test_slow_cpu_run_is_warned_about_but_allowed(panel):
    panel.form.apply_preset("small")
    panel.form.set_values({"device": "cpu"})
    assert panel.fit_warning.isVisible() and "hours" in panel.fit_warning.text()
    assert panel.train_button.isEnabled()
    panel.form.set_values({"steps": 5})
    assert not panel.fit_warning.isVisible()


def test_char_vocab_comes_from_the_tokenizer_bpe_vocab_is_a_setting(panel, qtbot):
    vocab = panel.form.edit("vocab_size")
    if panel.form.vocab_pending():  # the built-in corpus is counted off the GUI thread
        with qtbot.waitSignal(panel.form.sig_vocab_counted, timeout=WAIT_MS):
            pass
    chars = char_vocab_size()
    assert vocab.isReadOnly() and vocab.text() == str(chars)
    assert f"from the tokenizer: {chars}" in _text(panel, "pretrainVocabHint")
    assert panel.form.config_dict()["vocab_size"] == chars
    expected = count_parameters(PRESETS["tiny"].replace(vocab_size=chars))["total"]
    assert f"<b>{expected:,}</b>" in _text(panel, "paramCount")
    assert "provisional" not in panel.estimates.param_parts.text()

    panel.form.tokenizer.setCurrentText("bpe")
    assert not vocab.isReadOnly() and vocab.text() == "1024"
    assert panel.form.settings_dict()["tokenizer"] == "bpe"
    expected = count_parameters(PRESETS["tiny"].replace(vocab_size=1024))["total"]
    assert f"<b>{expected:,}</b>" in _text(panel, "paramCount")
    vocab.clear()
    qtbot.keyClicks(vocab, "200")
    assert "byte alphabet" in panel.form.error_label("vocab_size").text()
    assert not panel.train_button.isEnabled()
    panel.form.tokenizer.setCurrentText("char")
    assert vocab.text() == str(chars) and panel.form.is_valid()


def test_trace_refuses_a_big_untrained_model_before_learning_a_bpe():
    from explorer.ui.pretrain.trace_step import trace_one_step

    source = {"checkpoint": None, "config": PRESETS["gpt2-124m"].to_dict(), "settings": {"tokenizer": "bpe"}}
    with pytest.raises(ValueError, match="163,009,536 parameters is too big to trace"):
        trace_one_step(source)


def test_a_hidden_run_gets_its_curves_when_first_shown(qtbot):
    """Hidden runs cost nothing on the plots (a 1,000-run session opens fast) and draw when ticked on."""
    from explorer.ui.pretrain.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    run = PretrainRun(1, "Run 1", {"context_length": 8}, {"steps": 3, "batch_size": 2})
    for step in (1, 2, 3):
        run.add({"type": "step", "step": step, "tokens": step * 16, "train_loss": 3.0 - step / 10,
                 "lr": 1e-3})
    run.visible = False
    plots.add_run(run)
    plots.flush()
    assert plots.run_ids() == [1] and plots.curve_count() == 0 and not plots._curves
    plots.set_visible(1, True)
    plots.flush()
    assert plots.curve_count() == 1
    x, y = plots.curves(1).train_raw.getOriginalDataset()
    assert list(x) == [1, 2, 3] and np.allclose(y, [2.9, 2.8, 2.7])


@pytest.mark.slow
def test_the_gpus_field_trains_one_run_on_two_ranks(qtbot, monkeypatch):
    """Issue 11 §3: with more than one GPU a "GPUs" field launches the run on that many ranks (torchrun).

    This machine has no GPU: the count is faked, and device "auto" then trains the ranks on CPU (gloo)."""
    from explorer.core.gpt import distributed

    one = PretrainPanel()
    qtbot.addWidget(one)
    assert one.form.gpus.isHidden() or not one.form.gpus.isVisibleTo(one)  # one GPU or none: no field
    one.shutdown()
    monkeypatch.setattr(distributed, "gpu_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.show()
    try:
        assert panel.form.gpus.isVisibleTo(panel) and panel.form.gpus.maximum() == 2
        panel.workspace.state.gpus = 2  # set through the model, as a lesson or a session would
        assert panel.form.gpus.value() == 2
        panel.form.set_values({"n_layers": 1, "n_heads": 2, "emb_dim": 16, "context_length": 16,
                               "drop_rate": 0.0, "batch_size": 2, "steps": 3, "warmup_steps": 1,
                               "eval_every": 3, "eval_batches": 1, "sample_every": 0, "device": "auto"})
        with qtbot.waitSignal(panel.sig_run_finished, timeout=WAIT_MS * 2) as finished:
            assert panel.train(), panel.banner.text()
        run = panel.runs()[-1]
        assert finished.args == [run.run_id, "done"], run.message
        assert list(run.steps["step"].view()) == [1, 2, 3]
        assert run.steps["tokens"].view()[-1] == 3 * 2 * 2 * 16  # global tokens: 2 ranks x batch 2
        assert run.checkpoint and os.path.exists(run.checkpoint)
    finally:
        panel.shutdown()


def test_start_line_names_the_precision(panel):
    # bf16 autocast is picked automatically on some CPUs and GPUs: the user must see which one runs.
    run = _fake_run(1, 1e-3)
    start = {"type": "start", "step": 0, "device": "cpu", "parameters": 1234, "vocab_size": 60}
    panel._show_start(run, {**start, "dtype": "bfloat16"})
    assert "cpu in mixed precision (bf16 products, float32 weights)" in panel.progress_label.text()
    panel._show_start(run, {**start, "dtype": "float32"})
    text = panel.progress_label.text()
    assert "precision" not in text and "cpu: 1,234 parameters" in text
    assert panel.progress_label.toolTip() == ""
    # and why ("auto" on a CPU measures bf16 at the start): the start record's dtype_note, in the tooltip
    why = "bf16 autocast: 1.48x float32's speed on this CPU (a block's forward and backward took 5.4 ms)"
    panel._show_start(run, {**start, "dtype": "bfloat16", "dtype_note": why})
    assert f"Precision: {why}" in panel.progress_label.toolTip()


def test_attention_maps_keep_square_cells_and_read_the_pointer_without_a_tooltip(panel, qtbot,
                                                                                   trained_checkpoint):
    _load(panel, {"runs": [trained_checkpoint.to_state()]})
    tab = panel.findChild(QWidget, "pretrainAttention")
    panel.tabs.setCurrentWidget(tab)
    tab.prompt.setText("the fox")
    with qtbot.waitSignal(tab.sig_shown, timeout=WAIT_MS):
        qtbot.mouseClick(tab.button, Qt.LeftButton)
    QApplication.processEvents()
    for index in range(len(tab.canvas.ci.items)):  # a cell is as wide as it is tall, on screen
        corner, far = tab.cell_centre(index, 0, 0), tab.cell_centre(index, 1, 1)
        dx, dy = far.x() - corner.x(), far.y() - corner.y()
        assert dx > 2 and dy == pytest.approx(dx, rel=0.02), (index, dx, dy)
    assert tab.canvas.toolTip() == ""  # the big tooltip over the maps is gone ...
    tab._on_mouse_moved(tab.cell_centre(0, 3, 1))  # ... the readout names the cell under the pointer
    assert tab.hover.text().startswith("layer 0 · head 0: query 3")


def test_attention_hint_follows_a_finished_run(panel, qtbot, trained_checkpoint):
    from explorer.ui.pretrain.attention import NO_MODEL_HINT

    tab = panel.findChild(QWidget, "pretrainAttention")
    panel.tabs.setCurrentWidget(tab)
    assert tab.status.text() == NO_MODEL_HINT
    _load(panel, {"runs": [trained_checkpoint.to_state()]})
    panel.sig_run_finished.emit(1, "done")
    assert tab.status.text() != NO_MODEL_HINT and "Show attention" in tab.status.text()


def test_a_deleted_panel_does_not_answer_the_app_coming_back(qtbot):
    """The runs folder is rescanned when the app becomes active again; a panel that is gone (a closed
    window, an earlier test's) must not be reached by that signal (it raised inside Qt's event loop)."""
    import shiboken6

    panel = PretrainPanel()
    panel.shutdown()
    shiboken6.delete(panel)
    QApplication.instance().applicationStateChanged.emit(Qt.ApplicationActive)
