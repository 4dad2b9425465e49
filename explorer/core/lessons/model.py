"""The lesson schema (pydantic): what a lesson file may say, validated before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict


class LessonError(ValueError):
    """A step whose action or check cannot run on the current workspace state (one-line message)."""


class Exercise(BaseModel):
    """What a step asks of the student. The expected answer is computed by the app (see runner.expected)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["number", "shape", "choice", "do"]
    prompt: str
    choices: list[str] = []
    # The lessons-core helper adds the fields that say how the answer is computed and with what tolerance.


class Step(BaseModel):
    """One step: a short text, an optional action on a workspace, an optional exercise."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    text: str
    workspace: Literal["expression", "network", "pretrain"] | None = None
    exercise: Exercise | None = None
    # The lessons-core helper adds the action fields.


class Lesson(BaseModel):
    """A lesson: an ordered list of steps."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    summary: str = ""
    steps: list[Step]


@dataclass
class LessonProblem:
    """A lesson file that failed to load: its file name and what is wrong, in one line."""

    file: str
    message: str


@dataclass
class Catalog:
    """Every lesson that loaded, in order, and the files that did not."""

    lessons: list[Lesson] = field(default_factory=list)
    problems: list[LessonProblem] = field(default_factory=list)


@dataclass
class Expected:
    """The answer computed from the workspace state: its value and how it reads (`-0.0898`, `(2, 2)`)."""

    value: object
    text: str
    worked: str = ""  # the worked answer, shown after the second wrong try


@dataclass
class Feedback:
    """The verdict on one answer."""

    correct: bool
    message: str  # what the panel shows in lessonFeedback
    hint: str | None = None  # after the first wrong answer
    worked: str | None = None  # after the second wrong answer
