"""pytest-qt checks of the network workspace: presets, the phase player, training, responsiveness."""

import json
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from PySide6.QtCore import QElapsedTimer, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from explorer.core.mlp.network import NetSession, build_model, example_batch, make_loss, preset_spec  # noqa: E402
from explorer.ui.network.panel import ITERATION_TAB, TRAIN_TAB, NetworkPanel  # noqa: E402
from explorer.ui.network.training import GRID  # noqa: E402

OBJECT_NAMES = (
    "networkPreset",
    "networkTrainButton",
    "datasetCombo",
    "networkLossPlot",
    "boundaryPlot",
    "paramTable",
)


class LatenessProbe:
    """A QTimer that should fire every `interval_ms`; records how late the GUI thread let it fire."""

    def __init__(self, interval_ms: int = 10):
        self.interval = interval_ms / 1000.0
        self.lateness: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = None

    def start(self) -> None:
        self._clock.start()
        self._last = 0.0
        self._timer.start()

    def stop(self) -> float:
        """Stop and return the worst lateness in seconds."""
        self._timer.stop()
        return max(self.lateness, default=0.0)

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed() / 1e9
        self.lateness.append(max(0.0, now - self._last - self.interval))
        self._last = now


def torch_grads(preset: str, model_state=None) -> dict[str, np.ndarray]:
    """Gradients torch computes directly for the preset's example batch."""
    spec = preset_spec(preset)
    model = build_model(spec)
    if model_state is not None:
        model.load_state_dict(model_state)
    x, y = example_batch(spec)
    make_loss(spec)(model(x), y).backward()
    return {n: p.grad.double().numpy() for n, p in model.named_parameters()}


@pytest.fixture
def panel(qtbot):
    widget = NetworkPanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 850)
    widget.show()
    yield widget
    widget.shutdown()


def pick_preset(panel, name: str) -> None:
    combo = panel.form.preset
    combo.setCurrentIndex(combo.findData(name))
    assert panel.iteration.session.spec == preset_spec(name)
    panel.iteration.wait_recorded()  # the worker thread's iteration is shown from here on


def test_object_names_exist(panel):
    for name in OBJECT_NAMES:
        assert panel.findChild(QWidget, name) is not None, name


@pytest.mark.parametrize("preset", ["seed", "mlp-50-30-20-3"])
def test_step_through_a_whole_iteration_shows_torchs_grads(panel, preset):
    pick_preset(panel, preset)
    view = panel.iteration
    expected = torch_grads(preset)
    player = view.player
    assert player.step == 0 and player.length == len(view.iteration.phases)
    seen = []
    while player.step < player.length:
        player.step_forward()
        seen.append(view.phase().kind)
        assert str(player.step) in view.status.text()
        if view.phase().kind == "loss":  # forward done, no gradient yet
            assert all(view.params.displayed_grad(n) is None for n in expected)
    assert [k for i, k in enumerate(seen) if i == 0 or seen[i - 1] != k] == [
        "zero_grad",
        "forward",
        "loss",
        "backward",
        "step",
    ]
    for name, grad in expected.items():
        np.testing.assert_allclose(view.params.displayed_grad(name), grad, rtol=1e-6, atol=1e-9)
    assert view.params.rowCount() == len(expected)
    total = sum(g.size for g in expected.values())
    assert view.params.total() == total and f"{total:,}" in view.total.text()


def test_keyboard_drives_the_player(panel, qtbot):
    pick_preset(panel, "seed")
    panel.tabs.setCurrentIndex(ITERATION_TAB)
    player = panel.iteration.player
    qtbot.keyClick(panel, Qt.Key_Right)
    qtbot.keyClick(panel, Qt.Key_Right)
    assert player.step == 2
    qtbot.keyClick(panel, Qt.Key_End)
    assert player.step == player.length
    qtbot.keyClick(panel, Qt.Key_Home)
    assert player.step == 0


def test_player_shortcuts_leave_keys_to_focused_inputs(panel, qtbot):
    pick_preset(panel, "seed")
    panel.tabs.setCurrentIndex(ITERATION_TAB)
    player = panel.iteration.player
    player.set_step(2)
    panel.activateWindow()
    lr = panel.form.lr
    lr.setFocus()
    for key in (Qt.Key_Space, Qt.Key_Right, Qt.Key_Left, Qt.Key_Home, Qt.Key_End, Qt.Key_N, Qt.Key_Z):
        qtbot.keyClick(lr, key)
        assert player.step == 2 and not player.is_playing(), key
    assert not panel.iteration.skip.isChecked()
    combo = panel.form.loss
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key_Space)  # opens the list of losses instead of playing
    assert player.step == 2 and not player.is_playing()
    combo.hidePopup()
    panel.iteration.skip.setFocus()
    qtbot.keyClick(panel.iteration.skip, Qt.Key_Space)  # toggles the focused check box
    assert panel.iteration.skip.isChecked() and not player.is_playing()
    panel.iteration.skip.setChecked(False)
    graph = panel.iteration.graph
    graph.setFocus()
    qtbot.keyClick(graph, Qt.Key_Right)  # outside inputs the shortcuts still step
    assert player.step == 3


def test_skip_zero_grad_adds_the_new_gradient_to_the_old(panel):
    pick_preset(panel, "seed")
    view = panel.iteration
    first = view.iteration.grads
    state = {k: v.clone() for k, v in view.session.model.state_dict().items()}
    fresh = torch_grads("seed", state)  # the gradient at the updated weights
    view.skip.setChecked(True)
    assert view.skip_note.isVisibleTo(panel) and "zero_grad" in view.skip_note.text()
    view.next_iteration()
    assert view.iteration.skip_zero_grad and "skipped" in view.iteration.phases[0].title
    view.player.go_end()
    for name in first:
        shown = view.params.displayed_grad(name)
        np.testing.assert_allclose(shown, first[name] + fresh[name], rtol=1e-5, atol=1e-8)
    # For the seed's tiny step the sum is almost exactly twice the first gradient.
    np.testing.assert_allclose(view.params.displayed_grad("fc2.bias"), 2 * first["fc2.bias"], rtol=0.05)


def test_invalid_spec_shows_an_error_and_keeps_working(panel, qtbot):
    pick_preset(panel, "seed")
    form = panel.form
    with qtbot.waitSignal(form.sig_spec_changed, timeout=60000):
        form.output_act.setCurrentIndex(form.output_act.findData("none"))
    assert form.error.isVisibleTo(panel) and "Sigmoid" in form.error.text()
    pick_preset(panel, "toy-2d")
    assert not form.error.isVisibleTo(panel)


def test_train_a_few_hundred_steps_and_stop_without_blocking(panel, qtbot):
    pick_preset(panel, "toy-2d")
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    train = panel.train
    train.speed.setCurrentIndex(train.speed.count() - 1)  # as fast as possible
    train.steps.setValue(20000)
    probe = LatenessProbe()
    clock = QElapsedTimer()
    clock.start()
    probe.start()
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    assert "Pause" in train.train_button.text()
    qtbot.waitUntil(lambda: train.last_record is not None and train.last_record["step"] >= 300, timeout=60000)
    worst = probe.stop()
    elapsed = clock.elapsed() / 1000.0
    qtbot.mouseClick(train.train_button, Qt.LeftButton)  # pause
    assert "Resume" in train.train_button.text()
    run = train.runs[-1]
    assert len(run.steps) >= 300 and run.steps == sorted(run.steps)
    assert train.last_record["train_acc"] > 0.8
    assert train.boundary_grid.shape == (GRID, GRID)
    assert len(run.items[0].xData) == len(run.steps)  # the full curve (the view may downsample it)
    train.reset()  # stops the thread
    assert not train.is_training() and train.runs == []
    # Generous, and scaled for a loaded machine: training on the GUI thread would leave the probe silent
    # for the whole run (worst ~ elapsed); off the GUI thread it only ever waits for a redraw.
    assert len(probe.lateness) > 10
    assert worst < max(1.0, 0.5 * elapsed), f"GUI thread blocked for {worst:.3f} s of {elapsed:.3f} s"


def test_a_finished_run_stays_dimmed_when_training_again(panel, qtbot):
    pick_preset(panel, "toy-2d")
    train = panel.train
    train.speed.setCurrentIndex(train.speed.count() - 1)
    train.steps.setValue(60)
    with qtbot.waitSignal(train.sig_running_changed, check_params_cb=lambda on: not on, timeout=60000):
        train.start_run()
    assert "finished" in train.status.text()
    with qtbot.waitSignal(panel.form.sig_spec_changed, timeout=60000):
        panel.form.lr.setValue(0.01)
    with qtbot.waitSignal(train.sig_running_changed, check_params_cb=lambda on: not on, timeout=60000):
        train.train_or_pause()
    assert [r.number for r in train.runs] == [1, 2]
    old_pen = train.runs[0].items[0].opts["pen"]
    new_pen = train.runs[1].items[0].opts["pen"]
    assert old_pen.color().alpha() < 128 and new_pen.color().alpha() == 255
    assert "lr 0.01" in train.runs[1].label


def test_training_a_non_2d_network_explains_why_not(panel):
    pick_preset(panel, "seed")
    panel.train.start_run()
    assert not panel.train.is_training()
    assert "input size to 2" in panel.train.status.text()


def test_dataset_controls_regenerate_points(panel):
    train = panel.train
    before = train.data.x_train.clone()
    train.dataset.setCurrentIndex(train.dataset.findData("spiral"))
    assert train.data.name == "spiral" and not np.array_equal(before.numpy(), train.data.x_train.numpy())
    train.count.setValue(100)
    assert len(train.data.x_train) + len(train.data.x_test) == 100


def test_state_round_trip_and_screenshot_setup(panel, qtbot):
    pick_preset(panel, "mlp-50-30-20-3")
    panel.train.dataset.setCurrentIndex(panel.train.dataset.findData("xor"))
    saved = json.loads(json.dumps(panel.workspace.to_json()))  # JSON-able, as the session file needs
    other = NetworkPanel()
    qtbot.addWidget(other)
    other.workspace.load(other.workspace.validate(saved))
    assert other.form.preset_name() == "mlp-50-30-20-3"
    assert other.form.spec() == preset_spec("mlp-50-30-20-3")
    assert other.train.dataset.currentData() == "xor"
    other.prepare_screenshot(preset="seed", step=5)
    assert other.tabs.currentIndex() == ITERATION_TAB and other.iteration.player.step == 5
    for bad in ("not a dict", {"spec": {"hidden": "x"}, "dataset": {"noise": "loud"}}):
        with pytest.raises(ValidationError):
            other.workspace.validate(bad)  # refused whole: nothing is applied
    assert other.form.preset_name() == "seed"
    other.shutdown()
    assert len(panel.menu_actions()) >= 6


def test_menu_actions_have_shortcuts(panel):
    names = {a.text(): a.shortcut().toString() for a in panel.menu_actions()}
    assert names["Train / pause"] == "Ctrl+T" and names["Step forward"] == "Right"


def test_screenshot_without_step_trains_the_toy_preset(panel):
    panel.prepare_screenshot(preset="toy-2d")
    assert panel.tabs.currentIndex() == TRAIN_TAB
    assert panel.train.runs and panel.train.last_record["step"] == 300
    assert panel.train.last_record["train_acc"] >= 0.95


def test_graph_shows_modules_collapsed_and_expands_them(panel):
    pick_preset(panel, "seed")
    graph = panel.iteration.graph
    assert graph is not None and graph.step_count == len(panel.iteration.iteration.trace.forward_order) + len(
        panel.iteration.iteration.trace.backward_order
    )
    scene = graph.graph_scene
    modules = [did for did, info in scene.model.info.items() if info["kind"] == "module"]
    assert len(modules) >= 4  # fc1, relu1, fc2, sigmoid2 (and the loss) folded into cards
    before = len(scene.cards)
    fc1 = next(did for did in modules if scene.model.info[did].get("path") == "fc1")
    assert scene.toggle_module(fc1)
    assert len(scene.cards) > before  # fc1.weight, fc1.bias and the linear op are cards of their own
    # Stepping the player moves the graph's own timeline to the matching event.
    player = panel.iteration.player
    player.go_end()
    assert graph.step == graph.step_count
    player.set_step(1)  # zero_grad: nothing computed yet
    assert graph.step == 0


def test_a_network_that_cannot_take_2d_points_offers_the_toy_preset(panel, qtbot):
    pick_preset(panel, "seed")
    panel.tabs.setCurrentIndex(TRAIN_TAB)
    train = panel.train
    assert not train.train_button.isEnabled()
    assert train.use_toy_button.isVisible() and "cannot classify" in train.status.text()
    qtbot.mouseClick(train.use_toy_button, Qt.LeftButton)
    assert panel.form.preset_name() == "toy-2d"
    assert train.train_button.isEnabled() and not train.use_toy_button.isVisible()


def test_iteration_is_recorded_off_the_gui_thread_and_shown_after_the_signal(panel, qtbot, monkeypatch):
    pick_preset(panel, "seed")
    view = panel.iteration
    gui_thread = threading.get_ident()
    recorded_on = []
    original = NetSession.run_iteration

    def spy(self, *args, **kwargs):
        recorded_on.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(NetSession, "run_iteration", spy)
    view.player.go_end()
    with qtbot.waitSignal(view.sig_recorded, timeout=60000) as blocker:
        view.next_iteration()
        # busy until the signal: nothing shown yet, the player and Next wait
        assert view.is_recording() and "Recording" in view.status.text()
        assert not view.player.isEnabled() and not view.next_button.isEnabled()
        assert view.player.step == view.player.length  # still the first iteration, at its end
    assert recorded_on and gui_thread not in recorded_on
    shown = blocker.args[0]
    assert shown.index == 2 and not view.is_recording()
    assert view.player.isEnabled() and view.next_button.isEnabled()
    assert view.player.step == 0 and view.player.length == len(shown.phases)
    assert "Iteration 2 · step 0" in view.status.text()
    assert view.iteration is shown


def test_a_newer_recording_supersedes_an_older_one(panel, qtbot):
    pick_preset(panel, "seed")
    view = panel.iteration
    shown = []
    view.sig_recorded.connect(shown.append)
    combo = panel.form.preset
    with qtbot.waitSignal(view.sig_busy_changed, check_params_cb=lambda busy: not busy, timeout=60000):
        combo.setCurrentIndex(combo.findData("mlp-50-30-20-3"))
        combo.setCurrentIndex(combo.findData("seed"))
        assert view.is_recording()
    assert len(shown) == 1 and shown[0].index == 1
    assert view.session.spec == preset_spec("seed") and view.iteration is shown[0]
    assert view.params.rowCount() == 4 and view.params.total() == 61


def test_screenshot_setup_waits_for_the_recording(panel):
    panel.prepare_screenshot(preset="mlp-50-30-20-3", step=12)
    view = panel.iteration
    assert not view.is_recording() and view.player.step == 12
    assert view.phase().kind == view._iteration.phases[11].kind
