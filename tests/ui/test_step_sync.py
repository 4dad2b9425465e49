"""Step-synced views (issue 23 §3) and the pretraining Histograms tab: StepSync itself, the loss curve's
hover and click moving the health cursors, the histogram slider and the samples, in both workspaces."""

from __future__ import annotations

import gc
import math
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtWidgets import QSlider, QWidget  # noqa: E402

from explorer.core.gpt import histograms as H  # noqa: E402
from explorer.core.gpt.runs import PretrainRun  # noqa: E402
from explorer.ui.common.step_sync import StepSync, nearest_step  # noqa: E402
from explorer.ui.pretrain.histograms import HistogramView  # noqa: E402

CONFIG = {"n_layers": 3, "n_heads": 2, "emb_dim": 32, "context_length": 16}


class View:
    def __init__(self):
        self.seen = []

    def show_step(self, step):
        self.seen.append(step)


def test_step_sync_registers_chooses_and_holds_views_weakly(qtbot):
    sync = StepSync()
    first, second = View(), View()
    sync.register(first)
    sync.choose(7)
    sync.register(second)  # a late view gets the chosen step at once
    with qtbot.waitSignal(sync.step_changed) as blocker:
        sync.choose(9.0)
    assert blocker.args == [9]
    sync.choose(9)  # a repeat tells nobody
    sync.choose(None)
    assert first.seen == [None, 7, 9, None] and second.seen == [7, 9, None]
    del second
    gc.collect()
    sync.choose(3)
    assert first.seen[-1] == 3 and len(sync._views) == 1
    assert nearest_step([1, 10, 20], 14) == 10 and nearest_step([], 3) is None
    assert nearest_step([1.0, math.nan, 30.0], 29) == 30


def histogram_record(step: int, blocks: int = 3, nonfinite: int = 0) -> dict:
    rng = np.random.default_rng(step)
    record = {"type": "histograms", "step": step}
    for kind in H.KINDS:
        record[f"{kind}_edges"] = np.tile(np.linspace(-step, step, H.BINS + 1), (blocks, 1)).tolist()
        record[f"{kind}_counts"] = rng.integers(0, 100, (blocks, H.BINS)).tolist()
        record[f"{kind}_nonfinite"] = [nonfinite] * blocks
    return record


def records() -> list[dict]:
    out = [{"type": "start", "config": CONFIG}]
    for step in range(1, 41):
        record = {"type": "step", "step": step, "tokens": 64 * step, "train_loss": 3.0 - step / 40,
                  "lr": 1e-3, "grad_norm": 0.5}
        if step == 1 or step % 10 == 0:
            record["block_grad_norms"] = [0.3, 0.2, 0.1]
            record["update_ratios"] = [1e-3, 2e-3, 1e-3]
        out.append(record)
        if step == 1 or step % 10 == 0:
            out.append(histogram_record(step, nonfinite=5 if step == 20 else 0))
        if step % 15 == 0:
            out.append({"type": "sample", "step": step, "text": f"sample of step {step}"})
    return out


def test_the_histogram_view_draws_one_plot_per_block_and_walks_the_steps(qtbot):
    view = HistogramView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    assert view.findChild(QSlider, "histogramStepSlider") is view.slider
    run = PretrainRun(1, "run 1", CONFIG, {"steps": 40, "hist_every": 10})
    view.show_run(run)
    assert "No histograms yet" in view.key.text() and not view.slider.isEnabled()
    for record in records():
        run.add(record)
    run.add({**histogram_record(40), "step": 30})  # out of order: left out
    run.add({**histogram_record(50), "activation_counts": [[-1] * H.BINS] * 3})  # hostile: left out
    view.refresh()
    assert view.recorded_steps() == [1, 10, 20, 30, 40]
    assert view.shown_step() == 40 and view.step_label.text().startswith("step 40 of 40")
    assert len(view.plots) == 3 and all(set(p) == set(H.KINDS) for p in view.plots)
    xs, ys = view.items[1]["gradient"].getData()
    want = np.log10(run.histograms[-1].counts["gradient"][1] + 1)
    assert len(xs) == H.BINS + 1 and np.allclose(ys, want)
    view.slider.setValue(2)  # the user walks back
    assert view.step_label.text().startswith("step 20 of 40")
    assert "5 NaN/inf" in view.plots[0]["activation"].titleLabel.text
    view.show_step(14)  # the loss curve's cursor: the nearest recorded step
    assert view.shown_step() == 10
    run.add(histogram_record(45))
    view.show_step(44)
    assert view.shown_step() == 45
    run.add(histogram_record(50))  # records keep coming: the chosen step stays chosen
    view.refresh()
    assert view.shown_step() == 45
    view.show_step(None)
    assert view.shown_step() == 50
    assert view.log_counts.isChecked()  # log counts by default: the tails show
    assert view.items[0]["activation"].getData()[1].max() <= math.log10(101)
    view.log_counts.setChecked(False)
    drawn = list(view.items[0]["activation"].getData()[1])
    assert drawn == run.histograms[-1].counts["activation"][0].tolist()
    view.show_run(None)
    assert view.plots == []


@pytest.fixture
def pretrain(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path))
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    yield panel
    panel.shutdown()


def add_run(panel) -> PretrainRun:
    """A finished run with health, histograms and samples, restored as from a saved session (so the
    panel lists its samples and reads its histograms file): the restored run."""
    ws = panel.workspace
    run = ws.new_run(CONFIG, {"steps": 40, "grad_clip": 1.0, "hist_every": 10, "lr": 1e-3, "batch_size": 4},
                     None)
    ws.add_records(run.run_id, records())
    ws.finish_run(run.run_id, "done")
    ws.load(ws.validate(ws.to_json()))
    panel.plots.flush()
    return ws.runs[run.run_id]


def at_step(plot_widget, x: float):
    """The scene position of x on a plot's data area (half-way up)."""
    box = plot_widget.getPlotItem().getViewBox()
    (_x0, _x1), (y0, y1) = box.viewRange()
    return box.mapViewToScene(QPointF(x, (y0 + y1) / 2))


def test_hover_and_click_on_the_loss_curve_move_every_view(pretrain, qtbot):
    panel = pretrain
    assert isinstance(panel.step_sync, StepSync)
    assert panel.findChild(QWidget, "histogramView") is panel.histogram_tab
    titles = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    assert titles.index("Histograms") > titles.index("Trace one step")  # appended: older indexes kept
    assert [panel.tabs.tabText(i) for i in range(2)] == ["Training", "Network health"]
    run = add_run(panel)
    assert panel.histogram_tab.run is run and panel.health_tab.run is run
    loss = panel.plots.loss_widget
    qtbot.waitUntil(lambda: loss.getPlotItem().getViewBox().viewRange()[0][1] > 30, timeout=5000)
    # hover step 22: the scene's own signal, as a real mouse move gives it
    loss.scene().sigMouseMoved.emit(at_step(loss, 22))
    assert panel.step_sync.step == 22
    assert panel.health_tab.cursors[0].isVisible() and panel.health_tab.cursors[0].value() == 22
    assert panel.plots.cursors[0].isVisible() and panel.plots.cursors[0].value() == 22
    assert panel.histogram_tab.shown_step() == 20
    assert panel.sample_marks.shown == (run.run_id, 15)  # the newest sample at or before the step
    assert panel.samples.extraSelections()
    # leaving the plot: back to the newest
    panel.step_picker.left()
    assert panel.step_sync.step is None and not panel.health_tab.cursors[0].isVisible()
    assert panel.histogram_tab.shown_step() == 40 and panel.sample_marks.shown is None
    # a click pins step 9 (nearest recorded: 9); moving and leaving keep it
    panel.step_picker.clicked(at_step(loss, 9.2))
    panel.step_picker.moved(at_step(loss, 35))
    panel.step_picker.left()
    assert panel.step_sync.step == 9 and panel.histogram_tab.shown_step() == 10
    assert panel.sample_marks.shown is None  # no sample at or before step 9
    # a second click unpins (and shows the step under the pointer)
    panel.step_picker.clicked(at_step(loss, 31))
    assert panel.step_picker.pinned is None and panel.step_sync.step == 31
    assert panel.sample_marks.shown == (run.run_id, 30)
    panel.step_picker.left()
    assert panel.step_sync.step is None


def test_a_restored_run_shows_its_histograms_from_its_folder(pretrain):
    from explorer.core.workspaces.pretrain import run_folder

    panel = pretrain
    run = add_run(panel)
    assert [e.step for e in H.read_file(run_folder(run.run_id) / H.FILE_NAME)] == [1, 10, 20, 30, 40]
    assert [e.step for e in run.histograms] == [1, 10, 20, 30, 40]  # read back from the file
    panel.tabs.setCurrentWidget(panel.histogram_tab)
    assert panel.histogram_tab.run is run and len(panel.histogram_tab.plots) == 3


def test_the_network_loss_curve_moves_the_layer_health_cursor(qtbot):
    from explorer.ui.network.panel import TRAIN_TAB, NetworkPanel

    panel = NetworkPanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 850)
    panel.show()
    try:
        assert isinstance(panel.step_sync, StepSync)
        combo = panel.form.preset
        combo.setCurrentIndex(combo.findData("deep-sigmoid"))
        panel.iteration.wait_recorded()
        panel.tabs.setCurrentIndex(TRAIN_TAB)
        panel.train.train_blocking(40)
        qtbot.waitUntil(lambda: not panel.train.health.empty, timeout=60000)
        steps = panel.workspace.state.runs[-1].steps
        loss = panel.train.loss_plot
        panel.step_picker.moved(at_step(loss, steps[3] + 0.4))
        cursor = panel.train.health.cursors[0]
        assert panel.step_sync.step == steps[3] and cursor.isVisible() and cursor.value() == steps[3]
        assert panel.train.cursors[0].value() == steps[3]
        panel.step_picker.left()
        assert not cursor.isVisible() and panel.step_sync.step is None
    finally:
        panel.shutdown()
