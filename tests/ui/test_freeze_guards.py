"""Guards of issue 20 item 6 (no freeze over 100 ms) that count work instead of timing it.

The figures themselves come from bench/freeze_bench.py; these tests fail when the expensive thing is back:
an application-wide style sheet (Qt re-polishes every widget on a switch), a file write on the GUI thread.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.ui.common import theme as themes


@pytest.fixture
def light_after():
    from PySide6.QtWidgets import QApplication

    yield QApplication.instance()
    themes.apply_theme(QApplication.instance(), "light")



def _window_with_learn(qtbot, tmp_path):
    """A window (nothing saved) whose Expression panel has its first result, and its built Learn panel."""
    from explorer.ui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(window)
    panel = window.panel("expression")
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60_000)
    window.learn.ensure_built()
    return window, panel, window.learn

def test_a_theme_switch_is_a_palette_change_without_an_application_style_sheet(qtbot, tmp_path, light_after):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QLabel

    from explorer.ui.main_window import MainWindow

    app = light_after
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(window)
    # a label whose sheet sets only its font: its text must follow the palette through the switch
    mono = QLabel("x", window)
    mono.setStyleSheet("font-family: monospace;")
    window.show()
    qtbot.waitExposed(window)
    for name in ("dark", "light", "dark"):
        window.set_theme(name)
        theme = themes.get_theme(name)
        assert app.styleSheet() == ""  # no re-polish of every widget of the app
        assert app.palette().color(QPalette.Window).name() == theme["window"]
        assert app.palette().color(QPalette.Disabled, QPalette.ButtonText).name() == theme["disabled_text"]
        # a label with a sheet takes part in the palette's propagation (no visit of every sheet of the
        # app): the colour reaches it with the switch's events, before anything is painted
        qtbot.waitUntil(lambda text=theme["text"]: mono.palette().color(QPalette.WindowText).name() == text)


def test_a_run_end_writes_its_files_off_the_gui_thread_and_the_close_waits_for_them(qtbot, monkeypatch):
    import threading

    from explorer.core import files
    from explorer.core.workspaces import pretrain as pretrain_ws
    from explorer.ui.pretrain.panel import PretrainPanel

    panel = PretrainPanel()
    qtbot.addWidget(panel)
    workspace = panel.workspace
    workspace.writer = files.OrderedWriter("explorer-run-files", make_folders=False)  # not the panel's yet
    run = workspace.new_run(panel.form.config_dict(), panel.form.settings_dict(), None)
    assert workspace.flush_files(60)
    threads: list[str] = []
    release = threading.Event()
    real = files.write_atomic

    def write(path, data):
        threads.append(threading.current_thread().name)
        release.wait(60)  # a slow disk: the GUI thread must not be the one waiting
        return real(path, data)

    monkeypatch.setattr(files, "write_atomic", write)
    run.add({"type": "step", "step": 1, "loss": 2.5, "lr": 0.001, "grad_norm": 1.0})
    workspace.finish_run(run.run_id, "done")  # what the panel calls when the process reports the end
    assert run.status == "done"  # the model changed at once
    assert workspace.writer.pending() >= 2  # run.json and metrics.csv, queued
    release.set()
    panel.shutdown(wait_s=60)  # the window's close: the queued files are written before it returns
    assert workspace.writer.pending() == 0
    assert threads and threading.main_thread().name not in threads
    saved = (pretrain_ws.run_folder(run.run_id) / pretrain_ws.RUN_JSON).read_text()
    assert '"done"' in saved


def test_a_lesson_step_draws_the_expression_inspector_once(qtbot, tmp_path, monkeypatch):
    from explorer.ui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(window)
    panel = window.panel("expression")
    learn = window.learn
    learn.ensure_built()
    with qtbot.waitSignal(learn.sig_step_shown, timeout=60_000):
        learn.open_step(1, 0)  # lesson 2 (the chain rule) sets its program, computes it and moves the player
    assert panel.result is not None and panel.result.ok
    drawn: list[int] = []
    real = panel.inspector.set_summary
    monkeypatch.setattr(panel.inspector, "set_summary", lambda *a, **k: drawn.append(1) or real(*a, **k))
    for step in range(1, len(learn.catalog.lessons[1].steps)):
        with qtbot.waitSignal(learn.sig_step_shown, timeout=60_000):
            learn.open_step(1, step)
        drawn.clear()
        with qtbot.waitSignal(learn.sig_step_shown, timeout=60_000):
            learn.open_step(1, step)  # again: the panel's own computations are settled by now
        assert len(drawn) <= 1, (step, len(drawn))
    window.shutdown_panels()


def test_a_lesson_step_draws_the_expression_workspace_once_however_many_programs_it_computes(
        qtbot, tmp_path, monkeypatch):
    """The step's actions compute up to three programs and move the player in one GUI-thread turn: the
    graph is rebuilt and the loss plot redrawn once, for the last result, and what is shown is where the
    workspace ended (graph, player, status line)."""
    window, panel, learn = _window_with_learn(qtbot, tmp_path)
    ws = window.workspaces.expression
    counts = {"computed": 0, "set_trace": 0, "show_losses": 0}
    ws.events.computed.connect(lambda _result: counts.__setitem__("computed", counts["computed"] + 1))
    for name, owner in (("set_trace", panel.graph), ("show_losses", panel.learning)):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _real=real, _name=name, **k: (
            counts.__setitem__(_name, counts[_name] + 1), _real(*a, **k))[1])
    most = 0
    for lesson, step in ((0, 0), (1, 1), (0, 0), (2, 2)):  # from another lesson: its steps up to this one
        for key in counts:
            counts[key] = 0
        with qtbot.waitSignal(learn.sig_step_shown, timeout=60_000):
            learn.open_step(lesson, step)
        most = max(most, counts["computed"])
        assert counts["set_trace"] <= 1 and counts["show_losses"] <= 1, (lesson, step, counts)
        assert panel.graph.graph_scene.trace is ws.result.trace
        assert panel.player.step == ws.step
        assert panel.status.text() == ws.timeline.status(ws.step)
    assert most >= 2  # a step that computed several programs drew the last one only
    window.shutdown_panels()


def test_a_run_end_is_polled_for_and_reported_only_once_the_child_is_gone(qtbot, monkeypatch):
    """The end of a run: no blocking join of the child on the GUI thread, and `is_running()` stays true
    (so no window sees the run as ended while the child still holds its folder) until it is gone."""
    import threading

    from explorer.ui.pretrain import process as proc

    teardown = threading.Event()  # the child's interpreter winding down after its "exit"

    def child(config, settings, corpus, checkpoint, commands, records, threads, resume):
        records.put([{"type": "done", "message": ""}, {"type": "exit"}])
        teardown.wait(60)

    monkeypatch.setattr(proc, "run_training", child)
    bridge = proc.TrainProcess(poll_ms=10, backend="thread")
    ended: list[tuple[dict, bool]] = []
    bridge.sig_finished.connect(lambda result: ended.append((result, teardown.is_set())))
    with qtbot.waitSignal(bridge.sig_records, timeout=60_000):
        bridge.start({}, {}, "unused.pt")
    for _ in range(5):  # the event loop turns (polls) while the child is still winding down
        qtbot.wait(20)
    assert bridge.is_running() and not ended  # not reported while the child lives
    with qtbot.waitSignal(bridge.sig_finished, timeout=60_000):
        teardown.set()
    assert ended == [({"status": "done", "message": "", "checkpoint": None}, True)]
    assert not bridge.is_running()
    assert bridge.blocking_joins == 0  # nothing was joined while alive on the GUI thread


@pytest.mark.parametrize("lesson,step", [(1, 1), (2, 5)], ids=["2.2-load-example", "3.6-select-w"])
def test_a_lesson_step_traces_its_programs_on_the_worker_with_the_same_outcome(qtbot, tmp_path, monkeypatch,
                                                                              lesson, step):
    """Opening an expression step (2.2 loads the seed example and moves the player; 3.6 selects w, whose
    gradient check the inspector shows): no parse, trace or gradient check on the GUI thread, and the
    workspace ends where the same actions run directly leave it."""
    import threading

    from explorer.core import lessons
    from explorer.core.workspaces import expression as ew
    from explorer.core.workspaces.session import Workspaces
    window, panel, learn = _window_with_learn(qtbot, tmp_path)
    threads: list[str] = []
    real = ew.compute

    def compute(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    checked: list[str] = []
    real_check = ew.leaf_comparison

    def leaf_comparison(result):
        checked.append(threading.current_thread().name)
        return real_check(result)

    shown: list = []
    real_show = panel.inspector.show_node

    def show_node(*args, **kwargs):
        shown.append(kwargs.get("check"))
        return real_show(*args, **kwargs)

    monkeypatch.setattr(ew, "compute", compute)
    monkeypatch.setattr(ew, "leaf_comparison", leaf_comparison)
    monkeypatch.setattr(panel.inspector, "show_node", show_node)
    with qtbot.waitSignal(learn.sig_step_shown, timeout=60_000):
        learn.open_step(lesson, step)
        assert learn.is_opening()  # the step waits for the Worker
    assert threads and threading.main_thread().name not in threads, threads
    assert threading.main_thread().name not in checked, checked
    if lesson == 2:  # w is selected with its gradient known: its check is on screen, made on the Worker
        assert checked and shown and shown[-1] is not None and "numeric" in shown[-1]
    ws = window.workspaces.expression
    direct = Workspaces()  # the same step's actions run directly, on the GUI thread
    lessons.open_step(learn.catalog.lessons[lesson], step, direct)
    # (the panel's player writes "at the end" as step None, where the headless run keeps the number)
    assert ws.state.model_dump(exclude={"step"}) == direct.expression.state.model_dump(exclude={"step"})
    assert ws.step == direct.expression.step and ws.status() == direct.expression.status()
    assert ws.result.ok and ws.result.source == direct.expression.result.source
    assert list(ws.result.trace.nodes) == list(direct.expression.result.trace.nodes)
    assert panel.player.step == ws.step
    window.shutdown_panels()


def _painted_window(qtbot, tmp_path):
    from explorer.ui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), persist=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.is_painted, timeout=60000)
    qtbot.waitUntil(lambda: "expression" in window.panels, timeout=120000)
    return window


@pytest.mark.parametrize("key, class_name, pieces", [("network", "NetworkPanel", 12),
                                                       ("pretrain", "PretrainPanel", 9)])
def test_the_first_visit_of_a_workspace_builds_its_panel_over_many_event_loop_turns(
        qtbot, tmp_path, key, class_name, pieces):
    from PySide6.QtWidgets import QWidget

    window = _painted_window(qtbot, tmp_path)
    window.show_workspace(key)

    def building():
        found = [w for w in window.findChildren(QWidget) if type(w).__name__ == class_name]
        return found[0] if found else None

    qtbot.waitUntil(lambda: building() is not None, timeout=120000)
    panel = building()
    if not panel.building.is_done():
        assert window.panel(key, create=False) is None  # installed only when whole
    qtbot.waitUntil(lambda: key in window.panels, timeout=120000)
    assert window.panels[key] is panel
    # one plot or tab per turn: the construction never ran in one piece on the user's path
    assert panel.building.turns >= pieces
    assert panel.building.turns == panel.building.count


def test_asking_for_a_panel_while_it_is_built_in_slices_completes_it_at_once(qtbot, tmp_path):
    from PySide6.QtWidgets import QWidget

    from explorer.ui.network.panel import NetworkPanel

    window = _painted_window(qtbot, tmp_path)
    window.show_workspace("network")
    qtbot.waitUntil(lambda: window.findChild(NetworkPanel) is not None
                    and window.findChild(NetworkPanel).building.count >= 1, timeout=120000)
    building = window.findChild(NetworkPanel)
    assert not building.building.is_done()
    panel = window.panel("network")  # a test's or a script's way: the panel whole, now
    assert panel is building and window.panels["network"] is panel
    assert panel.building.is_done() and panel.building.turns < panel.building.count
    assert panel.findChild(QWidget, "networkLossPlot") is not None
    assert panel.findChild(QWidget, "lossLandscape") is not None
    # the constructor without `sliced` (tests, the standalone window) is complete as well
    alone = NetworkPanel()
    qtbot.addWidget(alone)
    assert alone.building.is_done() and alone.building.turns == 0
    assert alone.findChild(QWidget, "layerGradPlot") is not None
    alone.shutdown()


def test_a_theme_switch_recolours_hidden_workspaces_in_later_turns(qtbot, tmp_path, light_after):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    window = _painted_window(qtbot, tmp_path)
    panels = {key: window.panel(key) for key in ("expression", "network", "pretrain")}
    window.show_workspace("expression")
    calls: list[str] = []
    for key, panel in panels.items():
        original = panel.set_theme
        panel.set_theme = lambda theme, key=key, original=original: (calls.append(key), original(theme))
    window.set_theme("dark")
    assert calls == ["expression"]  # the visible one in the switch's turn, the hidden ones later
    dark_window = themes.get_theme("dark")["window"]
    assert QApplication.instance().palette().color(QPalette.Window).name() == dark_window
    qtbot.waitUntil(lambda: len(calls) == 3, timeout=30000)
    assert sorted(calls[1:]) == ["network", "pretrain"]
    calls.clear()
    window.set_theme("light")
    assert calls == ["expression"]
    assert window.panel("pretrain") is panels["pretrain"] and "pretrain" in calls  # asked for: recoloured now
    window.show_workspace("network")  # shown: recoloured before it is painted
    assert sorted(calls) == ["expression", "network", "pretrain"]
    qtbot.wait(50)
    assert len(calls) == 3  # each once


def test_closing_the_window_while_a_panel_is_built_in_slices_finishes_and_stops_it(qtbot, tmp_path):
    from explorer.ui.network.panel import NetworkPanel

    window = _painted_window(qtbot, tmp_path)
    window.show_workspace("network")
    qtbot.waitUntil(lambda: window.findChild(NetworkPanel) is not None, timeout=120000)
    panel = window.findChild(NetworkPanel)
    stopped: list[bool] = []
    original = panel.shutdown
    panel.shutdown = lambda: (stopped.append(True), original())
    window.close()
    assert panel.building.is_done() and window.panels.get("network") is panel  # owned by the window
    assert stopped  # and stopped with the others


def _theme_action(window, name: str):
    from PySide6.QtGui import QAction

    from explorer.ui.common import actions

    wanted = f"app.theme_{name}"
    return next(a for a in window.findChildren(QAction) if a.property(actions.ACTION_ID) == wanted)


class _FrozenPaints:
    """Counts the paint events of `window`'s widgets while its updates are off (none may reach it) and
    of the window itself while they are on (`after`: the repaint in the new theme must come)."""

    def __init__(self, window):
        from PySide6.QtCore import QEvent, QObject
        from PySide6.QtWidgets import QApplication, QWidget

        outer = self
        self.count = 0
        self.after = 0

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Paint and isinstance(obj, QWidget) and obj.window() is window:
                    if not window.updatesEnabled():
                        outer.count += 1
                    elif obj is window:
                        outer.after += 1
                return False

        self._filter = Filter()
        QApplication.instance().installEventFilter(self._filter)

    def stop(self) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.instance().removeEventFilter(self._filter)


@pytest.mark.slow
def test_the_view_menu_switches_the_theme_over_several_turns_behind_the_old_look(
        qtbot, tmp_path, light_after, monkeypatch):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    app = light_after
    window = _painted_window(qtbot, tmp_path)
    panels = {key: window.panel(key) for key in ("expression", "network", "pretrain")}
    window.show_workspace("expression")
    qtbot.waitUntil(lambda: window.panels["expression"].isVisible())
    themes.apply_theme(app, "light")  # the app's start-up apply (sheets take part in propagation from here)
    calls: list[str] = []
    for key, panel in panels.items():
        original = panel.set_theme
        panel.set_theme = lambda theme, key=key, original=original: (calls.append(key), original(theme))
    scans: list[int] = []  # a visit of every widget of the app (2,400 of them wrapped for Python)
    all_widgets = QApplication.allWidgets
    monkeypatch.setattr(QApplication, "allWidgets", staticmethod(lambda: scans.append(1) or all_widgets()))
    steps = len(themes.theme_steps(app, "dark"))
    assert steps == 1 + len(themes.FRAMED_INPUTS)
    ran: list[int] = []
    real_steps = themes.theme_steps
    monkeypatch.setattr(themes, "theme_steps", lambda a, name: [
        (lambda step=step, i=i: (ran.append(i), step())) for i, step in enumerate(real_steps(a, name))])
    paints = _FrozenPaints(window)
    try:
        for name in ("dark", "light"):
            calls.clear()
            ran.clear()
            _theme_action(window, name).trigger()
            # the click's turn: one step, the window keeps its old look (updates off), nothing else yet
            assert ran == [0] and calls == [] and not window.updatesEnabled()
            assert app.palette().color(QPalette.Window).name() == themes.get_theme(name)["window"]
            paints.after = 0
            qtbot.waitUntil(lambda: window.updatesEnabled(), timeout=30000)
            assert ran == list(range(steps)) and calls[:1] == ["expression"]
            qtbot.waitUntil(lambda: paints.after > 0, timeout=30000)  # and the window repaints, whole
            qtbot.waitUntil(lambda: len(calls) == 3, timeout=30000)
            assert sorted(calls) == ["expression", "network", "pretrain"]  # each once
    finally:
        paints.stop()
    assert paints.count == 0  # nothing painted half recoloured
    assert scans == []  # no switch visits every widget of the app (sheets follow the palette)


def test_a_staged_switch_runs_one_step_per_turn_and_a_direct_one_all_at_once(qtbot):
    from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QVBoxLayout, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    QVBoxLayout(window).addWidget(QGraphicsView(QGraphicsScene(0, 0, 100, 500)))
    window.resize(300, 450)  # a 450-px view: drawn ahead in 3 strips
    window.show()
    qtbot.waitExposed(window)
    done: list[str] = []
    switch = themes.DeferredRecolour(window, done.append)
    steps = [lambda i=i: done.append(f"step {i}") for i in range(3)]
    switch.switch(["a", "b", "c"], "b", before=steps, after=[lambda: done.append("after")], staged=True)
    assert done == ["step 0"] and not window.updatesEnabled()
    qtbot.waitUntil(lambda: done[-1:] == ["c"], timeout=10000)
    assert done == ["step 0", "step 1", "step 2", "b", "after", "a", "c"] and window.updatesEnabled()
    # 4 steps, the warming's queueing and at least 2 strips of the view in turns of their own
    assert switch.step_turns >= 4 + 1 + 2 and switch.later == 2
    done.clear()
    switch.switch(["a", "b"], "a", before=steps[:1])  # a script's switch: all in this turn but the hidden
    assert done == ["step 0", "a"] and window.updatesEnabled()
    qtbot.waitUntil(lambda: done[-1:] == ["b"], timeout=10000)
    done.clear()
    switch.switch(["a", "b"], "a", before=steps, staged=True)
    switch.flush("b")  # a panel about to be shown: the staged switch completes first, then it
    assert done == ["step 0", "step 1", "step 2", "a", "b"] and window.updatesEnabled()


def test_a_staged_switch_whose_step_raises_still_runs_the_rest_and_lets_the_window_repaint(qtbot):
    from PySide6.QtWidgets import QWidget

    window = QWidget()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    done: list[str] = []
    switch = themes.DeferredRecolour(window, done.append)

    def broken() -> None:
        raise ValueError("a panel's set_theme failed")

    with qtbot.capture_exceptions() as raised:
        steps = [lambda: done.append("palette"), broken, lambda: done.append("inputs")]
        switch.switch(["a"], "a", before=steps, staged=True)
        qtbot.waitUntil(lambda: window.updatesEnabled(), timeout=10000)
    assert done == ["palette", "inputs", "a"] and not switch.steps
    assert [kind.__name__ for kind, *_ in raised] == ["ValueError"]
