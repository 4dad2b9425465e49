"""Lessons: every file loads, every step runs headless, computed answers match the reference numbers."""

from __future__ import annotations

import json
import shutil

import pytest

from explorer.core.lessons import (
    LessonError,
    Progress,
    check,
    expected,
    figure_data,
    load_catalog,
    run_step,
)
from explorer.core.lessons.runner import lessons_dir, parse_lesson, parse_shape
from explorer.core.numbers import fmt_number, parse_number
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


SEED_ORDER = ["tensors", "chain-rule", "gradients-three-ways", "backprop-network", "gpt-configuration",
              "pretraining-fine-tuning"]


def test_every_lesson_loads_without_problems_in_the_seeds_order(catalog):
    assert catalog.problems == []
    assert [lesson.id for lesson in catalog.lessons][: len(SEED_ORDER)] == SEED_ORDER
    for lesson in catalog.lessons:
        assert lesson.steps and lesson.title
        assert any(step.exercise for step in lesson.steps)


def _student_does(step, ws):
    """What a student does in the workspace for a "do" exercise (the lesson cannot do it for them)."""
    fact = step.exercise.answer
    if fact.fact == "player_at":
        from explorer.core.lessons.facts import node_id

        e = ws.expression
        k = e.timeline.length if fact.event in (None, "end") else \
            e.timeline.step_of(fact.event, node_id(e, fact.node))
        e.set_step(k)
    elif fact.fact == "grad_accumulated":
        n = ws.network
        n.state.skip_zero_grad = True
        n.state.iterations = 2
        n.show(n.record())
    else:
        raise AssertionError(f"no student move for {fact.fact}")


@pytest.mark.parametrize("lesson_id", SEED_ORDER[:5])
def test_every_step_runs_headless_and_its_own_answer_checks(catalog, lesson_id):
    ws = Workspaces()
    lesson = _lesson(catalog, lesson_id)
    for step in lesson.steps:
        run_step(step, ws)
        if step.exercise is None:
            continue
        if step.exercise.kind == "do":
            assert not check(step, ws, "", 1).correct, step.id  # not done yet: the student has to act
            _student_does(step, ws)
            assert check(step, ws, "", 1).correct, step.id
            continue
        exp = expected(step, ws)
        assert exp.text and exp.worked, step.id
        assert check(step, ws, exp.text, 1).correct, step.id
        kind = step.exercise.kind
        if kind == "choice":
            wrong = next(c for c in step.exercise.choices if c != exp.text)
        elif kind == "shape":
            wrong = str(tuple(n + 1 for n in exp.value) or (1,))
        else:
            wrong = str(float(exp.value) * 1.5 + 1)
        first, second = check(step, ws, wrong, 1), check(step, ws, wrong, 2)
        assert not first.correct and first.hint and not first.worked, step.id
        assert not second.correct and exp.text in second.worked and exp.worked in second.worked, step.id


def _answers(catalog, lesson_id):
    return _walk(_lesson(catalog, lesson_id), Workspaces())


def test_tensor_lesson_reference_numbers(catalog):
    a = _answers(catalog, "tensors")
    assert a["rank"].value == 3 and a["shape"].value == (2, 2, 2)
    assert a["dtype-int"].text == "int64" and a["dtype-float"].text == "float32" and a["to"].text == "float64"
    assert a["transpose-stride"].value == (1, 3) and a["contiguous"].value is False
    assert a["view-fails"].value is False
    assert a["matmul-shape"].value == (2, 2)
    assert (a["matmul-value"].value, a["matmul-corner"].value) == (32, 77)  # [[14, 32], [32, 77]]
    assert "1×4 + 2×5 + 3×6" in a["matmul-value"].worked


def test_chain_rule_lesson_reference_numbers(catalog):
    a = _answers(catalog, "chain-rule")
    assert a["node-z"].value == pytest.approx(2.42, abs=1e-6)
    assert a["node-a"].value == pytest.approx(0.9183397, abs=1e-6)
    assert a["node-L"].text == "0.0852"
    assert a["grad-z"].value == pytest.approx(-0.0816603, abs=1e-6)
    assert a["local-sigmoid"].value == pytest.approx(0.9183397 * (1 - 0.9183397), abs=1e-6)


def test_network_lesson_numbers(catalog):
    a = _answers(catalog, "backprop-network")
    assert a["network"].value == 10 * 5 + 5 + 5 + 1
    assert a["bigger"].value == 2213
    assert "a − y" in a["backward"].worked and "SGD" in a["step"].worked
    ws = Workspaces()
    lesson = _lesson(catalog, "backprop-network")
    for step in lesson.steps[:3]:
        run_step(step, ws)
    output = ws.network.iteration.trace.by_name()["output"].value.item()
    assert expected(lesson.steps[2], ws).value == pytest.approx(output - 1.0, abs=1e-6)  # a − y, y = 1
    grad = expected(lesson.steps[2], ws).value
    run_step(lesson.steps[3], ws)
    before = ws.network.iteration.phases[0].params["fc2.bias"].value[0]
    assert expected(lesson.steps[3], ws).value == pytest.approx(before - 0.01 * grad, abs=1e-6)


def _fine_tune(ws, source, own, steps: int = 3):
    """Continue `source` on the text file `own`, as the panel's Continue button does (in-process)."""
    from explorer.core.gpt.child_process import make_trainer
    from explorer.core.gpt.data import default_corpus

    text = default_corpus()  # another part of it: characters the pretrained tokenizer knows
    own.write_text(text[len(text) // 2: len(text) // 2 + 4000], encoding="utf-8")
    settings = {**source.settings, "steps": source.steps_done() + steps}
    run = ws.new_run(source.config, settings, str(own), continues=source.run_id)
    trainer = make_trainer(source.config, settings, str(own), resume_from=source.checkpoint)
    assert trainer.corpus_source == "file" and trainer.step == source.steps_done()  # the text, resumed
    records = list(trainer.run())
    path = ws.checkpoint_path(run.run_id)
    trainer.save_checkpoint(path)
    ws.add_records(run.run_id, records)
    ws.finish_run(run.run_id, "done", "", str(path))
    return run


def test_pretraining_lesson_checks_against_real_runs(catalog, tmp_path):
    from tests.trained import trained_run

    ws = Workspaces()
    lesson = _lesson(catalog, "pretraining-fine-tuning")
    steps = {step.id: step for step in lesson.steps}
    for step in lesson.steps:
        run_step(step, ws)
    assert ws.pretrain.state.preset == "tiny"
    assert not check(steps["train"], ws, "", 1).correct  # no run yet
    with pytest.raises(LessonError, match="train a run first"):
        expected(steps["curves"], ws)
    early = check(steps["curves"], ws, "the train loss", 1)
    assert not early.correct and not early.counted and "Train a run first" in early.message
    run = trained_run(ws.pretrain, steps=4, sample_every=2, sample_tokens=8, eval_every=2)
    assert check(steps["train"], ws, "", 1).correct
    assert check(steps["samples"], ws, "", 1).correct
    train, val = run.final_losses()
    assert expected(steps["curves"], ws).text == ("the train loss" if train < val else "the validation loss")
    vals = run.evals["val_loss"].view().tolist()
    trend = expected(steps["overfitting"], ws).text
    assert trend == ("rising again" if vals[-1] > min(vals) else "still falling (at its lowest)")
    assert expected(steps["attention"], ws).text.startswith("above the diagonal")
    assert expected(steps["attention-rows"], ws).value == pytest.approx(1.0, abs=1e-5)
    assert not check(steps["fine-tune"], ws, "", 1).correct
    tuned = _fine_tune(ws.pretrain, run, tmp_path / "my-text.txt")
    assert check(steps["fine-tune"], ws, "", 1).correct
    from explorer.core.lessons.facts import corpus_loss

    own, original = corpus_loss(tuned.checkpoint, tuned.corpus), corpus_loss(tuned.checkpoint, None)
    compare = expected(steps["compare"], ws)
    assert compare.text == ("lower" if own < original else "higher")
    assert fmt_number(own) in compare.worked and fmt_number(original) in compare.worked
    # the link between the runs survives a saved session
    from explorer.core.workspaces.pretrain import PretrainWorkspace

    again = PretrainWorkspace()
    again.load(PretrainWorkspace.validate(ws.pretrain.to_json()))
    assert again.runs[tuned.run_id].continues == run.run_id


def test_gpt_lesson_reference_numbers(catalog):
    a = _answers(catalog, "gpt-configuration")
    assert a["gpt2"].value == 163_009_536
    assert a["tied"].value == 124_412_160
    assert a["head"].value == 38_597_376 == 50_257 * 768
    assert a["context"].value == 1024 * 768
    assert a["qkv-bias"].value == 12 * 3 * 768
    assert a["heads"].text == "the same number" and a["dropout"].text == "the same number"
    assert a["embedding"].text == "about 100 million"
    assert a["layers"].value < 0 and a["hidden"].value < 0


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
    assert not not_a_number.correct and not_a_number.hint is None and not not_a_number.counted
    assert first.counted and second.counted


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


def _doc() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "docs" / "lessons.md").read_text(encoding="utf-8")


def test_the_documented_example_lesson_loads_and_runs():
    doc = _doc()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    lesson = parse_lesson(example)
    ws = Workspaces()
    for step in lesson.steps:
        run_step(step, ws)
    assert expected(lesson.steps[-1], ws).value == pytest.approx(-0.0898263, abs=1e-6)


def test_every_action_and_fact_is_documented():
    from explorer.core.lessons.model import ACTIONS, FACT_KINDS

    doc = _doc()
    for name in {a for names in ACTIONS.values() for a in names} | set(FACT_KINDS):
        assert f"`{name}`" in doc, name


@pytest.mark.parametrize("action, message", [
    ('{ do = "set_preset", name = "gpt5" }', "unknown name 'gpt5'"),
    ('{ do = "set_config", fields = { layers = 3 } }', "unknown name 'layers'"),
    ('{ do = "set_settings", fields = { step = 3 } }', "unknown name 'step'"),
])
def test_unknown_names_in_actions_are_refused_at_load_time(action, message):
    from explorer.core.lessons import LessonError

    source = ('id = "x"\ntitle = "X"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\nworkspace = "pretrain"\n'
              f'actions = [{action}]\n')
    with pytest.raises(LessonError, match=message):
        parse_lesson(source)


def test_hostile_lesson_files_become_problems(tmp_path):
    import os

    (tmp_path / "01-deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    (tmp_path / "02-huge.toml").write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    (tmp_path / "03-binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    os.mkfifo(tmp_path / "04-fifo.toml")  # would block a naive open() forever
    (tmp_path / "05-folder.toml").mkdir()
    catalog = load_catalog(tmp_path)
    assert catalog.lessons == []
    problems = {p.file: p.message for p in catalog.problems}
    assert sorted(problems) == ["01-deep.toml", "02-huge.toml", "03-binary.toml", "04-fifo.toml",
                                "05-folder.toml"]
    assert all(m and "\n" not in m for m in problems.values())


def test_an_action_that_cannot_run_on_the_state_says_so_in_one_line():
    from explorer.core.lessons import LessonError

    lesson = parse_lesson('id = "x"\ntitle = "X"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\n'
                          'workspace = "expression"\n'
                          'actions = [{ do = "load_example", name = "seed_sigmoid_bce" },'
                          ' { do = "set_step", event = "backward", node = "nowhere" }]\n')
    with pytest.raises(LessonError, match="no variable 'nowhere'") as info:
        run_step(lesson.steps[0], Workspaces())
    assert "\n" not in str(info.value)
    with pytest.raises(LessonError, match="`phase` is for the network"):
        parse_lesson('id = "x"\ntitle = "X"\n[[steps]]\nid = "a"\ntitle = "A"\ntext = "t"\n'
                     'workspace = "expression"\nactions = [{ do = "set_step", phase = "loss" }]\n')


def test_every_step_stands_on_its_own_when_opened_directly():
    """A student may open any step from the list: it finds the state its exercise asks about."""
    from explorer.core.lessons import expected, load_catalog, open_step, run_step
    from explorer.core.workspaces.session import Workspaces

    catalog = load_catalog()
    for lesson in catalog.lessons:
        if lesson.id.startswith("pretraining"):  # needs runs the student trains: checked with real runs
            continue
        in_order = Workspaces()
        answers = {}
        for step in lesson.steps:
            run_step(step, in_order)
            # dead_share reads the run the student trains (tests/core/test_lesson_why_training_fails.py)
            if step.exercise is not None and step.exercise.kind in ("number", "shape") \
                    and step.exercise.answer.fact != "dead_share":
                answers[step.id] = expected(step, in_order).value
        for index, step in enumerate(lesson.steps):
            if step.id in answers:
                alone = Workspaces()
                open_step(lesson, index, alone)  # opened first, from the list
                assert _same(expected(step, alone).value, answers[step.id]), (lesson.id, step.id)


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    return a == b


def test_a_worked_chain_rule_says_each_number_once():
    from explorer.core.autograd.gradcheck import ChainRule
    from explorer.core.lessons.facts import rule_line

    rule = ChainRule(node_id="b", input_id=None, upstream=None, local_formula="1", local=1.0, result=None,
                     text="dL/db = dL/dz × 1 = -0.0817", numbers="-0.0817 × 1.0000 = -0.0817")
    line = rule_line(rule)
    assert line == "dL/db = dL/dz × 1 = -0.0817 × 1.0000 = -0.0817"
    assert "-0.0817 -0.0817" not in line
