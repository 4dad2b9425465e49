"""Predict, then reveal: the inline field under the expression player that asks for the next gradient.

The logic (which gradient comes next, the tolerance, the score) is explorer.core.autograd.predict; this
widget shows the question, reads the answer and says when the player may reveal the step.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from explorer.core.autograd.predict import PredictGame, Question
from explorer.ui.common import actions


class PredictBar(QWidget):
    """A toggle, and while a question is pending: its prompt, an answer field, Check and Skip, the score."""

    sig_reveal = Signal(int)
    """The pending question was answered or skipped: the player may show this step now."""

    sig_toggled = Signal(bool)
    """Predict mode was switched on or off (by the check box or the menu action)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("predictBar")
        self.game = PredictGame()
        self.pending: Question | None = None
        self.toggle = QCheckBox("Predict, then reveal")
        self.toggle.setObjectName("predictToggle")
        self.toggle.setToolTip(actions.tooltip("expression.predict"))
        self.toggle.toggled.connect(self._on_toggled)
        self.score = QLabel("")
        self.score.setObjectName("predictScore")
        self.score.setToolTip("Predictions right of the gradients asked so far (a skipped one counts as "
                              "asked)")
        self.prompt = QLabel("")
        self.prompt.setObjectName("predictPrompt")
        self.answer = QLineEdit()
        self.answer.setObjectName("predictAnswer")
        self.answer.setPlaceholderText("e.g. -0.09")
        self.answer.setMaximumWidth(160)
        self.answer.returnPressed.connect(self.check)
        self.check_button = QPushButton("Check")
        self.check_button.setObjectName("predictCheck")
        self.check_button.setToolTip("Compare your number with torch's gradient (within 1 %), then reveal "
                                     "the step (Enter)")
        self.check_button.clicked.connect(self.check)
        self.skip_button = QPushButton("Skip")
        self.skip_button.setObjectName("predictSkip")
        self.skip_button.setToolTip("Reveal the step without a prediction (counts as asked, not right)")
        self.skip_button.clicked.connect(self.skip)
        self.feedback = QLabel("")
        self.feedback.setObjectName("predictFeedback")
        self.feedback.setWordWrap(True)
        self.feedback.setTextInteractionFlags(Qt.TextSelectableByMouse)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toggle)
        top.addWidget(self.prompt)
        top.addWidget(self.answer)
        top.addWidget(self.check_button)
        top.addWidget(self.skip_button)
        top.addStretch(1)
        top.addWidget(self.score)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.addLayout(top)
        layout.addWidget(self.feedback)
        self._sync()

    # -- public API ------------------------------------------------------------------------

    def is_on(self) -> bool:
        """True while the player asks before each gradient."""
        return self.toggle.isChecked()

    def set_on(self, on: bool) -> None:
        """Switch predict mode on (a fresh score) or off."""
        self.toggle.setChecked(bool(on))

    def set_timeline(self, timeline) -> None:
        """The player shows a new timeline: a pending question of the old one is dropped."""
        if timeline is not self.game.timeline:
            self.pending = None
        self.game.set_timeline(timeline)
        self._sync()

    def stop_before(self, current: int, target: int) -> int:
        """How far a player move from `current` to `target` may go: `target`, or one step before the first
        unanswered gradient, which is then asked (the field takes the keyboard)."""
        if not self.is_on():
            return target
        question = self.game.stop_before(current, target)
        if question is None:
            return target
        self.ask(question)
        return question.step - 1

    def ask(self, question: Question) -> None:
        """Show the question and give its field the keyboard."""
        self.pending = question
        self.answer.clear()
        ask = f"Predict {question.label}, the gradient this backward step reveals, then press Enter."
        last = self.feedback.text() if self.feedback.text().startswith(("✓", "✗", "Revealed")) else ""
        self.feedback.setText(f"{last}   Next: {ask[0].lower()}{ask[1:]}" if last else ask)
        self._sync()
        self.answer.setFocus(Qt.OtherFocusReason)

    def check(self) -> None:
        """Check the typed answer; a right or wrong number reveals the step, a non-number asks again."""
        if self.pending is None:
            return
        try:
            verdict = self.game.answer(self.pending, self.answer.text())
        except ValueError as exc:
            self.feedback.setText(f"⚠ {exc}")
            return
        self._finish(verdict.message)

    def skip(self) -> None:
        """Reveal the pending step without a prediction."""
        if self.pending is not None:
            self._finish(self.game.skip(self.pending).message)

    # -- private -----------------------------------------------------------------------------

    def _finish(self, message: str) -> None:
        step = self.pending.step
        self.pending = None
        self.feedback.setText(message)
        self._sync()
        self.sig_reveal.emit(step)

    def _on_toggled(self, on: bool) -> None:
        self.game.reset()
        self.pending = None
        self.feedback.setText("Step the player forward: before each gradient you predict it."
                              if on else "")
        self._sync()
        self.sig_toggled.emit(on)

    def _sync(self) -> None:
        on, asking = self.is_on(), self.pending is not None
        self.prompt.setText(f"{self.pending.label} = ?" if asking else "")
        for w in (self.prompt, self.answer, self.check_button, self.skip_button):
            w.setVisible(on and asking)
        self.score.setVisible(on)
        self.score.setText(f"Score: {self.game.score_text}")
        self.feedback.setVisible(on and bool(self.feedback.text()))
