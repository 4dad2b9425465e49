"""Lessons: every file loads, every step runs headless, computed answers match the reference numbers."""

from __future__ import annotations

import json
import shutil

import pytest

from explorer.core.lessons import (
    Progress,
    check,
    expected,
    figure_data,
    load_catalog,
    run_step,
)
from explorer.core.lessons.runner import lessons_dir, parse_lesson, parse_number, parse_shape
from explorer.core.workspaces.session import Workspaces


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _lesson(catalog, lesson_id):
    return next(lesson for lesson in catalog.lessons if lesson.id == lesson_id)


def _walk(lesson, ws):
    """Run every step in order; the (step, expected) of each exercise that needs no student action."""
    out = {}
    for step in lesson.steps:
        run_step(step, ws)
        if step.exercise is not None and step.exercise.kind != "do":
            out[step.id] = expected(step, ws)
    return out


def test_every_lesson_loads_without_problems(catalog):
    assert catalog.problems == []
    assert len(catalog.lessons) >= 1
    for lesson in catalog.lessons:
        assert lesson.steps and lesson.title


def test_gradients_lesson_matches_the_seed_reference_numbers(catalog):
    ws = Workspaces()
    answers = _walk(_lesson(catalog, "gradients-three-ways"), ws)
    assert answers["setup"].value == pytest.approx(2.42, abs=1e-6)
    assert answers["by-hand"].value == pytest.approx(-0.0816603, abs=1e-6)
    assert answers["by-hand-w"].value == pytest.approx(-0.0898263, abs=1e-6)
    assert answers["autograd-w"].text == "-0.0898"
    assert "1.1000" in answers["by-hand-w"].worked  # the computation is spelled out: x × (a − y)


def test_check_gives_a_hint_then_the_worked_answer(catalog):
    ws = Workspaces()
    lesson = _lesson(catalog, "gradients-three-ways")
    run_step(lesson.steps[0], ws)
    step = lesson.steps[1]
    run_step(step, ws)
    first = check(step, ws, "0.5", 1)
    assert not first.correct and first.hint and first.worked is None
    second = check(step, ws, "0.5", 2)
    assert not second.correct and second.worked and "-0.0817" in second.worked
    assert check(step, ws, "−0.0817", 3).correct
    assert check(step, ws, "-0.08166", 1).correct
    not_a_number = check(step, ws, "minus a bit", 1)
    assert not not_a_number.correct and not_a_number.hint is None


def test_fd_error_figure_shows_truncation_and_rounding(catalog):
    ws = Workspaces()
    lesson = _lesson(catalog, "gradients-three-ways")
    step = next(s for s in lesson.steps if s.figure == "fd_error")
    for s in lesson.steps[: lesson.steps.index(step) + 1]:
        run_step(s, ws)
    fig = figure_data(step, ws)
    assert fig.logx and fig.logy and len(fig.x) == len(fig.y) > 10
    best = fig.y.index(min(fig.y))
    # a V: the error falls from the largest h (truncation) and rises again at the smallest (rounding)
    assert 0 < best < len(fig.y) - 1
    assert fig.y[0] > 100 * fig.y[best] and fig.y[-1] > 100 * fig.y[best]
    assert "float32" in fig.note


def test_a_bad_lesson_file_is_listed_while_the_others_load(tmp_path):
    for path in lessons_dir().glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    good = len(load_catalog(tmp_path).lessons)
    (tmp_path / "99-broken.toml").write_text(
        'id = "broken"\ntitle = "Broken"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\n'
        '[steps.exercise]\nkind = "number"\nprompt = "?"\nanswer = { fact = "gradient", node = "w" }\n',
        encoding="utf-8")
    (tmp_path / "98-not-toml.toml").write_text("id = \n", encoding="utf-8")
    catalog = load_catalog(tmp_path)
    assert len(catalog.lessons) == good
    problems = {p.file: p.message for p in catalog.problems}
    assert set(problems) == {"99-broken.toml", "98-not-toml.toml"}
    broken = problems["99-broken.toml"]
    assert "steps.0.exercise.answer" in broken and "gradient" in broken and "\n" not in broken
    assert "TOML" in problems["98-not-toml.toml"]


@pytest.mark.parametrize("text, where", [
    ('answer = { fact = "grad", node = "w" }\nvalue = 3', "steps.0.exercise.value"),  # a typed answer
    ('answer = { fact = "run_done" }', "steps.0.exercise"),  # a do fact in a number exercise
])
def test_schema_refuses_typed_answers_and_mismatched_facts(text, where):
    source = ('id = "x"\ntitle = "X"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\n'
              f'[steps.exercise]\nkind = "number"\nprompt = "?"\n{text}\n')
    from explorer.core.lessons import LessonError

    with pytest.raises(LessonError, match=where.replace(".", r"\.")):
        parse_lesson(source)


def test_an_action_the_workspace_lacks_is_refused():
    from explorer.core.lessons import LessonError

    source = ('id = "x"\ntitle = "X"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\nworkspace = "pretrain"\n'
              'actions = [{ do = "set_source", source = "x = 1" }]\n')
    with pytest.raises(LessonError, match="no action 'set_source'"):
        parse_lesson(source)


def test_answers_are_parsed_as_students_type_them():
    assert parse_number("163,009,536") == 163009536
    assert parse_number("−0.0898") == pytest.approx(-0.0898)
    assert parse_number("1.6e8") == 1.6e8
    assert parse_number("abc") is None
    assert parse_shape("(2, 2)") == (2, 2)
    assert parse_shape("torch.Size([2, 3])") == (2, 3)
    assert parse_shape("2 × 3") == (2, 3)
    assert parse_shape("two by two") is None


def test_progress_survives_save_and_load(catalog, tmp_path):
    lesson = catalog.lessons[0]
    progress = Progress.load()
    assert progress.completed(lesson) == 0
    progress.mark(lesson.id, lesson.steps[0].id)
    progress.save()
    again = Progress.load()
    assert again.done(lesson.id, lesson.steps[0].id)
    assert not again.done(lesson.id, "no-such-step")
    assert again.completed(lesson) == 1
    data = json.loads(again.path.read_text(encoding="utf-8"))
    assert data["done"] == {lesson.id: [lesson.steps[0].id]}


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "other", "version": 1}', b"\xff\xfe",
                                     b'{"format": "autograd-explorer-lessons", "version": 1, "done": 5}'])
def test_a_broken_progress_file_starts_empty(tmp_path, content):
    path = tmp_path / "lessons-progress.json"
    path.write_bytes(content)
    progress = Progress.load(path)
    assert progress.problem and not progress.done("tensors", "rank")
    progress.mark("tensors", "rank")
    progress.save()
    assert Progress.load(path).done("tensors", "rank")
