"""The network workspace's state, Qt-free (and torch-free until an iteration runs): the spec, the iteration
player, the toy data and its runs.

`NetworkWorkspace.state` holds what a session saves (spec, preset name, skip zero_grad, how many iterations
were run and the player's step, the dataset settings, the toy runs with their curves). Setting a field emits
`state.events.<field>`; the view follows. The network's weights are not saved: they are rebuilt from the
seeded spec by replaying `iterations` iterations, which gives the same numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from psygnal import EventedModel, Signal, SignalGroup
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from explorer.core.mlp.spec import (
    ACTIVATION_LABELS,
    DATASET_LABELS,
    HEALTH_KEYS,
    INITS,
    LOSSES,
    OPTIMIZERS,
    PRESETS,
    NetSpec,
    NetSpecError,
    preset_spec,
)

if TYPE_CHECKING:  # torch's: imported where an iteration is run (a worker), not with the model
    from explorer.core.mlp.network import Iteration, NetSession

CUSTOM = "custom"
MAX_LAYERS = 6
MAX_WIDTH = 256
MAX_ITERATIONS = 200  # iterations replayed when a session is restored
MAX_RUNS = 6  # toy runs kept (the newest and five dimmed ones)
MAX_POINTS = 2000  # curve points saved per run


class SpecModel(BaseModel):
    """A NetSpec as saved: bounded fields, and the spec's own consistency check."""

    model_config = ConfigDict(extra="forbid")

    input_size: int = Field(2, ge=1, le=512)
    hidden: list[int] = Field(default_factory=lambda: [16, 16], max_length=MAX_LAYERS)
    activations: list[str] = Field(default_factory=lambda: ["tanh", "tanh"], max_length=MAX_LAYERS)
    output_size: int = Field(1, ge=1, le=64)
    output_activation: str = "none"
    loss: str = "bce-logits"
    optimizer: str = "adam"
    lr: float = Field(0.03, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=10)
    batch_size: int = Field(32, ge=1, le=512)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    init: str = "default"  # a key of INITS (sessions saved before it existed load as the default)

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(not 1 <= w <= MAX_WIDTH for w in value):
            raise ValueError(f"every hidden layer has 1 to {MAX_WIDTH} units")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SpecModel:
        for act in [*self.activations, self.output_activation]:
            if act not in ACTIVATION_LABELS:
                raise ValueError(f"unknown activation {act!r}")
        if self.init not in INITS:
            raise ValueError(f"unknown initialisation {self.init!r}")
        if self.loss not in LOSSES or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown loss or optimizer ({self.loss!r}, {self.optimizer!r})")
        try:
            self.spec().validate()
        except NetSpecError as exc:
            raise ValueError(str(exc)) from None
        return self

    def spec(self) -> NetSpec:
        """The NetSpec these fields describe."""
        return NetSpec.from_dict(self.model_dump())

    @classmethod
    def of(cls, spec: NetSpec) -> SpecModel:
        """The saved form of a spec."""
        return cls.model_validate(spec.to_dict())


class DatasetModel(BaseModel):
    """The toy dataset's settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = "moons"
    noise: float = Field(0.1, ge=0, le=0.5)
    count: int = Field(200, ge=40, le=2000)
    test_fraction: float = Field(0.25, ge=0.1, le=0.5)
    seed: int = Field(0, ge=0, le=9999)
    steps: int = Field(1000, ge=10, le=50_000)
    speed: int = Field(1, ge=0, le=3)  # index into the speeds of the training view

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DATASET_LABELS:
            raise ValueError(f"unknown dataset {value!r}; choose one of {', '.join(DATASET_LABELS)}")
        return value


MAX_BOUNDARY = 128  # cells per side of a saved decision boundary


def _finite_list(values: list[float]) -> list[float]:
    if any(not math.isfinite(v) for v in values):
        raise ValueError("curve values must be finite numbers")
    return values


class ToyRun(BaseModel):
    """One training run on the toy data: what it trained and its curves."""

    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1, le=10**6)
    label: str = Field(max_length=200)
    planned_steps: int = Field(ge=1, le=50_000)
    spec: SpecModel
    dataset: DatasetModel
    status: str = Field("done", pattern="^(running|paused|done|stopped|error)$")
    steps: list[int] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    train_loss: list[float] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    test_loss: list[float] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    train_acc: list[float] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    test_acc: list[float] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    # the last decision boundary drawn: P(class 1) on a square grid over the plot (rows: y), to 3 decimals
    boundary: list[list[float]] | None = Field(None, max_length=MAX_BOUNDARY)

    # Per-layer health (explorer/core/mlp/health.py): per recorded step, one value per layer (None where
    # not finite or not applicable); empty for runs saved before it was measured.
    grad_norms: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    update_ratios: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    act_mean: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    act_std: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    saturated: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)
    dead: list[list[float | None]] = Field(default_factory=list, max_length=MAX_POINTS * 30)

    _finite = field_validator("train_loss", "test_loss", "train_acc", "test_acc")(
        classmethod(lambda cls, v: _finite_list(v)))

    @field_validator("boundary")
    @classmethod
    def _square_probabilities(cls, grid: list[list[float]] | None) -> list[list[float]] | None:
        if grid is None:
            return None
        if any(len(row) != len(grid) for row in grid):
            raise ValueError("a decision boundary is a square grid")
        if any(not (0.0 <= v <= 1.0) for row in grid for v in row):  # NaN fails too
            raise ValueError("a decision boundary holds probabilities between 0 and 1")
        return grid

    def set_boundary(self, grid) -> None:
        """Keep the newest boundary grid (a square array of probabilities), rounded to 3 decimals."""
        array = np.clip(np.round(np.asarray(grid, dtype=np.float64), 3), 0.0, 1.0)
        square = array.ndim == 2 and 0 < array.shape[0] == array.shape[1] <= MAX_BOUNDARY
        self.boundary = array.tolist() if square and np.isfinite(array).all() else None
    @field_validator(*HEALTH_KEYS)
    @classmethod
    def _health_rows(cls, value: list[list[float | None]]) -> list[list[float | None]]:
        if any(len(row) > MAX_LAYERS + 1 for row in value):
            raise ValueError(f"a health row has at most {MAX_LAYERS + 1} values")
        return [[v if v is None or math.isfinite(v) else None for v in row] for row in value]

    @model_validator(mode="after")
    def _same_lengths(self) -> ToyRun:
        n = len(self.steps)
        if any(len(c) != n for c in (self.train_loss, self.test_loss, self.train_acc, self.test_acc)):
            raise ValueError("every curve of a run has one value per recorded step")
        if any(len(getattr(self, k)) not in (0, n) for k in HEALTH_KEYS):
            raise ValueError("every health curve of a run has one row per recorded step")
        return self

    def add(self, record: dict) -> None:
        """Take one step record of the toy trainer."""
        self.steps.append(int(record["step"]))
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            getattr(self, key).append(float(record[key]))
        for key in HEALTH_KEYS:
            rows = getattr(self, key)
            if len(rows) == len(self.steps) - 1:
                rows.append(list(record.get(key) or []))

    def thinned(self) -> ToyRun:
        """A copy with at most MAX_POINTS points per curve (for saving)."""
        stride = max(1, math.ceil(len(self.steps) / MAX_POINTS))
        data = self.model_dump()
        for key in ("steps", "train_loss", "test_loss", "train_acc", "test_acc", *HEALTH_KEYS):
            data[key] = data[key][::stride]
        return ToyRun.model_validate(data)

    def health(self, key: str) -> np.ndarray:
        """One health figure as an array (recorded steps x layers), NaN where there is no value."""
        rows = getattr(self, key)
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            out[i, : len(row)] = [np.nan if v is None else v for v in row]
        return out


class NetworkState(EventedModel):
    """What the network workspace saves; setting a field emits `state.events.<field>`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    spec: SpecModel = Field(default_factory=lambda: SpecModel.of(preset_spec("seed")))
    preset: str = "seed"  # a preset name, or "custom" once a field differs from it
    skip_zero_grad: bool = False
    iterations: int = Field(1, ge=0, le=MAX_ITERATIONS)  # iterations recorded on this spec so far
    step: int = Field(0, ge=0)  # the phase player's step in the last iteration
    tab: int = Field(0, ge=0, le=1)  # 0: one iteration, 1: train on toy data
    selected: str | None = Field(None, max_length=200)  # the graph card shown in the inspector
    dataset: DatasetModel = Field(default_factory=DatasetModel)
    runs: list[ToyRun] = Field(default_factory=list, max_length=MAX_RUNS)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value != CUSTOM and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of {', '.join(PRESETS)} or custom")
        return value

    @model_validator(mode="after")
    def _preset_matches(self) -> NetworkState:
        # "seed" over edited values would come back as the preset's values: call it custom instead.
        if self.preset != CUSTOM and SpecModel.of(preset_spec(self.preset)) != self.spec:
            object.__setattr__(self, "preset", CUSTOM)
        return self


class NetworkEvents(SignalGroup):
    """Derived events of the network workspace."""

    recorded = Signal(object)
    """A new iteration is recorded (an Iteration); the player starts at its step 0."""
    runs_changed = Signal()
    """A toy run was added, grew or was removed."""


class NetworkWorkspace:
    """The network workspace: state, the session that runs iterations, the last iteration."""

    key = "network"

    def __init__(self) -> None:
        self.state = NetworkState()
        self.events = NetworkEvents()
        self.iteration: Iteration | None = None

    # -- the network ----------------------------------------------------------------------------

    def spec(self) -> NetSpec:
        """The spec being explored."""
        return self.state.spec.spec()

    def set_preset(self, name: str) -> None:
        """Pick a preset (raises NetSpecError for an unknown name)."""
        spec = preset_spec(name)
        self.state.update({"spec": SpecModel.of(spec), "preset": name, "iterations": 1, "step": 0})

    def set_spec(self, spec: NetSpec) -> None:
        """Edit the spec (raises NetSpecError when it does not make sense); the preset becomes custom."""
        spec.validate()
        model = SpecModel.of(spec)
        preset = self.state.preset
        if preset == CUSTOM or SpecModel.of(preset_spec(preset)) != model:
            preset = CUSTOM
        self.state.update({"spec": model, "preset": preset, "iterations": 1, "step": 0})

    # -- iterations -------------------------------------------------------------------------------

    def new_session(self) -> NetSession:
        """A fresh session of the spec (its model at the seed's initial weights; imports torch)."""
        from explorer.core.mlp.network import NetSession

        return NetSession(self.spec())

    def record(self, session: NetSession | None = None, iterations: int | None = None) -> Iteration:
        """Run `iterations` (default: the state's) iterations on a fresh session and keep the last.

        Every iteration but the last runs with zero_grad; the last follows `skip_zero_grad`. Blocking:
        a view calls it on a worker thread, then `show(iteration)` on the GUI thread.
        """
        session = session or self.new_session()
        n = max(1, self.state.iterations if iterations is None else iterations)
        iteration = None
        for i in range(n):
            last = i == n - 1
            iteration = session.run_iteration(skip_zero_grad=self.state.skip_zero_grad and last)
        return iteration

    def show(self, iteration: Iteration, step: int = 0) -> None:
        """Make a recorded iteration the one the player shows; emits `events.recorded`."""
        self.iteration = iteration
        self.state.update({"iterations": iteration.index, "step": min(step, len(iteration.phases))})
        self.events.recorded.emit(iteration)

    def set_step(self, k: int) -> None:
        """Move the phase player."""
        length = len(self.iteration.phases) if self.iteration is not None else 0
        self.state.step = max(0, min(int(k), length))

    # -- toy runs ---------------------------------------------------------------------------------

    def start_run(self, planned_steps: int) -> ToyRun:
        """A new toy run of the current spec and dataset (the oldest beyond MAX_RUNS is dropped)."""
        runs = list(self.state.runs)
        number = runs[-1].number + 1 if runs else 1
        spec = self.spec()
        layers = "-".join(map(str, spec.hidden)) or "linear"
        label = f"run {number}: {spec.optimizer} lr {spec.lr:g}, {layers}"
        run = ToyRun(number=number, label=label, planned_steps=planned_steps, spec=self.state.spec,
                     dataset=self.state.dataset, status="running")
        self.state.runs = [*runs[-(MAX_RUNS - 1):], run]
        self.events.runs_changed.emit()
        return run

    def add_records(self, records: list[dict]) -> None:
        """Step records of the newest run (from the training worker)."""
        if not self.state.runs:
            return
        run = self.state.runs[-1]
        for record in records:
            if record.get("type") == "step":
                run.add(record)
            elif record.get("type") == "boundary" and record.get("grid") is not None:
                run.set_boundary(record["grid"])
        self.events.runs_changed.emit()

    def finish_run(self, status: str) -> None:
        """The newest run ended: done, stopped or error."""
        if self.state.runs:
            self.state.runs[-1].status = status if status in ("done", "stopped", "error") else "stopped"
            self.events.runs_changed.emit()

    def clear_runs(self) -> None:
        """Forget every toy run."""
        self.state.runs = []
        self.events.runs_changed.emit()

    # -- saving -----------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The state as JSON-able data (curves thinned)."""
        data = self.state.model_dump(mode="json")
        data["runs"] = [r.thinned().model_dump(mode="json") for r in self.state.runs]
        return data

    @staticmethod
    def validate(data: dict) -> NetworkState:
        """A validated state from saved data (raises pydantic.ValidationError)."""
        return NetworkState.model_validate(data)

    def load(self, state: NetworkState) -> None:
        """Apply a validated state field by field (each emits its event)."""
        self.state.update({k: getattr(state, k) for k in NetworkState.model_fields})
        self.events.runs_changed.emit()
