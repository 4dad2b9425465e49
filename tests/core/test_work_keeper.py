"""A lesson keeps the user's work before it changes a workspace, and puts it back when asked (issue 20)."""

from __future__ import annotations

from explorer.core.lessons import load_catalog, open_step
from explorer.core.lessons.snapshot import WorkKeeper
from explorer.core.workspaces.session import Workspaces


def _lesson(lesson_id: str):
    return next(lesson for lesson in load_catalog().lessons if lesson.id == lesson_id)


def _open(keeper, workspaces, lesson, index):
    step = lesson.steps[index]
    keeper.before_step(workspaces, step.workspace, lesson.id)
    open_step(lesson, index, workspaces)
    keeper.after_step(workspaces, step.workspace)


def test_an_edited_network_is_kept_and_restored_after_the_lesson_replaced_it():
    workspaces = Workspaces()
    workspaces.network.set_preset("toy-2d")  # the user's own network
    keeper = WorkKeeper()
    lesson = _lesson("backprop-network")
    _open(keeper, workspaces, lesson, 0)
    assert workspaces.network.state.preset == "seed"  # the lesson's network
    assert keeper.names() == ["Network"] and keeper.lesson_id == "backprop-network"
    _open(keeper, workspaces, lesson, 1)  # a later step: the snapshot is the user's, not the lesson's
    assert keeper.saved["network"]["preset"] == "toy-2d"
    assert keeper.restore(workspaces) == ["Network"]
    assert workspaces.network.state.preset == "toy-2d" and keeper.names() == []


def test_an_unedited_workspace_or_the_lessons_own_state_is_not_kept():
    workspaces = Workspaces()
    keeper = WorkKeeper()
    lesson = _lesson("backprop-network")
    _open(keeper, workspaces, lesson, 0)  # a fresh network: nothing of the user's to keep
    assert keeper.names() == []
    _open(keeper, workspaces, lesson, len(lesson.steps) - 1)  # what the lesson left is not the user's work
    assert keeper.names() == []


def test_a_custom_pretraining_form_survives_a_gpt_lesson():
    workspaces = Workspaces()
    pretrain = workspaces.pretrain
    config = dict(pretrain.state.config, n_layers=3, emb_dim=48)
    pretrain.state.update({"preset": "custom", "config": config})
    keeper = WorkKeeper()
    lesson = _lesson("gpt-configuration")
    index = next(i for i, s in enumerate(lesson.steps) if s.workspace == "pretrain" and s.actions)
    _open(keeper, workspaces, lesson, index)
    assert pretrain.state.config != config
    assert keeper.restore(workspaces) == ["Pretraining"]
    assert pretrain.state.preset == "custom" and pretrain.state.config == config
