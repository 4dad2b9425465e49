"""Loading lesson files, running a step's action on the workspace models, and checking answers.

`run_step` applies a step's actions through the workspace models (never widgets) and computes what they
need (the expression's trace, the network's iteration) in the calling thread: the programs and the seed's
network of the lessons take milliseconds. `expected` computes an exercise's answer from the state, with
the computation spelled out; `check` compares the student's text with it.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from explorer.core import files
from explorer.core.assets import assets_dir
from explorer.core.lessons import facts
from explorer.core.lessons.model import Catalog, Expected, Feedback, Lesson, LessonError, LessonProblem, Step
from explorer.core.numbers import parse_number, within


def lessons_dir() -> Path:
    """The lesson folder (assets/lessons; explorer/assets/lessons in the wheel), via importlib.resources."""
    return assets_dir() / "lessons"


def load_lesson(path: str | Path) -> Lesson:
    """One lesson file, validated (LessonError with one line naming the bad field otherwise)."""
    try:
        text = files.read_text(path, "lesson")
    except files.FileProblem as exc:
        raise LessonError(str(exc).split(": ", 1)[-1]) from None
    return parse_lesson(text).located_in(Path(path).parent)


def parse_lesson(text: str) -> Lesson:
    """A validated lesson from TOML text (LessonError naming the bad field otherwise)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise LessonError("not valid TOML: nested too deeply") from None
    try:
        return Lesson.model_validate(data)
    except ValidationError as exc:
        raise LessonError(describe_lesson_error(exc)) from None
    except RecursionError:
        raise LessonError("nested too deeply") from None


def describe_lesson_error(exc: ValidationError) -> str:
    """One line: where the first problem is (steps.2.exercise.answer.fact) and what it is."""
    from explorer.core.workspaces.session import describe_validation_error

    return describe_validation_error(exc)


def load_catalog(folder=None) -> Catalog:
    """Every lesson of `folder` (default: the package's assets/lessons); bad files go to catalog.problems.

    Files are `NN-name.toml`, in the order of their names (the seed's order).
    """
    folder = Path(folder) if folder is not None else lessons_dir()
    catalog = Catalog()
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".toml")
    except OSError as exc:
        message = f"cannot list the lessons ({exc.strerror or exc})"
        catalog.problems.append(LessonProblem(folder.name, message))
        return catalog
    seen: set[str] = set()
    for path in paths:
        try:
            lesson = load_lesson(path)
        except LessonError as exc:
            catalog.problems.append(LessonProblem(path.name, str(exc)))
            continue
        if lesson.id in seen:
            message = f"id: another lesson already has the id {lesson.id!r}"
            catalog.problems.append(LessonProblem(path.name, message))
            continue
        seen.add(lesson.id)
        catalog.lessons.append(lesson)
    return catalog


# ------------------------------------------------------------------------------------------ actions


def run_step(step: Step, workspaces) -> None:
    """Apply the step's action to the workspace models (LessonError when it cannot)."""
    if step.workspace is not None:
        workspaces.current = step.workspace
    if not step.actions:
        return
    ws = workspaces.get(step.workspace)
    apply = {"expression": _expression_action, "network": _network_action,
             "pretrain": _pretrain_action}[step.workspace]
    for action in step.actions:
        try:
            apply(ws, action)
        except LessonError:
            raise
        except (ValueError, KeyError, TypeError) as exc:  # a model refused the value: say which action
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LessonError(f"{action.do}: {message.strip(chr(39))}") from None


def open_step(lesson: Lesson, index: int, workspaces, after: int | None = None) -> None:
    """Open step `index` of `lesson`: run its action, after those of the lesson's earlier steps.

    A student may pick any step from the list, and a step builds on the state its predecessors set (the
    tensor lesson's program, the GPT lesson's preset). `after` is the step of this lesson opened just
    before: when it is the previous one (or this one), only this step's action runs.
    """
    first = index if after is not None and after in (index - 1, index) else 0
    for step in lesson.steps[first:index + 1]:
        run_step(step, workspaces)


def _expression_action(ws, action) -> None:
    do = action.do
    if do == "load_example":
        ws.load_example(action.name)
        _computed(ws)
    elif do == "set_source":
        ws.set_source(action.source)
        ws.compute_now()  # a program that fails on purpose (view after .T) is a lesson too: its error shows
    elif do == "set_param":
        _computed(ws)
        ws.set_param(action.name, action.value)
        ws.compute_now("leaf")
    elif do == "set_step":
        _computed(ws)
        ws.set_step(_expression_step(ws, action))
    elif do == "select":
        _computed(ws)
        ws.state.selected = None if action.node is None else facts.node_id(ws, action.node)
    elif do == "backward_again":
        _computed(ws)
        for _ in range(action.times):
            ws.backward_again()
    elif do == "descent_step":
        _computed(ws)
        for _ in range(action.times):
            if ws.descent_step():
                ws.compute_now("descent")


def _computed(ws) -> None:
    """Make sure the expression workspace has a result for its current program."""
    if ws.result is None or ws.result.source != ws.state.source:
        ws.compute_now()
    if ws.result is None:
        raise LessonError(f"the program does not run: {ws.last.error if ws.last else 'no program'}")


def _expression_step(ws, action) -> int:
    timeline = ws.timeline
    if action.to == "start":
        return 0
    if action.to == "end":
        return timeline.length
    if action.to is not None:
        return int(action.to)
    k = timeline.step_of(action.event, facts.node_id(ws, action.node))
    if k is None:
        raise LessonError(f"set_step: the program has no {action.event} event at {action.node!r}")
    return k


def _network_action(ws, action) -> None:
    do = action.do
    if do == "set_preset":
        ws.set_preset(action.name)
        _record(ws)
    elif do == "set_spec":
        from explorer.core.mlp.network import NetSpec

        data = {**ws.spec().to_dict(), **action.fields}
        unknown = sorted(set(action.fields) - set(ws.spec().to_dict()))
        if unknown:
            raise LessonError(f"set_spec: unknown spec field {unknown[0]!r}")
        ws.set_spec(NetSpec.from_dict(data))
        _record(ws)
    elif do == "skip_zero_grad":
        ws.state.skip_zero_grad = action.value
        _record(ws)
    elif do == "record":
        ws.state.iterations = action.iterations
        _record(ws)
    elif do == "set_step":
        if ws.iteration is None:
            _record(ws)
        ws.set_step(_network_step(ws, action))


def _record(ws) -> None:
    ws.show(ws.record())


def _network_step(ws, action) -> int:
    phases = ws.iteration.phases
    if action.to == "start":
        return 0
    if action.to == "end":
        return len(phases)
    if action.to is not None:
        return int(action.to)
    indices = [i + 1 for i, p in enumerate(phases) if p.kind == action.phase]
    if not indices:
        raise LessonError(f"set_step: this iteration has no {action.phase} phase")
    return indices[-1] if action.last else indices[0]


def _pretrain_action(ws, action) -> None:
    from explorer.core.gpt import budget

    do = action.do
    if do == "set_preset":
        ws.set_preset(action.name)
    elif do == "set_config":
        config = budget.make_config(ws.state.config).replace(**action.fields)
        problems = config.problems()
        if problems:
            raise LessonError(f"set_config: {next(iter(problems.values()))}")
        _pretrain_form(ws, config=config.to_dict())
    elif do == "set_settings":
        from explorer.core.gpt.train import TrainSettings

        settings = TrainSettings.from_dict(ws.state.settings).replace(**action.fields)
        problems = settings.problems()
        if problems:
            raise LessonError(f"set_settings: {next(iter(problems.values()))}")
        _pretrain_form(ws, settings=settings.to_dict())


def _pretrain_form(ws, **changes) -> None:
    """Change the form; the preset becomes "custom" once a field differs from it."""
    from explorer.core.gpt import budget

    state = {"config": ws.state.config, "settings": ws.state.settings, **changes}
    preset = ws.state.preset
    if preset != "custom" and (state["config"] != budget.preset_config(preset)
                               or state["settings"] != budget.base_settings(preset)):
        preset = "custom"
    ws.state.update({**changes, "preset": preset})


# ------------------------------------------------------------------------------------------ answers


def expected(step: Step, workspaces) -> Expected:
    """The step's exercise answer, computed from the workspace state at this step."""
    if step.exercise is None:
        raise LessonError(f"step {step.id!r} has no exercise")
    exercise = step.exercise
    fact = facts.compute(exercise.answer, workspaces)
    if exercise.kind == "choice":
        return _choice_expected(exercise, fact)
    return fact


def check(step: Step, workspaces, answer: str, attempt: int) -> Feedback:
    """Check `answer` (the student's text; ignored for "do" exercises) on try number `attempt` (from 1).

    Never raises for a state that lacks what the exercise needs: the Feedback says so (counted=False).
    """
    exercise = step.exercise
    if exercise is None:
        return Feedback(True, "Nothing to answer here: go on to the next step.")
    try:
        exp = expected(step, workspaces)
    except LessonError as exc:  # e.g. no finished run yet: say what is missing, do not count the try
        return Feedback(False, f"{str(exc)[:1].upper()}{str(exc)[1:]}.", counted=False)
    if exercise.kind == "do":
        correct, problem = bool(exp.value), None
    else:
        correct, problem = _compare(exercise, exp, answer)
    if correct:
        message = f"Right: {exp.text}." if exercise.kind != "do" else f"Done: {exp.text}."
        if exp.worked:
            message += f"\n\n{exp.worked}"
        return Feedback(True, message)
    if problem:  # not an answer at all (no number in it): this try does not count against the student
        return Feedback(False, problem, counted=False)
    if exercise.kind == "do":
        message = f"Not yet: {exp.text}."
    else:
        message = "Not quite."
    hint = exercise.hint or _generic_hint(exercise)
    if attempt <= 1:
        return Feedback(False, f"{message} Hint: {hint}", hint=hint)
    if exercise.kind == "do":  # nothing to reveal: the student has to do it; say how once more
        worked = "\n\n".join(t for t in (exercise.explain, hint) if t)
        return Feedback(False, f"{message}\n\n{worked}", hint=hint, worked=worked)
    worked = "\n\n".join(t for t in (f"The answer is {exp.text}.", exercise.explain, exp.worked) if t)
    return Feedback(False, f"{message}\n\n{worked}", hint=hint, worked=worked)


def _generic_hint(exercise) -> str:
    return {
        "number": "work it out from the values the workspace shows, one factor at a time.",
        "shape": "write the sizes of each dimension, e.g. (2, 3).",
        "choice": "look at the workspace: the fact is on screen.",
        "do": "follow the step's text in the workspace, then press Check again.",
    }[exercise.kind]


def _compare(exercise, exp: Expected, answer: str) -> tuple[bool, str | None]:
    if exercise.kind == "number":
        value = parse_number(answer)
        if value is None:
            return False, "Type a number, e.g. -0.09 or 163,009,536."
        whole = _is_whole(exp.value)
        return within(value, float(exp.value), exercise.tolerance, exercise.relative, whole), None
    if exercise.kind == "shape":
        shape = parse_shape(answer)
        if shape is None:
            return False, "Type a shape, e.g. (2, 3)."
        return shape == tuple(exp.value), None
    index = choice_index(answer, exercise.choices)
    if index is None:
        return False, f"Pick one of: {'; '.join(exercise.choices)}."
    return exercise.choices[index] == exp.text, None


def _choice_expected(exercise, fact: Expected) -> Expected:
    means = exercise.means or exercise.choices
    numeric = [m for m in means if isinstance(m, int | float) and not isinstance(m, bool)]
    number = isinstance(fact.value, int | float) and not isinstance(fact.value, bool)
    if len(numeric) == len(means) and number:
        # numbers: the option nearest the computed value (on a log scale when all are positive)
        positive = fact.value > 0 and all(m > 0 for m in numeric)
        distance = (lambda m: abs(math.log(m) - math.log(fact.value))) if positive else \
            (lambda m: abs(m - fact.value))
        best = min(range(len(means)), key=lambda i: distance(numeric[i]))
        return Expected(fact.value, exercise.choices[best], fact.worked)
    for option, meaning in zip(exercise.choices, means, strict=True):
        if _same_meaning(meaning, fact.value, exercise):
            return Expected(fact.value, option, fact.worked)
    raise LessonError(f"no choice matches the computed answer {fact.text}")


def _same_meaning(meaning, value, exercise) -> bool:
    if isinstance(meaning, bool) or isinstance(value, bool):
        return meaning is value if isinstance(meaning, bool) else str(meaning).lower() == str(value).lower()
    if isinstance(meaning, list):
        return isinstance(value, tuple | list) and tuple(meaning) == tuple(value)
    if isinstance(meaning, int | float) and isinstance(value, int | float):
        return within(float(meaning), float(value), exercise.tolerance, exercise.relative, _is_whole(value))
    return str(meaning).strip().lower() == str(value).strip().lower()


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_shape(text: str) -> tuple[int, ...] | None:
    """A shape a student typed: `(2, 3)`, `[2,3]`, `2x3`, `2 × 3`, `torch.Size([2, 3])`, `()`; else None."""
    t = (text or "").strip().removeprefix("torch.Size").strip()
    if re.fullmatch(r"[\(\[]\s*[\)\]]|\(\[\s*\]\)", t):
        return ()
    if not re.fullmatch(r"[\s\(\)\[\],x×*\d]+", t):
        return None
    numbers = re.findall(r"\d+", t)
    return tuple(int(n) for n in numbers) if numbers else None


def choice_index(answer: str, choices: list[str]) -> int | None:
    """The option the student chose: its text (any case), its number (1, 2, ...) or letter (a, b, ...)."""
    t = (answer or "").strip().rstrip(").").strip()
    for i, option in enumerate(choices):
        if t.lower() == option.strip().lower():
            return i
    if t.isdigit() and 1 <= int(t) <= len(choices):
        return int(t) - 1
    if len(t) == 1 and t.isalpha() and 0 <= ord(t.lower()) - ord("a") < len(choices):
        return ord(t.lower()) - ord("a")
    return None


def figure_data(step: Step, workspaces):
    """The data of the step's figure (`step.figure`), computed from the workspace state."""
    if step.figure is None:
        raise LessonError(f"step {step.id!r} has no figure")
    return facts.figure(step.figure, workspaces)


__all__ = ["check", "expected", "figure_data", "load_catalog", "load_lesson", "parse_lesson", "run_step"]
