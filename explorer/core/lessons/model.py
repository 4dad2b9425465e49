"""The lesson schema (pydantic): what a lesson file may say, validated before anything runs.

A lesson is data, never code: a step's `actions` come from a small vocabulary (one pydantic model per
action, told apart by `do`), and an exercise names the FACT the app computes from the workspace state
(`answer.fact`), never the number itself. docs/lessons.md describes every field for teachers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

MAX_TEXT = 20_000


class LessonError(ValueError):
    """A step whose action or check cannot run on the current workspace state (one-line message)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------- actions
# Each action applies to the step's workspace; ACTIONS says which workspace knows which action.


class LoadExample(_Strict):
    """expression: load an example program of assets/examples by its file stem."""

    do: Literal["load_example"]
    name: str = Field(max_length=100)


class SetSource(_Strict):
    """expression: replace the program by this text (the language of the expression workspace)."""

    do: Literal["set_source"]
    source: str = Field(max_length=MAX_TEXT)


class SetParam(_Strict):
    """expression: give a param a value (a number, or nested lists for a tensor)."""

    do: Literal["set_param"]
    name: str = Field(max_length=64)
    value: float | list[float] | list[list[float]] | list[list[list[float]]]


class SetStep(_Strict):
    """expression or network: move the player.

    expression: `to` ("start", "end" or a step number), or `event` ("forward" | "backward") of `node`
    (a variable name of the program). network: `to`, or the first phase of kind `phase` ("zero_grad",
    "forward", "loss", "backward", "step"; `last = true` for its last phase).
    """

    do: Literal["set_step"]
    to: Literal["start", "end"] | Annotated[int, Field(ge=0)] | None = None
    event: Literal["forward", "backward"] | None = None
    node: str | None = Field(None, max_length=64)
    phase: Literal["zero_grad", "forward", "loss", "backward", "step"] | None = None
    last: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> SetStep:
        given = [self.to is not None, self.event is not None, self.phase is not None]
        if sum(given) != 1:
            raise ValueError("set_step takes exactly one of `to`, `event` (with `node`) or `phase`")
        if (self.event is None) != (self.node is None):
            raise ValueError("set_step: `event` and `node` go together")
        return self


class Select(_Strict):
    """expression: pin a node (by variable name) in the inspector; no node unpins."""

    do: Literal["select"]
    node: str | None = Field(None, max_length=64)


class BackwardAgain(_Strict):
    """expression: call backward `times` more times without zeroing .grad."""

    do: Literal["backward_again"]
    times: int = Field(1, ge=1, le=20)


class DescentStep(_Strict):
    """expression: `times` steps of gradient descent on every param."""

    do: Literal["descent_step"]
    times: int = Field(1, ge=1, le=100)


class SetPreset(_Strict):
    """network or pretrain: pick a preset by name (network: seed, mlp-50-30-20-3, toy-2d; pretrain: tiny,
    small, gpt2-124m)."""

    do: Literal["set_preset"]
    name: str = Field(max_length=100)


class SetSpec(_Strict):
    """network: change fields of the network spec (hidden, activations, lr, optimizer, ...)."""

    do: Literal["set_spec"]
    fields: dict[str, Any]


class SkipZeroGrad(_Strict):
    """network: whether the last recorded iteration skips optimizer.zero_grad()."""

    do: Literal["skip_zero_grad"]
    value: bool = True


class Record(_Strict):
    """network: record `iterations` training iterations on a fresh model; the player shows the last."""

    do: Literal["record"]
    iterations: int = Field(1, ge=1, le=200)


class SetConfig(_Strict):
    """pretrain: change fields of the GPT configuration (vocab_size, context_length, emb_dim, hidden_dim,
    n_heads, n_layers, drop_rate, qkv_bias, tie_weights)."""

    do: Literal["set_config"]
    fields: dict[str, Any]


class SetSettings(_Strict):
    """pretrain: change training settings (steps, batch_size, lr, eval_every, sample_every, ...)."""

    do: Literal["set_settings"]
    fields: dict[str, Any]


Action = Annotated[
    LoadExample | SetSource | SetParam | SetStep | Select | BackwardAgain | DescentStep | SetPreset | SetSpec
    | SkipZeroGrad | Record | SetConfig | SetSettings,
    Field(discriminator="do"),
]

ACTIONS: dict[str, tuple[str, ...]] = {
    "expression": ("load_example", "set_source", "set_param", "set_step", "select", "backward_again",
                   "descent_step"),
    "network": ("set_preset", "set_spec", "skip_zero_grad", "record", "set_step"),
    "pretrain": ("set_preset", "set_config", "set_settings"),
}

# ------------------------------------------------------------------------------------------- facts
# What the app computes for an exercise, and which exercise kinds may ask for it.

NUMBER_FACTS = ("value", "grad", "local", "rank", "net_grad", "net_value", "net_loss", "net_parameters",
                "parameters", "parameters_change", "attention_row_sum", "smallest_grad_layer", "lr_suggested",
                "dead_share", "grad_spread")
SHAPE_FACTS = ("shape", "stride", "grad_shape")
CHOICE_FACTS = ("dtype", "contiguous", "program_ok", "fd_best_h", "parameters_trend", "lower_loss",
                "val_trend", "attention_zero", "finetune_compare")
DO_FACTS = ("run_done", "samples_seen", "finetune_done", "grad_accumulated", "player_at", "selected",
            "run_trains")
FACT_KINDS: dict[str, str] = {
    **{f: "number" for f in NUMBER_FACTS}, **{f: "shape" for f in SHAPE_FACTS},
    **{f: "choice" for f in CHOICE_FACTS}, **{f: "do" for f in DO_FACTS},
}
# a choice may also ask for a number or shape fact (its options' `means` are numbers or shapes)
ALLOWED_KINDS = {"number": ("number",), "shape": ("shape",), "choice": ("choice", "number", "shape"),
                 "do": ("do",)}


class Answer(_Strict):
    """Which fact of the state is the answer (see docs/lessons.md for every fact and its arguments)."""

    fact: str
    node: str | None = Field(None, max_length=64)  # expression: a variable name of the program
    index: list[int] = Field(default_factory=list, max_length=8)  # an element of a tensor value
    param: str | None = Field(None, max_length=100)  # network: a parameter name (fc2.bias)
    part: Literal["total", "embeddings", "attention", "mlp", "norms", "head"] = "total"
    tied: bool | None = None  # parameters: count as tied / untied; None: as the config says
    base: str | None = Field(None, max_length=100)  # parameters_change: the preset to compare with
    event: Literal["forward", "backward", "end"] | None = None  # player_at: where the player must be

    @model_validator(mode="after")
    def _known(self) -> Answer:
        if self.fact not in FACT_KINDS:
            raise ValueError(f"unknown fact {self.fact!r}; choose one of {', '.join(FACT_KINDS)}")
        needs_node = {"value", "grad", "local", "rank", "shape", "stride", "grad_shape", "dtype",
                      "contiguous"}
        if self.fact in needs_node and not self.node:
            raise ValueError(f"fact {self.fact!r} needs `node` (a variable name of the program)")
        if self.fact in ("net_grad", "net_value") and not self.param:
            raise ValueError(f"fact {self.fact!r} needs `param` (a parameter name such as fc2.bias)")
        if self.fact in ("parameters_change", "parameters_trend", "run_trains") and not self.base:
            raise ValueError(f"fact {self.fact!r} needs `base` (the preset to compare with)")
        return self


class Exercise(BaseModel):
    """What a step asks of the student. The expected answer is computed by the app (see runner.expected)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["number", "shape", "choice", "do"]
    prompt: str
    choices: list[str] = []
    answer: Answer
    # choice: what each option stands for, compared with the computed fact (default: the option's text)
    means: list[str | float | bool | list[int]] = []
    tolerance: float | None = Field(None, ge=0)  # number: allowed error; None: exact for whole numbers,
    relative: bool = True  # else 1 % (or 0.0005 absolute, whichever is larger)
    hint: str = ""  # shown after the first wrong answer (a generic hint when empty)
    explain: str = ""  # shown with the worked answer, before the computation

    @model_validator(mode="after")
    def _consistent(self) -> Exercise:
        fact_kind = FACT_KINDS.get(self.answer.fact)
        if fact_kind not in ALLOWED_KINDS[self.kind]:
            raise ValueError(f"a {self.kind} exercise cannot ask for fact {self.answer.fact!r} "
                             f"(a {fact_kind} fact)")
        if self.kind == "choice":
            if len(self.choices) < 2:
                raise ValueError("a choice exercise needs at least two choices")
            if self.means and len(self.means) != len(self.choices):
                raise ValueError("`means` needs one entry per choice")
            if fact_kind != "choice" and not self.means:
                raise ValueError(f"a choice on the {fact_kind} fact {self.answer.fact!r} needs `means`")
        elif self.choices or self.means:
            raise ValueError(f"`choices` and `means` belong to choice exercises, not {self.kind}")
        return self


class Step(BaseModel):
    """One step: a short text, an optional action on a workspace, an optional exercise."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str
    text: str = Field(max_length=MAX_TEXT)
    workspace: Literal["expression", "network", "pretrain"] | None = None
    actions: list[Action] = Field(default_factory=list, max_length=20)
    figure: Literal["fd_error"] | None = None  # a plot the panel shows (figure_data computes it)
    exercise: Exercise | None = None

    @model_validator(mode="after")
    def _actions_fit(self) -> Step:
        for i, action in enumerate(self.actions):
            if self.workspace is None:
                raise ValueError("a step with actions names its `workspace`")
            if action.do not in ACTIONS[self.workspace]:
                raise ValueError(f"actions.{i}: the {self.workspace} workspace has no action {action.do!r}; "
                                 f"it has {', '.join(ACTIONS[self.workspace])}")
            problem = _name_problem(self.workspace, action)
            if action.do == "set_step" and self.workspace == "expression" and action.phase is not None:
                problem = "set_step: `phase` is for the network workspace; use `to` or `event` and `node`"
            if action.do == "set_step" and self.workspace == "network" and action.event is not None:
                problem = "set_step: `event` is for the expression workspace; use `to` or `phase`"
            if problem:
                raise ValueError(f"actions.{i}: {problem}")
        if self.figure == "fd_error" and self.workspace != "expression":
            raise ValueError("figure fd_error plots the expression workspace's program: set workspace")
        return self


def _name_problem(workspace: str, action) -> str | None:
    """An unknown preset, example or field name in an action (the models would refuse it later)."""
    import dataclasses

    known: list[str] | None = None
    if action.do == "load_example":
        from explorer.core.lang.examples import list_examples

        known, given = [name for name, _title in list_examples()], [action.name]
    elif action.do == "set_preset" and workspace == "network":
        from explorer.core.mlp.network import PRESETS

        known, given = list(PRESETS), [action.name]
    elif action.do == "set_preset":
        from explorer.core.gpt.budget import preset_names

        known, given = preset_names(), [action.name]
    elif action.do in ("set_spec", "set_config", "set_settings"):
        if action.do == "set_spec":
            from explorer.core.mlp.network import NetSpec as kind
        elif action.do == "set_config":
            from explorer.core.gpt.model import GPTConfig as kind
        else:
            from explorer.core.gpt.train import TrainSettings as kind
        known, given = [f.name for f in dataclasses.fields(kind)], list(action.fields)
    for name in given if known is not None else []:
        if name not in known:
            return f"{action.do}: unknown name {name!r}; choose one of {', '.join(known)}"
    return None


class Lesson(BaseModel):
    """A lesson: an ordered list of steps."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str
    summary: str = ""
    steps: list[Step] = Field(min_length=1, max_length=200)
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        """The folder of the lesson's file, the only place its images come from (None: made from text,
        no images). Never read from the file itself: a lesson cannot point it elsewhere."""
        return self._folder

    def located_in(self, folder: str | Path) -> Lesson:
        """This lesson, read from a file in `folder`."""
        self._folder = Path(folder)
        return self

    @model_validator(mode="after")
    def _unique_steps(self) -> Lesson:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"two steps have the id {step.id!r}")
            seen.add(step.id)
        return self


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
    # False when the answer was no answer at all (no number in it), or the state lacks what the exercise
    # needs (no finished run yet): the message says what to do, and the try does not count
    counted: bool = True


@dataclass
class Figure:
    """A small plot a step shows (the panel draws it): points, axes and a note under it."""

    title: str
    x: list[float]
    y: list[float]
    xlabel: str
    ylabel: str
    logx: bool = False
    logy: bool = False
    note: str = ""
