"""The Learn panel (guided lessons) and "Predict, then reveal" in the expression player, driven as a user."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QPushButton, QTextBrowser, QTreeWidget, QWidget

from explorer.core.autograd.predict import questions
from explorer.core.lang.examples import SEED_SOURCE
from explorer.ui.expression.panel import ExpressionPanel

WAIT = 60000  # ms: a bound for a signal on a fully loaded machine, never a timing assertion


@pytest.fixture
def expression(qtbot):
    p = ExpressionPanel(source=SEED_SOURCE)
    qtbot.addWidget(p)
    p.resize(1400, 800)
    p.show()
    qtbot.waitUntil(lambda: p.result is not None, timeout=WAIT)
    yield p
    p.shutdown()


def test_predict_then_reveal_asks_before_each_gradient_and_keeps_score(qtbot, expression):
    panel = expression
    bar = panel.predict
    action = next(a for a in panel.menu_actions() if a.property("actionId") == "expression.predict")
    assert action.isCheckable() and not action.isChecked()
    assert not bar.answer.isVisible()
    action.trigger()  # the menu action and the check box are one toggle
    assert bar.toggle.isChecked() and bar.is_on()
    timeline = panel.workspace.timeline
    assert panel.workspace.step == timeline.forward_length  # back to where the first gradient is asked
    expected = questions(timeline)
    assert len(expected) == 4
    # End tries to reveal everything: the player stops before the first gradient and asks for it
    panel.player.go_end()
    assert panel.workspace.step == expected[0].step - 1
    assert bar.answer.isVisible() and bar.prompt.text() == "dL/da = ?"
    assert not timeline.grad_known(expected[0].node_id, panel.workspace.step)
    # a wrong prediction is revealed and scored
    qtbot.keyClicks(bar.answer, "0.5")
    qtbot.keyClick(bar.answer, Qt.Key_Return)
    assert panel.workspace.step == expected[0].step
    assert "Not quite" in bar.feedback.text() and "-1.0889" in bar.feedback.text()
    assert bar.score.text() == "Score: 0 of 1"
    # the next step forward asks the next gradient; a non-number asks again without counting
    panel.player.step_forward()
    assert panel.workspace.step == expected[1].step - 1 and bar.prompt.text() == "dL/dz = ?"
    qtbot.keyClicks(bar.answer, "abc")
    qtbot.mouseClick(bar.check_button, Qt.LeftButton)
    assert "not a number" in bar.feedback.text() and panel.workspace.step == expected[1].step - 1
    bar.answer.clear()
    qtbot.keyClicks(bar.answer, "-0.0817")
    qtbot.keyClick(bar.answer, Qt.Key_Return)
    assert panel.workspace.step == expected[1].step and "Right" in bar.feedback.text()
    panel.player.go_end()
    qtbot.mouseClick(bar.skip_button, Qt.LeftButton)
    assert panel.workspace.step == expected[2].step
    panel.player.go_end()
    assert bar.prompt.text() == "dL/dw = ?"
    qtbot.keyClicks(bar.answer, "-0.0898")
    qtbot.keyClick(bar.answer, Qt.Key_Return)
    assert bar.score.text() == "Score: 2 of 4"
    panel.player.go_end()  # nothing left to ask: the player reaches the end
    assert panel.workspace.step == timeline.length and not bar.answer.isVisible()
    # switched off, the player steps freely again
    bar.toggle.setChecked(False)
    assert not action.isChecked()
    panel.player.reset()
    panel.player.go_end()
    assert panel.workspace.step == timeline.length


# -- the Learn panel ---------------------------------------------------------------------------------


def _window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.ui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.resize(1500, 900)
    with qtbot.waitSignal(window.sig_first_painted, timeout=WAIT):  # its slots (the first-start offer) ran
        window.show()
    return window


def _close(window):
    window.close()
    window.shutdown_panels()


def _learn(qtbot, window):
    from PySide6.QtWidgets import QDockWidget

    dock = window.findChild(QDockWidget, "lessonPanel")
    assert dock is window.learn
    dock.ensure_built()
    return dock


def _item_text(dock, lesson_index, step_index=None):
    top = dock.findChild(QTreeWidget, "lessonList").topLevelItem(lesson_index)
    return top.text(0) if step_index is None else top.child(step_index).text(0)


def _wrong_answer(step, exp) -> str:
    if step.exercise.kind == "number":
        return str(float(exp.value) * 3 + 7)
    if step.exercise.kind == "shape":
        return str(tuple(d + 1 for d in exp.value) or (9,))
    return next(c for c in step.exercise.choices if c != exp.text)


def _right_answer(step, exp) -> str:
    if step.exercise.kind == "number":
        return repr(float(exp.value))
    if step.exercise.kind == "shape":
        return str(tuple(exp.value))
    return exp.text


def _opened(qtbot, dock) -> None:
    """Wait for the step just opened: an expression step traces its programs on the Worker first."""
    qtbot.waitUntil(lambda: not dock.is_opening(), timeout=WAIT)


def _answer(qtbot, dock, text):
    from PySide6.QtWidgets import QComboBox, QLineEdit, QWidget

    widget = dock.findChild(QWidget, "lessonAnswer")
    assert widget is not None and widget.isVisible()
    if isinstance(widget, QComboBox):
        widget.setCurrentIndex(widget.findText(text))
        qtbot.keyClick(widget, Qt.Key_Return)  # Enter checks on the chooser too
    else:
        assert isinstance(widget, QLineEdit)
        widget.clear()
        qtbot.keyClicks(widget, text)
        qtbot.keyClick(widget, Qt.Key_Return)  # Enter checks


def _feedback(dock) -> str:
    return dock.findChild(QLabel, "lessonFeedback").text()


def test_a_whole_lesson_through_the_widgets_and_the_ticks_survive_a_restart(qtbot, tmp_path):
    from explorer.core.lessons import expected

    window = _window(qtbot, tmp_path)
    dock = _learn(qtbot, window)
    assert dock.isVisible()  # a first start offers the lessons
    assert "Welcome" in dock.findChild(QTextBrowser, "lessonText").toPlainText()
    tree = dock.findChild(QTreeWidget, "lessonList")
    lessons = dock.catalog.lessons
    assert lessons and tree.topLevelItemCount() == len(lessons)
    index = next(i for i, lesson in enumerate(lessons) if lesson.id == "gradients-three-ways")
    lesson = lessons[index]
    # choose the lesson's first step in the list
    first = tree.topLevelItem(index).child(0)
    tree.scrollToItem(first)
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(first).center())
    _opened(qtbot, dock)
    assert dock.step is lesson.steps[0] and window.current_key() == lesson.steps[0].workspace
    next_button = dock.findChild(QPushButton, "lessonNext")
    exercises = figures = 0
    for j, step in enumerate(lesson.steps):
        assert dock.step is step, (j, dock.step.id)
        assert not _item_text(dock, index, j).startswith("✓")
        figure = dock.findChild(QWidget, "lessonFigure")
        assert figure.isVisible() == bool(step.figure)
        if step.figure:  # the finite-difference error against the step size, drawn from the state
            figures += 1
            xs, ys = dock._figure_curve.getData()
            assert len(xs) == len(ys) > 5
        if step.exercise is not None:
            exercises += 1
            if step.exercise.kind == "do":
                qtbot.mouseClick(dock.findChild(QPushButton, "lessonCheck"), Qt.LeftButton)
                assert "Not yet" in _feedback(dock) and "Hint" in _feedback(dock)
                panel = window.panel("expression")  # this lesson's "do" is: step the player to the end
                qtbot.waitUntil(lambda p=panel: p.player.length > 0, timeout=WAIT)
                panel.graph.setFocus()
                qtbot.keyClick(panel.graph, Qt.Key_End)
                qtbot.mouseClick(dock.findChild(QPushButton, "lessonCheck"), Qt.LeftButton)
            else:
                exp = expected(step, window.workspaces)
                _answer(qtbot, dock, _wrong_answer(step, exp))
                assert "Hint" in _feedback(dock), _feedback(dock)
                assert not _item_text(dock, index, j).startswith("✓")
                _answer(qtbot, dock, _right_answer(step, exp))
            assert _feedback(dock).startswith("✓"), _feedback(dock)
            assert _item_text(dock, index, j).startswith("✓")
        qtbot.mouseClick(next_button, Qt.LeftButton)
        _opened(qtbot, dock)
    assert exercises >= 3 and figures == 1
    # Next on the last step shows the lesson-complete page; the next lesson starts only on a second click
    assert dock.lesson is None and dock.complete_index == index
    assert "Lesson complete" in dock.findChild(QLabel, "lessonStepTitle").text()
    assert next_button.text().startswith("Next lesson")
    qtbot.mouseClick(next_button, Qt.LeftButton)
    _opened(qtbot, dock)
    assert dock.lesson is lessons[index + 1] and dock.step_index == 0
    assert _item_text(dock, index).startswith("✓")
    assert f"({len(lesson.steps)}/{len(lesson.steps)})" in _item_text(dock, index)
    _close(window)

    # a restart with the same data folder shows the same ticks; the lessons are not offered again
    window = _window(qtbot, tmp_path)
    dock = _learn(qtbot, window)
    assert dock.isVisible()  # it was open when the window closed: the window state restores it
    for j in range(len(lesson.steps)):
        assert _item_text(dock, index, j).startswith("✓")
    _close(window)


def test_the_first_start_offers_the_lessons_once_and_f2_toggles_them(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    dock = window.learn
    assert dock.isVisible()
    action = next(a for a in window.findChildren(QAction) if a.property("actionId") == "app.learn")
    assert action.isChecked() and action.shortcut().toString() == "F2"
    assert action in window._help_menu.actions()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_F2)
    assert dock.isHidden() and not action.isChecked()
    _close(window)
    window = _window(qtbot, tmp_path)  # declined (hidden) on the first start: not offered again
    dock = window.learn
    assert dock.isHidden()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_F2)
    assert dock.isVisible() and action is not None
    qtbot.keyClick(window, Qt.Key_F2)
    assert dock.isHidden()
    _close(window)


def test_bad_lesson_files_are_listed_and_a_failing_action_shows_in_the_panel(qtbot, tmp_path, monkeypatch):
    from explorer.core import lessons as core

    catalog = core.load_catalog()
    catalog.problems.append(core.LessonProblem("broken.toml", "steps[0].title: field required"))
    monkeypatch.setattr(core, "load_catalog", lambda folder=None: catalog)

    def refuse(lesson, index, workspaces, after=None):
        raise core.LessonError("load_example: no example 'nope'")

    monkeypatch.setattr(core, "open_step", refuse)
    window = _window(qtbot, tmp_path)
    dock = _learn(qtbot, window)
    problems = dock.findChild(QLabel, "lessonProblems")
    assert problems.isVisible() and "broken.toml: steps[0].title: field required" in problems.text()
    with qtbot.waitSignal(dock.sig_step_shown, timeout=WAIT):
        dock.open_step(0, 0)
    error = dock.findChild(QLabel, "lessonError")
    assert error.isVisible() and "no example 'nope'" in error.text()
    assert dock.findChild(QTextBrowser, "lessonText").toPlainText().strip()  # the text still shows
    _close(window)


def test_the_lesson_screenshot_writes_a_png_and_refuses_an_unknown_step_in_one_line(qtbot, tmp_path, capsys):
    from PySide6.QtGui import QImage

    from explorer.ui.learn import screenshot

    out = tmp_path / "lesson.png"
    assert screenshot.main([str(out)]) == 0
    image = QImage(str(out))
    assert image.width() == 1600 and image.height() == 900
    capsys.readouterr()
    assert screenshot.main([str(tmp_path / "x.png"), "--step", "no-such-step"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no-such-step" in err[0]
    assert not (tmp_path / "x.png").exists()


def test_a_lesson_offers_back_the_work_it_changed_when_it_is_left(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    dock = _learn(qtbot, window)
    window.workspaces.network.set_preset("toy-2d")  # the user's own network
    lessons = dock.catalog.lessons
    index = next(i for i, lesson in enumerate(lessons) if lesson.id == "backprop-network")
    dock.open_step(index, 0)
    assert window.workspaces.network.state.preset == "seed"
    bar = dock.findChild(QWidget, "lessonRestoreBar")
    assert not bar.isVisible()  # inside the lesson: nothing to offer yet
    dock.show_complete(index)  # the lesson ends
    assert bar.isVisible() and "Network" in dock.findChild(QLabel, "lessonRestoreNote").text()
    qtbot.mouseClick(dock.findChild(QPushButton, "lessonRestoreWork"), Qt.LeftButton)
    assert window.workspaces.network.state.preset == "toy-2d"
    assert not bar.isVisible() and "Network" in _feedback(dock)
    # leaving a lesson for another one offers it too
    window.workspaces.network.set_preset("mlp-50-30-20-3")
    dock.open_step(index, 0)
    with qtbot.waitSignal(dock.sig_step_shown, timeout=WAIT):
        dock.open_step(0, 0)
    assert bar.isVisible()
    qtbot.mouseClick(dock.findChild(QPushButton, "lessonKeepState"), Qt.LeftButton)
    assert not bar.isVisible() and window.workspaces.network.state.preset == "seed"
    _close(window)
