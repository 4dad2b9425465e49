"""pytest-qt checks of the network workspace's layer health plots and lr range test."""

import math
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtWidgets import QComboBox, QWidget  # noqa: E402

from explorer.core.mlp.health import LRTest  # noqa: E402
from explorer.core.mlp.network import preset_spec  # noqa: E402
from explorer.core.workspaces.network import SpecModel, ToyRun  # noqa: E402
from explorer.ui.network.health import HealthView, LRTestView, plottable  # noqa: E402
from explorer.ui.network.panel import TRAIN_TAB, NetworkPanel  # noqa: E402

NAMES = ("networkInit", "networkHealthTabs", "layerHealth", "layerGradPlot", "updateRatioPlot",
         "activationSharePlot", "activationMeanPlot", "lrTestButton", "lrUseButton", "lrRangePlot")


@pytest.fixture
def panel(qtbot):
    widget = NetworkPanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 850)
    widget.show()
    yield widget
    widget.shutdown()


def pick(panel, name):
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData(name))
    assert panel.workspace.state.preset == name
    panel.iteration.wait_recorded()


def test_new_views_exist_and_old_presets_still_work(panel):
    for name in NAMES:
        assert panel.findChild(QWidget, name) is not None, name
    for name in ("seed", "mlp-50-30-20-3", "toy-2d", "deep-sigmoid", "deep-relu-he", "lr-too-high"):
        assert panel.form.preset.findData(name) >= 0, name


def test_the_init_choice_reaches_the_spec(panel, qtbot):
    pick(panel, "toy-2d")
    combo = panel.findChild(QComboBox, "networkInit")
    with qtbot.waitSignal(panel.form.sig_spec_changed, timeout=3000):
        combo.setCurrentIndex(combo.findData("zeros"))
    assert panel.workspace.spec().init == "zeros" and panel.workspace.state.preset == "custom"
    pick(panel, "deep-relu-he")
    assert combo.currentData() == "he"


def test_a_deep_sigmoid_run_draws_one_line_per_layer(qtbot, panel):
    pick(panel, "deep-sigmoid")
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    panel.train.train_blocking(40)
    view = panel.train.health
    run_steps = len(panel.workspace.state.runs[-1].steps)

    def drawn() -> bool:  # redraws are paced (REDRAW_S): wait for the drawing of the whole run
        curves = view.curves.get("layerGradPlot") or []
        ys = curves[0].getData()[1] if curves else None
        return not view.empty and ys is not None and len(ys) == run_steps

    qtbot.waitUntil(drawn, timeout=60000)
    grads = view.curves["layerGradPlot"]
    assert len(grads) == 7 and len(view.curves["activationSharePlot"]) == 2 * 6
    run = panel.workspace.state.runs[-1]
    first, last = grads[0].getData()[1], grads[-1].getData()[1]
    assert len(first) == len(run.steps) == 20
    assert np.nanmedian(first) < np.nanmedian(last) / 100  # the vanishing gradient, on screen
    assert "fc7" in view.key.text()


def test_hostile_health_values_are_gaps_not_a_crash(qtbot):
    view = HealthView()
    qtbot.addWidget(view)
    spec = SpecModel.of(preset_spec("toy-2d"))
    run = ToyRun(number=1, label="r", planned_steps=10, spec=spec, dataset={}, steps=[1, 2, 3],
                 train_loss=[1.0, 2.0, 3.0], test_loss=[1.0, 2.0, 3.0], train_acc=[0.5] * 3,
                 test_acc=[0.5] * 3,
                 grad_norms=[[1.0, math.inf, 0.0], [None, 2.0, 3.0], [math.nan, 1.0, 1.0]],
                 update_ratios=[[1e-3] * 3] * 3, act_mean=[[0.0, 0.1]] * 3, act_std=[[1.0, None]] * 3,
                 saturated=[[0.5, 1.0]] * 3, dead=[[None, None]] * 3)
    view.show_run(run)
    y = view.curves["layerGradPlot"][1].yData
    assert np.isnan(y[0]) and y[1] == 2.0  # inf became a gap
    assert np.isnan(view.curves["layerGradPlot"][2].yData[0])  # 0 cannot be drawn on a log axis
    assert list(plottable(np.array([1.0, -1.0, np.inf]), log=False)[:2]) == [1.0, -1.0]
    view.show_run(None)
    assert view.empty


def test_lr_view_draws_hostile_results(qtbot):
    view = LRTestView()
    qtbot.addWidget(view)
    lrs = np.logspace(-5, 1, 5)
    view.show_result(LRTest(lrs, np.array([1.0, np.nan, np.inf, 0.5, 9.0]),
                            np.array([1.0, np.nan, np.nan, 0.7, 2.0]), None, True))
    assert not view.marker.isVisible()
    view.show_result(LRTest(lrs, np.full(5, np.nan), np.full(5, np.nan), None, True))


def test_lr_range_test_runs_off_the_gui_thread_and_use_it_sets_the_rate(panel, qtbot):
    pick(panel, "toy-2d")
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    lr_view = panel.train.lr_test
    before = panel.workspace.spec().lr
    with qtbot.waitSignal(lr_view._worker.sig_done, timeout=120_000):
        lr_view.run_button.click()
        assert lr_view.is_running() and lr_view.run_button.text() == "Cancel"
    result = lr_view.result
    assert result is not None and result.suggested is not None
    assert lr_view.use_button.isEnabled() and lr_view.marker.isVisible()
    assert panel.workspace.spec().lr == before  # the test itself changes nothing
    lr_view.use_button.click()
    want = float(f"{result.suggested:.2g}")
    assert panel.workspace.spec().lr == pytest.approx(want)
    assert panel.form.lr.value() == pytest.approx(want, abs=1e-5)


def test_lr_range_test_can_be_cancelled(panel, qtbot):
    pick(panel, "toy-2d")
    lr_view = panel.train.lr_test
    with qtbot.waitSignal(lr_view._worker.sig_busy_changed, check_params_cb=lambda busy: not busy,
                          timeout=60_000):
        lr_view.run_button.click()
        lr_view.run_button.click()  # Cancel
    assert lr_view.result is None and "Cancelled" in lr_view.status.text()
    assert not lr_view.use_button.isEnabled()
