"""The seventh lesson, "Why training fails": every answer computed from the state, checked as a student
would answer, with the training the student does replayed headless."""

import pytest

from explorer.core.lessons import load_catalog
from explorer.core.lessons.runner import check, expected, run_step
from explorer.core.mlp.network import NetSpec
from explorer.core.mlp.toydata import make_dataset, train_toy
from explorer.core.workspaces.session import Workspaces


@pytest.fixture(scope="module")
def lesson():
    catalog = load_catalog()
    assert catalog.problems == []
    return next(lesson for lesson in catalog.lessons if lesson.id == "why-training-fails")


def step_of(lesson, step_id):
    return next(step for step in lesson.steps if step.id == step_id)


def train(ws, steps):
    """What Train does: a run of the workspace's spec on its toy data, recorded in the workspace."""
    n = ws.network
    d = n.state.dataset
    data = make_dataset(d.name, d.count, d.noise, d.test_fraction, d.seed)
    n.start_run(steps)
    records = list(train_toy(n.spec(), data, steps, record_every=5, boundary_every=10**6))
    n.add_records([r for r in records if r["type"] == "step"])
    n.finish_run(records[-1]["type"])


def test_the_lesson_is_the_seventh_and_every_fact_is_computed(lesson):
    assert load_catalog().lessons.index(lesson) == 6
    ws = Workspaces()
    sig = step_of(lesson, "deep-sigmoid")
    run_step(sig, ws)
    exp = expected(sig, ws)
    assert exp.value in (1, 2) and "fc" in exp.worked  # a first layer: the vanishing gradient
    assert check(sig, ws, "fc1, next to the input", 1).correct
    assert not check(sig, ws, "fc7, next to the output", 1).correct
    relu = step_of(lesson, "relu-he")
    run_step(relu, ws)
    spread = expected(relu, ws).value
    assert 1 < spread < 50  # with ReLU and He init the layers' gradients stay within a factor of ten or so
    assert check(relu, ws, "about 10 times", 1).correct
    lr = step_of(lesson, "lr-range")
    run_step(lr, ws)
    suggested = expected(lr, ws).value
    assert 0.003 < suggested < 0.05
    assert check(lr, ws, "about 0.01", 1).correct


def test_dead_relus_are_read_from_the_students_run(lesson):
    ws = Workspaces()
    dead = step_of(lesson, "dead-relus")
    run_step(dead, ws)
    assert ws.network.spec().lr == 1.0 and ws.network.spec().activations[0] == "relu"
    feedback = check(dead, ws, "0.5", 1)
    assert not feedback.correct and not feedback.counted  # no run yet: nothing to check against
    train(ws, 200)
    exp = expected(dead, ws)
    run = ws.network.state.runs[-1]
    assert exp.value == max(v for v in run.dead[-1] if v is not None) and exp.value > 0.3
    assert check(dead, ws, str(exp.value), 1).correct


def test_fixing_the_run_needs_exactly_one_change_and_a_trained_run(lesson):
    ws = Workspaces()
    fix = step_of(lesson, "fix-it")
    run_step(fix, ws)
    train(ws, 100)
    assert not check(fix, ws, "", 1).correct  # the preset as it is does not train
    n = ws.network
    two = NetSpec.from_dict({**n.spec().to_dict(), "lr": 0.3, "momentum": 0.5})
    n.set_spec(two)
    train(ws, 300)
    assert not check(fix, ws, "", 1).correct  # two settings changed
    n.set_spec(NetSpec.from_dict({**n.spec().to_dict(), "momentum": 0.9}))  # back to lr alone
    train(ws, 300)
    result = check(fix, ws, "", 1)
    assert result.correct, result
