"""The pretraining workspace's state, Qt-free: the configuration, the runs and their files.

`PretrainWorkspace.state` holds the form's preset, GPT config, training settings and corpus, and the selected
run; `runs` the run records (config, settings, curves, status, checkpoint), announced by `events`. Every run's
files live in the per-user data folder (platformdirs), under the run's name:
`runs/run-N/checkpoint.safetensors`, `metrics.csv` and `run.json`. So a trained model survives a restart:
attention maps, tracing and resuming work on it the next day. A session names runs; it never points the
app at files outside that folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import EventedModel, Signal, SignalGroup
from pydantic import BaseModel, ConfigDict, Field, field_validator

from explorer.core import files
from explorer.core.gpt import budget
from explorer.core.gpt.model import ConfigError, GPTConfig
from explorer.core.gpt.runs import (
    EVAL_KEYS,
    PALETTE,
    STEP_KEYS,
    PretrainRun,
    describe_config,
    health_entry,
)
from explorer.core.gpt.train import TrainSettings

DATA_ENV = "AUTOGRAD_EXPLORER_DATA"  # overrides the data folder (tests, portable installs)
MAX_RUNS = 1000
MAX_POINTS = 100_000  # per curve of a saved run
# A loaded session overlays at most this many runs (the newest shown ones); more curves than this on one
# plot cannot be told apart, and each costs the window time. The others are ticked on in the run list.
MAX_SHOWN_RUNS = 12
CHECKPOINT = "checkpoint.safetensors"


def data_dir() -> Path:
    """The per-user data folder: $AUTOGRAD_EXPLORER_DATA, else platformdirs' user data dir."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("autograd-explorer", appauthor=False))


def runs_dir() -> Path:
    """Where every run keeps its folder."""
    return data_dir() / "runs"


def run_folder(run_id: int) -> Path:
    """The folder of run `run_id` (named after the run: run-N)."""
    return runs_dir() / f"run-{int(run_id)}"


def _checked(kind, value: dict) -> dict:
    """`value` as a valid GPTConfig or TrainSettings dict (ValueError listing what is wrong)."""
    try:
        obj = kind.from_dict(value)
    except (ConfigError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    problems = obj.problems()
    if problems:
        raise ValueError("; ".join(problems.values()))
    return obj.to_dict()


def _config_dict(value: dict) -> dict:
    return _checked(GPTConfig, value)


def _settings_dict(value: dict) -> dict:
    return _checked(TrainSettings, value)


def _corpus_path(value: str | None) -> str | None:
    if not value:
        return None
    problem = files.regular_file_problem(value, "corpus")
    if problem:
        raise ValueError(f"corpus {Path(value).name}: {problem}")
    return value


class RunModel(BaseModel):
    """A run as a session saves it (validated before anything is applied)."""

    model_config = ConfigDict(extra="forbid")

    run_id: int = Field(ge=1, le=10**7)
    name: str = Field(max_length=300)
    config: dict[str, Any]
    settings: dict[str, Any]
    corpus: str | None = Field(None, max_length=4096)
    color: str = Field(PALETTE[0], pattern="^#[0-9a-fA-F]{6}$")
    status: str = Field("done", pattern="^(starting|running|paused|done|stopped|error)$")
    message: str = Field("", max_length=2000)
    checkpoint: str | None = Field(None, max_length=4096)
    visible: bool = True
    continues: int | None = Field(None, ge=1, le=10**7)  # the run this one resumed
    samples: list[tuple[int, str]] = Field(default_factory=list, max_length=100)
    steps: dict[str, list[float | None]] = Field(default_factory=dict)
    evals: dict[str, list[float | None]] = Field(default_factory=dict)

    _config = field_validator("config")(classmethod(lambda cls, v: _config_dict(v)))
    _settings = field_validator("settings")(classmethod(lambda cls, v: _settings_dict(v)))
    _corpus = field_validator("corpus")(classmethod(lambda cls, v: _corpus_path(v)))

    @field_validator("checkpoint")
    @classmethod
    def _inside_data_folder(cls, value: str | None) -> str | None:
        """Only a checkpoint in the app's own runs folder is ever opened; a missing one is forgotten."""
        if not value:
            return None
        root = runs_dir().resolve()
        path = Path(value).resolve()
        if root not in path.parents:
            raise ValueError(f"the checkpoint {Path(value).name} is not in the app's runs folder")
        if not path.exists():
            return None
        problem = files.regular_file_problem(path, "checkpoint")
        if problem:
            raise ValueError(f"checkpoint {path.name}: {problem}")
        return str(path)

    @field_validator("steps", "evals")
    @classmethod
    def _curves(cls, value: dict) -> dict:
        for key, values in value.items():
            if key not in (*STEP_KEYS, *EVAL_KEYS):
                raise ValueError(f"unknown curve {key!r}")
            if len(values) > MAX_POINTS:
                raise ValueError(f"curve {key}: more than {MAX_POINTS:,} points")
        return value

    @field_validator("samples")
    @classmethod
    def _short_samples(cls, value: list) -> list:
        if any(len(text) > 10_000 for _, text in value):
            raise ValueError("a sample is longer than 10,000 characters")
        return value


class PretrainState(EventedModel):
    """What the pretraining form shows, and the selected run; setting a field emits its event."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: str = "tiny"  # a preset name, or "custom" once a field differs from it
    config: dict[str, Any] = Field(default_factory=lambda: budget.preset_config("tiny"))
    settings: dict[str, Any] = Field(default_factory=lambda: budget.base_settings("tiny"))
    corpus: str | None = Field(None, max_length=4096)
    selected: int | None = Field(None, ge=1)
    gpus: int = Field(1, ge=1, le=1024)  # ranks of a run on CUDA (torchrun); 1 trains in one process

    _config = field_validator("config")(classmethod(lambda cls, v: _config_dict(v)))
    _settings = field_validator("settings")(classmethod(lambda cls, v: _settings_dict(v)))
    _corpus = field_validator("corpus")(classmethod(lambda cls, v: _corpus_path(v)))

    @field_validator("preset")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != "custom" and value not in budget.preset_names():
            raise ValueError(f"unknown preset {value!r}; choose one of {', '.join(budget.preset_names())}")
        return value


class SavedPretrain(BaseModel):
    """The pretraining part of a session file."""

    model_config = ConfigDict(extra="forbid")

    state: PretrainState = Field(default_factory=PretrainState)
    runs: list[RunModel] = Field(default_factory=list, max_length=MAX_RUNS)


class PretrainEvents(SignalGroup):
    """Events of the run records (the form's fields have theirs on `state.events`)."""

    run_added = Signal(int)
    """A run (its id) was added: started now or restored."""
    run_changed = Signal(int)
    """A run's records, status or checkpoint changed."""
    run_removed = Signal(int)
    """A run and its files were deleted."""
    runs_reset = Signal()
    """Every run was replaced (a session was opened)."""


class PretrainWorkspace:
    """Form state, run records, and the runs' files in the data folder."""

    key = "pretrain"

    def __init__(self) -> None:
        self.state = PretrainState()
        self.events = PretrainEvents()
        self.runs: dict[int, PretrainRun] = {}
        files.remove_stale_temporaries(runs_dir())

    # -- the form ---------------------------------------------------------------------------------

    def set_preset(self, name: str) -> None:
        """Fill config and settings from a preset (ValueError for an unknown name)."""
        if name not in budget.preset_names():
            raise ValueError(f"unknown pretraining preset {name!r}; choose one of "
                             f"{', '.join(budget.preset_names())}")
        self.state.update({"preset": name, "config": budget.preset_config(name),
                           "settings": budget.base_settings(name)})

    # -- runs -------------------------------------------------------------------------------------

    def next_run_id(self) -> int:
        """An id no run of this session nor any folder in the data folder uses."""
        used = set(self.runs)
        try:
            for entry in runs_dir().iterdir():
                match = re.fullmatch(r"run-(\d+)", entry.name)
                if match:
                    used.add(int(match.group(1)))
        except OSError:
            pass
        return max(used, default=0) + 1

    def new_run(self, config: dict, settings: dict, corpus: str | None,
                continues: int | None = None) -> PretrainRun:
        """Register a run about to train (continuing run `continues`, if given); its checkpoint goes to its
        own folder."""
        run_id = self.next_run_id()
        color = PALETTE[(run_id - 1) % len(PALETTE)]
        run = PretrainRun(run_id, "", dict(config), dict(settings), corpus, color)
        origin = f" · continues run {continues}" if continues else ""
        run.name = f"Run {run_id} · {describe_config(config, settings)}{origin} · {corpus_label(corpus)}"
        folder = run_folder(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        run.checkpoint = None
        run.continues = continues
        self.runs[run_id] = run
        self.state.selected = run_id
        self.events.run_added.emit(run_id)
        return run

    def checkpoint_path(self, run_id: int) -> Path:
        """Where run `run_id`'s checkpoint is (or will be) written."""
        return run_folder(run_id) / CHECKPOINT

    def add_records(self, run_id: int, records: list[dict]) -> None:
        """Records from the training process."""
        run = self.runs.get(run_id)
        if run is None:
            return
        for record in records:
            run.add(record)
        self.events.run_changed.emit(run_id)

    def finish_run(self, run_id: int, status: str, message: str = "", checkpoint: str | None = None) -> None:
        """A run ended; its record and metrics are written to its folder."""
        run = self.runs.get(run_id)
        if run is None:
            return
        if run.status not in ("done", "stopped", "error") or status == "error":
            run.status = status
            run.message = message or run.message
        if checkpoint and Path(checkpoint).exists():
            run.checkpoint = checkpoint
        self.save_run_files(run_id)
        self.events.run_changed.emit(run_id)

    def save_run_files(self, run_id: int) -> None:
        """Write run.json and metrics.csv into the run's folder (atomically)."""
        run = self.runs[run_id]
        folder = run_folder(run_id)
        try:
            files.write_atomic(folder / "run.json", json.dumps(run.to_state(max_points=MAX_POINTS)))
            files.write_atomic(folder / "metrics.csv", metrics_csv(run))
            if run.health:
                files.write_atomic(folder / HEALTH_CSV, health_csv(run.health))
        except files.FileProblem:
            pass  # the run stays in the session; its folder just lacks the summary

    def delete_run(self, run_id: int) -> None:
        """Forget a run and delete its folder (the view asks for confirmation first)."""
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        shutil.rmtree(run_folder(run_id), ignore_errors=True)
        if self.state.selected == run_id:
            self.state.selected = None
        self.events.run_removed.emit(run_id)

    def export_run(self, run_id: int, folder: str | os.PathLike) -> list[Path]:
        """Copy a run's checkpoint and write its metrics CSV into `folder`; the paths written."""
        run = self.runs[run_id]
        target = Path(folder)
        written = [files.write_atomic(target / f"run-{run_id}-metrics.csv", metrics_csv(run))]
        if run.checkpoint and Path(run.checkpoint).exists():
            data = files.read_bytes(run.checkpoint, "checkpoint")
            written.append(files.write_atomic(target / f"run-{run_id}.safetensors", data))
            meta = Path(run.checkpoint).with_suffix(".json")
            if meta.exists():
                written.append(files.write_atomic(target / f"run-{run_id}.json",
                                                  files.read_bytes(meta, "metadata")))
        return written

    def model_source(self, run_id: int | None = None) -> dict[str, Any]:
        """What attention maps and tracing look at: the run (default: selected, else latest) with a
        checkpoint, or the form's untrained model."""
        wanted = run_id if run_id is not None else self.state.selected
        candidates = [self.runs.get(wanted) if wanted is not None else None, *reversed(self.runs.values())]
        for run in candidates:
            if run is not None and run.checkpoint and Path(run.checkpoint).exists():
                return {"checkpoint": run.checkpoint, "config": run.config, "settings": run.settings,
                        "corpus": run.corpus, "name": run.name, "run_id": run.run_id}
        return {"checkpoint": None, "config": self.state.config, "settings": self.state.settings,
                "corpus": self.state.corpus, "name": "an untrained model (form settings)", "run_id": None}

    # -- saving -----------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The form state and every run (curves thinned) as JSON-able data."""
        return {"state": self.state.model_dump(mode="json"),
                "runs": [run.to_state() for run in self.runs.values()]}

    @staticmethod
    def validate(data: dict) -> SavedPretrain:
        """Validated saved data (raises pydantic.ValidationError)."""
        return SavedPretrain.model_validate(data)

    def load(self, saved: SavedPretrain) -> None:
        """Replace the form state and the runs by validated saved data; each run appears once."""
        runs = {}
        for model in saved.runs:
            run = PretrainRun.from_state(model.model_dump())
            run.health = read_health(run_folder(run.run_id) / HEALTH_CSV)
            runs[run.run_id] = run
        shown = [run for run in runs.values() if run.visible]
        for run in shown[:-MAX_SHOWN_RUNS]:  # only the newest few overlaid; the rest stay in the run list
            run.visible = False
        self.runs = runs
        self.state.update({k: getattr(saved.state, k) for k in PretrainState.model_fields})
        if self.state.selected is not None and self.state.selected not in self.runs:
            self.state.selected = None
        self.events.runs_reset.emit()


def sample_text(checkpoint: str, prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
                seed: int = 0) -> str:
    """Text a trained run writes after `prompt` (seeded: the same call gives the same text)."""
    import torch

    from explorer.core.gpt.checkpoint import load_model

    model, tokenizer, _ckpt = load_model(checkpoint, "cpu")
    ids = tokenizer.encode(prompt or "\n")
    if not ids:
        raise ValueError("none of the prompt's characters occur in this model's corpus: type other text")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids], dtype=torch.long), max_new_tokens, temperature=temperature,
                             generator=generator)
    return tokenizer.decode(out[0].tolist())


@dataclass
class AttentionResult:
    """Attention weights (n_layers, n_heads, T, T), the prompt's tokens as text, the checkpoint step;
    `prompt_tokens` counts the prompt's tokens before it was cut to the context length."""

    maps: np.ndarray
    tokens: list[str]
    step: int
    name: str
    prompt_tokens: int = 0
    context_length: int = 0

    @property
    def cut(self) -> int:
        """How many tokens at the start of the prompt the model did not read (0: none)."""
        return max(0, self.prompt_tokens - len(self.tokens))

    def cut_note(self) -> str:
        """The note shown when the prompt was longer than the context length ("" when it was not)."""
        if not self.cut:
            return ""
        return (f"The prompt has {self.prompt_tokens} tokens but the model reads at most "
                f"{self.context_length} (its context length): the first {self.cut} are left out.")


def compute_attention(checkpoint: str, prompt: str, name: str = "") -> AttentionResult:
    """Load a checkpoint on the CPU and run the prompt through it, keeping every attention pattern."""
    import torch

    from explorer.core.gpt.checkpoint import load_model

    model, tokenizer, ckpt = load_model(checkpoint, "cpu")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("none of the prompt's characters occur in this model's corpus: type other text")
    context = int(model.config.context_length)
    prompt_tokens = len(ids)
    ids = ids[-context:]
    maps = model.attention_maps(torch.tensor(ids, dtype=torch.long)).numpy()
    tokens = [tokenizer.decode([i]) for i in ids]
    return AttentionResult(maps, tokens, int(ckpt.step), name, prompt_tokens, context)


def corpus_label(corpus: str | None) -> str:
    """How a run names its corpus: the file name, or "pydoc" for the built-in one."""
    return Path(corpus).name if corpus else "pydoc"


def metrics_csv(run: PretrainRun) -> str:
    """The run's step and eval curves as CSV text (one row per step record)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*STEP_KEYS, "val_loss"])
    evals = dict(zip(run.evals["step"].view().tolist(), run.evals["val_loss"].view().tolist(), strict=True))
    columns = [run.steps[key].view().tolist() for key in STEP_KEYS]
    for row in zip(*columns, strict=True):
        val = evals.get(row[0])
        writer.writerow([_cell(v) for v in (*row, val)])
    return out.getvalue()


HEALTH_CSV = "health.csv"
HEALTH_HEADER = ("step", "grad_norm", "block_grad_norms", "update_ratios")


def health_csv(entries: list[dict]) -> str:
    """The run's per-block health as CSV text: one row per measured step; the list cells are JSON
    (`[0.21,0.13]`, one number per block in order, null where not finite), as in the trainer's metrics.csv."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEALTH_HEADER)
    for e in entries:
        writer.writerow([e["step"], _cell(e["grad_norm"]),
                         json.dumps(e["block_grad_norms"], separators=(",", ":")),
                         json.dumps(e["update_ratios"], separators=(",", ":"))])
    return out.getvalue()


def parse_health_csv(text: str) -> list[dict]:
    """Entries from `health_csv` text; a file that is not one (wrong header, bad cells) gives []."""
    rows = csv.reader(io.StringIO(text))
    if tuple(next(rows, ())) != HEALTH_HEADER:
        return []
    entries = []
    try:
        for step, grad_norm, grads, ratios in rows:
            lists = [json.loads(grads, parse_constant=lambda _c: None),
                     json.loads(ratios, parse_constant=lambda _c: None)]
            if not all(isinstance(v, list) for v in lists):
                return []
            entries.append(health_entry({"step": int(step), "grad_norm": grad_norm or None,
                                         "block_grad_norms": lists[0], "update_ratios": lists[1]}))
    except (ValueError, TypeError, RecursionError):
        return []
    return entries


def read_health(path: Path) -> list[dict]:
    """A run folder's health.csv ([] when it is missing, too large, not a regular file or not valid)."""
    if not path.exists():
        return []
    try:
        return parse_health_csv(files.read_text(path, "health records"))
    except files.FileProblem:
        return []


def _cell(value) -> str:
    if value is None or value != value:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))
