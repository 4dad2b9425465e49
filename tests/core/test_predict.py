"""Predict, then reveal: which gradient each backward step asks for, the tolerance check and the score."""

import pytest

from explorer.core.autograd.predict import (
    PredictGame,
    parse_answer,
    question_at,
    questions,
    within_tolerance,
)
from explorer.core.autograd.timeline import Timeline
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.workspaces.expression import compute


@pytest.fixture(scope="module")
def seed_timeline() -> Timeline:
    result = compute(SEED_SOURCE)
    assert result.ok, result.error
    return Timeline(result.trace)


def test_the_seed_asks_each_new_gradient_once_in_the_engines_order(seed_timeline):
    asked = [(q.label, round(q.value, 4)) for q in questions(seed_timeline)]
    # BCE sends dL/da, sigmoid dL/dz, the sum dL/d(w × x) (and dL/db on the same step), the product dL/dw;
    # the AccumulateGrad steps store what was already sent and ask nothing
    assert asked == [("dL/da", -1.0889), ("dL/dz", -0.0817), ("dL/d(w × 1.1)", -0.0817), ("dL/dw", -0.0898)]
    steps = [q.step for q in questions(seed_timeline)]
    assert all(seed_timeline.event(k)[0] == "backward" for k in steps)
    assert question_at(seed_timeline, 0) is None
    assert question_at(seed_timeline, seed_timeline.forward_length) is None  # forward steps never ask
    last = seed_timeline.length  # w's AccumulateGrad
    assert seed_timeline.event(last)[0] == "backward" and question_at(seed_timeline, last) is None


def test_dl_dw_matches_the_seed_reference(seed_timeline):
    q = next(q for q in questions(seed_timeline) if q.label == "dL/dw")
    assert q.value == pytest.approx(-0.0898263, abs=1e-6)
    assert q.value_text == "-0.0898"


def test_a_forward_only_trace_has_no_questions():
    result = compute("x = 2.0\ny = x * 3.0")
    assert result.ok
    assert questions(Timeline(result.trace)) == []


def test_tensor_gradients_are_revealed_without_a_question():
    result = compute("W = param([[1.0, 2.0], [3.0, 4.0]])\nL = sum(W * W)")
    assert result.ok, result.error
    timeline = Timeline(result.trace)
    wid = next(nid for nid, n in result.trace.nodes.items() if n.name == "W")
    assert all(q.node_id != wid for q in questions(timeline))


@pytest.mark.parametrize("text, value", [("-0.09", -0.09), ("−1.089", -1.089), (" 1e-3 ", 1e-3),
                                         (".5", 0.5), ("+2", 2.0)])
def test_parse_answer_reads_plain_numbers(text, value):
    assert parse_answer(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1/2", "__import__('os')", "nan", "inf", "1" * 60])
def test_parse_answer_refuses_anything_else_in_one_line(text):
    with pytest.raises(ValueError) as info:
        parse_answer(text)
    assert "\n" not in str(info.value) and str(info.value)


def test_tolerance_is_relative_with_an_absolute_floor():
    assert within_tolerance(-0.0898, -0.0898263)
    assert within_tolerance(-0.0817, -0.0816603)
    assert not within_tolerance(-0.08, -0.0898263)
    assert not within_tolerance(0.0898, -0.0898263)  # the sign matters
    assert within_tolerance(-1.09, -1.0889215)  # 0.1 %
    assert not within_tolerance(-1.2, -1.0889215)
    assert within_tolerance(0.0004, 0.0)  # near zero the 4th decimal decides
    assert not within_tolerance(0.002, 0.0)


def test_the_game_stops_before_each_unanswered_question_and_keeps_score(seed_timeline):
    game = PredictGame()
    game.set_timeline(seed_timeline)
    first, *_ = questions(seed_timeline)
    # jumping to the end stops before the first question
    assert game.stop_before(0, seed_timeline.length) == first
    assert game.stop_before(first.step, first.step - 1) is None  # moving back never asks
    verdict = game.answer(first, "-1.09")
    assert verdict.correct and "-1.0889" in verdict.message
    second = game.stop_before(first.step, seed_timeline.length)
    assert second is not None and second.step > first.step and second.label == "dL/dz"
    with pytest.raises(ValueError):
        game.answer(second, "oops")
    assert (game.right, game.asked) == (1, 1)  # a non-number counts nothing
    assert not game.answer(second, "0.5").correct
    third = game.stop_before(second.step, seed_timeline.length)
    game.skip(third)
    fourth = game.stop_before(third.step, seed_timeline.length)
    assert game.answer(fourth, "-0.0898").correct
    assert game.stop_before(fourth.step, seed_timeline.length) is None
    assert game.score_text == "2 of 4"
    # going back and forward again does not ask the answered questions again
    assert game.stop_before(0, seed_timeline.length) is None
    # a new timeline (a value changed) asks again; the score goes on
    game.set_timeline(Timeline(compute(SEED_SOURCE).trace))
    assert game.stop_before(0, seed_timeline.length).label == "dL/da"
    assert game.score_text == "2 of 4"
    game.reset()
    assert game.score_text == "no predictions yet"
