"""pytest-qt checks of the network workspace's Loss landscape tab."""

import math
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtWidgets import QLabel, QPushButton, QWidget  # noqa: E402

from explorer.core.mlp.landscape import GRID_SIZE, Landscape, toy_dataset, toy_landscape  # noqa: E402
from explorer.ui.common.step_sync import StepSync  # noqa: E402
from explorer.ui.network.landscape import LandscapeView, colour_values, loss_ticks, readout_text  # noqa: E402
from explorer.ui.network.panel import TRAIN_TAB, NetworkPanel  # noqa: E402


@pytest.fixture
def panel(qtbot):
    widget = NetworkPanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 850)
    widget.show()
    yield widget
    widget.shutdown()


def trained(panel, preset="toy-2d", steps=40):
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData(preset))
    panel.iteration.wait_recorded()
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    panel.train.train_blocking(steps)
    view = panel.train.landscape
    panel.train.side_tabs.setCurrentWidget(view)
    return view


def test_the_tab_and_its_named_widgets_exist(panel):
    tabs = panel.train.side_tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Layer health", "LR range test",
                                                               "Loss landscape"]
    for name in ("landscapeButton", "landscapeStatus", "landscapePlot", "landscapeDirections"):
        assert panel.findChild(QWidget, name) is not None, name
    button = panel.findChild(QPushButton, "landscapeButton")
    assert "filter" in button.toolTip().lower() and "slice" in button.toolTip().lower()


def test_compute_draws_the_core_result_of_the_newest_run(qtbot, panel):
    view = trained(panel)
    run = panel.workspace.state.runs[-1]
    with qtbot.waitSignal(view._worker.sig_done, timeout=120000):
        view.button.click()
    land = view.landscape
    expected = toy_landscape(run.spec.spec(), toy_dataset(run.dataset), 40, size=GRID_SIZE)
    assert np.array_equal(land.losses, expected.losses, equal_nan=True)
    assert np.allclose(view.image.image, colour_values(expected.losses), equal_nan=True)
    assert land.step == 40 and land.centre_loss == pytest.approx(run.train_loss[-1], rel=1e-9)
    status = panel.findChild(QLabel, "landscapeStatus").text()
    assert "run 1's weights after step 40" in status and "differs" not in status
    assert view.button.text() == "Compute landscape" and not view.progress.isVisible()
    # the path ends at the weights, the marker shows the newest step, then a chosen one
    xs, ys = view.path.getData()
    assert len(xs) == len(land.path_steps) and (xs[-1], ys[-1]) == pytest.approx((0.0, 0.0), abs=1e-9)
    sync = StepSync()
    sync.register(view)
    assert view.marker_text.toPlainText() == "step 40"
    sync.choose(21)
    step, a, b = land.point_at(21)
    assert view.marker_text.toPlainText() == "step 21" and step == 21  # every step is kept in 40
    mx, my = view.marker.getData()
    assert (mx[0], my[0]) == pytest.approx((a, b))


def test_cancel_stops_without_a_picture(qtbot, panel):
    view = trained(panel, steps=30)
    view.button.click()
    assert view.is_running() and view.button.text() == "Cancel"
    view.button.click()
    assert not view.is_running() and view.status.text() == "Cancelled."
    assert view.landscape is None and view.button.text() == "Compute landscape"
    assert panel.workspace.state.runs[-1].status == "done"  # training is not touched


def test_without_a_run_it_shows_the_starting_weights(qtbot, panel):
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData("toy-2d"))
    panel.iteration.wait_recorded()
    view = panel.train.landscape
    with qtbot.waitSignal(view._worker.sig_done, timeout=120000):
        view.button.click()
    assert view.landscape.step == 0 and "starting weights" in view.status.text()
    assert len(view.path.getData()[0] if view.path.getData()[0] is not None else []) <= 1


def test_a_picture_of_what_is_gone_is_cleared(qtbot, panel):
    view = trained(panel, steps=20)
    with qtbot.waitSignal(view._worker.sig_done, timeout=120000):
        view.button.click()
    assert view.landscape is not None
    panel.train.reset()  # the runs are forgotten: so is the picture of run 1
    assert view.landscape is None and view.status.text().startswith("The runs were cleared")
    with qtbot.waitSignal(view._worker.sig_done, timeout=120000):
        view.button.click()
    assert view.landscape.step == 0  # the starting weights now
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData("deep-sigmoid"))  # another network: not its starting weights
    panel.iteration.wait_recorded()
    assert view.landscape is None and view.status.text().startswith("The network changed")


def test_pca_needs_a_path_and_says_so_in_one_line(qtbot, panel):
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData("toy-2d"))
    panel.iteration.wait_recorded()
    view = panel.train.landscape
    view.directions.setCurrentIndex(view.directions.findData("pca"))
    assert not view.seed.isEnabled()
    with qtbot.waitSignal(view._worker.sig_failed, timeout=120000):
        view.button.click()
    assert view.status.text().startswith("The landscape failed:") and "\n" not in view.status.text()
    assert "Traceback" not in view.status.text()


def test_a_network_that_cannot_take_toy_data_is_one_line(qtbot, panel):
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData("seed"))  # 10 inputs: not the 2-D toy data
    panel.iteration.wait_recorded()
    view = panel.train.landscape
    view.button.click()
    assert not view.is_running() and view.status.text().startswith("Cannot draw a landscape:")


def test_hostile_values_are_gaps_not_a_crash(qtbot):
    view = LandscapeView()
    qtbot.addWidget(view)
    xs = np.linspace(-1, 1, 5)
    losses = np.full((5, 5), 0.5)
    losses[0, 0], losses[1, 1], losses[2, 3] = np.nan, np.inf, 0.0
    land = Landscape(xs=xs, ys=xs, losses=losses, centre_loss=0.5, directions="random", seed=0, step=3,
                     path_steps=np.array([0, 3]), path_xy=np.array([[np.nan, 1.0], [0.0, 0.0]]),
                     in_plane=None)
    view.show_landscape(land, "a test")
    shown = view.image.image
    assert np.isnan(shown[0, 0]) and np.isnan(shown[1, 1]) and np.isfinite(shown[2, 3])
    assert view.path.getData()[0] is None or len(view.path.getData()[0]) == 0  # a NaN path is not drawn
    view.show_step(3)
    assert readout_text(land, 0.49, -0.02) == "a = 0.5, b = 0: loss 0"
    assert readout_text(land, -1.0, -1.0).endswith("not finite (a gap)")
    assert readout_text(land, 2.0, 0.0) == ""
    all_nan = Landscape(xs=xs, ys=xs, losses=np.full((5, 5), np.nan), centre_loss=math.nan,
                        directions="random", seed=0)
    view.show_landscape(all_nan, "a test")
    assert "no loss is a finite number" in view._summary(all_nan, "a test")
    view.show_step(None)
    view.show_landscape(None)
    assert view.image.image is None
    view.grab()  # paints without raising


def test_colour_values_are_log_with_gaps():
    values = colour_values(np.array([[1.0, 10.0], [np.nan, 0.0]]))
    assert values[0, 0] == 0.0 and values[0, 1] == 1.0 and np.isnan(values[1, 0])
    assert values[1, 1] == 0.0  # 0 has no log: drawn at the smallest positive loss
    assert np.isnan(colour_values(np.array([[np.inf]]))).all()


def test_the_colour_bar_is_labelled_in_losses():
    wide = loss_ticks(math.log10(0.002), math.log10(3.0))
    assert [label for _, label in wide] == ["0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5",
                                            "1", "2"]
    assert all(pos == pytest.approx(math.log10(float(label))) for pos, label in wide)
    narrow = loss_ticks(math.log10(0.6931), math.log10(0.7001))
    labels = [label for _, label in narrow]
    assert len(narrow) == 5 and len(set(labels)) == 5
    assert float(labels[0]) == pytest.approx(0.6931, rel=1e-3)
    assert float(labels[-1]) == pytest.approx(0.7001, rel=1e-3)


def test_the_view_joins_the_workspace_step_sync_where_the_panel_has_one(qtbot, monkeypatch):
    # a fallback for a panel without a StepSync of its own; the panel's own wins once it has one
    monkeypatch.setattr(NetworkPanel, "step_sync", StepSync(), raising=False)
    widget = NetworkPanel()
    qtbot.addWidget(widget)
    sync = widget.step_sync
    sync.choose(5)
    assert widget.train.landscape.shown_step == 5
    sync.choose(None)
    assert widget.train.landscape.shown_step is None
    widget.shutdown()
