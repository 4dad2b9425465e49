"""pytest-qt checks of the pretraining workspace's Network health tab (no training process started)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QWidget  # noqa: E402

from explorer.core.gpt.runs import PretrainRun  # noqa: E402
from explorer.ui.pretrain.health import HealthTab  # noqa: E402

CONFIG = {"n_layers": 3, "n_heads": 2, "emb_dim": 32, "context_length": 16}


def run_with_health(grad_clip=1.0) -> PretrainRun:
    run = PretrainRun(1, "run 1", CONFIG, {"grad_clip": grad_clip, "lr": 1e-3, "batch_size": 4})
    run.add({"type": "start", "config": CONFIG})
    for step in range(1, 31):
        norm = 2.0 if step in (1, 2, 10) else (math.inf if step == 20 else 0.5)
        record = {"type": "step", "step": step, "tokens": 64 * step, "train_loss": 3.0, "lr": 1e-3,
                  "grad_norm": norm}
        if step == 1 or step % 10 == 0:
            record["block_grad_norms"] = [0.3, math.nan if step == 20 else 0.2, 0.1]
            record["update_ratios"] = [1e-3, 2e-3, None]
        run.add(record)
    return run


@pytest.fixture
def tab(qtbot):
    widget = HealthTab()
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    return widget


def test_one_line_per_block_and_clip_events_marked(tab):
    run = run_with_health()
    tab.show_run(run)
    assert len(tab.block_curves) == 3
    grad_item, ratio_item = tab.block_curves[1]
    xs, ys = grad_item.getData()
    assert list(xs) == [1, 10, 20, 30]
    assert np.isnan(ys[2])  # the NaN block norm is a gap
    assert np.isnan(tab.block_curves[2][1].yData).all()  # None ratios: nothing drawn, no crash
    # clip events: the steps whose global norm exceeded grad_clip (the infinite one is not drawn as a clip)
    assert tab.clip_steps().tolist() == [1, 2, 10, 20]
    assert len(tab.clips.data) == 3  # the infinite norm has no place on the axis
    assert "3 clipped" not in tab.key.text() and "4 clipped steps" in tab.key.text()
    assert "block 2" in tab.key.text()


def test_no_clipping_no_markers_and_empty_runs(tab):
    tab.show_run(run_with_health(grad_clip=0.0))
    assert tab.clip_steps().tolist() == [] and len(tab.clips.data) == 0
    empty = PretrainRun(2, "run 2", CONFIG, {"grad_clip": 1.0})
    tab.show_run(empty)
    assert tab.block_curves == [] and "No health records" in tab.key.text()
    tab.show_run(None)


def test_the_panel_shows_a_restored_runs_health(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path))
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 820)
    panel.show()
    try:
        assert panel.findChild(QWidget, "pretrainBlockGradPlot") is not None
        assert panel.findChild(QWidget, "pretrainUpdateRatioPlot") is not None
        run = run_with_health()
        ws = panel.workspace
        saved = ws.new_run(run.config, run.settings, None)
        ws.add_records(saved.run_id, [{"type": "start", "config": CONFIG}]
                       + [r for r in _records(run)])
        ws.finish_run(saved.run_id, "done")
        data = ws.to_json()
        panel.workspace.load(panel.workspace.validate(data))  # as a restored session: health.csv is read
        panel.tabs.setCurrentWidget(panel.health_tab)
        assert panel.health_tab.run is not None and len(panel.health_tab.run.health) == 4
        assert len(panel.health_tab.block_curves) == 3
    finally:
        panel.shutdown()


def _records(run: PretrainRun) -> list[dict]:
    steps = run.steps
    out = []
    by_step = {e["step"]: e for e in run.health}
    for i, step in enumerate(steps["step"].view().tolist()):
        record = {"type": "step", **{k: steps[k].view()[i].item() for k in steps}}
        if int(step) in by_step:
            record.update({k: by_step[int(step)][k] for k in ("block_grad_norms", "update_ratios")})
        out.append(record)
    return out
