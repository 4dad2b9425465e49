"""The Learn panel (guided lessons) and "Predict, then reveal" in the expression player, driven as a user."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from explorer.core.autograd.predict import questions
from explorer.core.lang.examples import SEED_SOURCE
from explorer.ui.expression.panel import ExpressionPanel

WAIT = 20000


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
