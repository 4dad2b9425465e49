"""Predict, then reveal: before a backward step shows a gradient, the student says what it will be.

Qt-free. `question_at(timeline, k)` is the gradient that step k of a Timeline reveals (when it is one new
number); `parse_answer` reads the student's text (never evaluated: a plain number only) and
`within_tolerance` checks it, both with the lessons' own reader and tolerance (one way to read and check an
answer); `PredictGame` keeps the score and which questions of the timeline on screen were answered, and
tells a player how far it may go before it must ask (`stop_before`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from explorer.core.autograd.explain import d_of
from explorer.core.numbers import fmt_number, parse_number, within

MAX_ANSWER_CHARS = 40


@dataclass(frozen=True)
class Question:
    """A gradient that one backward step reveals: dL/d(node) at step `step`."""

    step: int  # the timeline step that reveals it
    node_id: str
    label: str  # how the app writes it: "dL/da", "dL/d(w × x)"
    value: float  # torch's gradient

    @property
    def value_text(self) -> str:
        """The gradient as the graph and the status line write it."""
        return fmt_number(self.value)


@dataclass(frozen=True)
class Verdict:
    """The check of one prediction."""

    question: Question
    answer: float | None  # None when the student skipped
    correct: bool
    message: str


def question_at(timeline, k: int) -> Question | None:
    """The gradient step `k` reveals, or None when it reveals no new single number.

    A backward step is about its focus (the input whose gradient it just produced); it asks when that
    gradient becomes known at this very step (not at an earlier one: an AccumulateGrad step only stores
    what was already sent) and is one finite number (a tensor's gradient is revealed without a question).
    """
    if timeline is None or not timeline.forward_length < k <= timeline.length:
        return None
    nid = timeline.focus(k)
    if nid is None or timeline.grad_at.get(nid) != k:
        return None
    grad = timeline.trace.nodes[nid].grad
    if grad is None or grad.numel != 1 or grad.data is None:
        return None
    value = float(grad.item())
    if not math.isfinite(value):
        return None
    return Question(step=k, node_id=nid, label=d_of(timeline.trace, nid), value=value)


def questions(timeline) -> list[Question]:
    """Every question of the timeline, in step order."""
    if timeline is None:
        return []
    found = (question_at(timeline, k) for k in range(timeline.forward_length + 1, timeline.length + 1))
    return [q for q in found if q is not None]


def parse_answer(text: str) -> float:
    """The number the student typed ("-0.09", "−1.089", "1e-3"), read as the lessons read answers (never
    evaluated); ValueError with one line when it is no number."""
    value = parse_number(str(text)[:MAX_ANSWER_CHARS + 1])
    if len(str(text).strip()) > MAX_ANSWER_CHARS:
        raise ValueError("that is too long for a number")
    if value is None:
        shown = str(text).strip()
        raise ValueError(f"{shown!r} is not a number (write it like -0.09 or 1e-3)" if shown
                         else "type a number first")
    return value


def within_tolerance(answer: float, expected: float) -> bool:
    """The lessons' check of a computed number: within 1 % of it, or within 5e-4 of it near zero."""
    return within(answer, expected, tolerance=None, relative=False, whole=False)


@dataclass
class PredictGame:
    """The toggle's state: the score, and which questions of the timeline on screen were answered.

    The score ("3 of 4") counts every question met: a skipped one counts as asked, not right. A new
    timeline (the program or a value changed) asks its questions again; the score goes on.
    """

    asked: int = 0
    right: int = 0
    timeline: object | None = None
    answered: set[int] = field(default_factory=set)  # steps of `timeline` already answered or skipped

    @property
    def score_text(self) -> str:
        """ "3 of 4", or "no predictions yet"."""
        return f"{self.right} of {self.asked}" if self.asked else "no predictions yet"

    def reset(self) -> None:
        """A fresh score."""
        self.asked = self.right = 0
        self.answered.clear()

    def set_timeline(self, timeline) -> None:
        """The player shows `timeline` now (a new one asks its questions again)."""
        if timeline is not self.timeline:
            self.timeline = timeline
            self.answered = set()

    def stop_before(self, current: int, target: int) -> Question | None:
        """The first unanswered question a move from step `current` to `target` would reveal, or None.

        Moving back never asks; a player moving forward stops one step before the question's step.
        """
        if self.timeline is None or target <= current:
            return None
        for k in range(max(current + 1, self.timeline.forward_length + 1), target + 1):
            if k in self.answered:
                continue
            question = question_at(self.timeline, k)
            if question is not None:
                return question
        return None

    def answer(self, question: Question, text: str) -> Verdict:
        """Check the student's text against the question (ValueError, and nothing counted, if no number)."""
        value = parse_answer(text)
        correct = within_tolerance(value, question.value)
        self._count(question, correct)
        if correct:
            message = f"✓ Right: {question.label} = {question.value_text} (you said {fmt_number(value)})."
        else:
            message = (f"✗ Not quite: {question.label} = {question.value_text}, you said "
                       f"{fmt_number(value)}. The status line shows the chain rule that gives it.")
        return Verdict(question, value, correct, message)

    def skip(self, question: Question) -> Verdict:
        """Reveal without a prediction (counts as asked, not right)."""
        self._count(question, False)
        return Verdict(question, None, False, f"Revealed: {question.label} = {question.value_text}.")

    def _count(self, question: Question, correct: bool) -> None:
        self.answered.add(question.step)
        self.asked += 1
        self.right += int(correct)
