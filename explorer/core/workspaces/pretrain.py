"""The pretraining workspace's state, Qt-free: the configuration, the runs and their files.

`PretrainWorkspace.state` holds the form's preset, GPT config, training settings and corpus, and the selected
run; `runs` the run records (config, settings, curves, status, checkpoint), announced by `events`. Every run's
files live in the per-user data folder (platformdirs), under the run's name:
`runs/run-N/checkpoint.safetensors`, `metrics.csv`, `run.json` and `run-id`. So a trained model survives a
restart: attention maps, tracing and resuming work on it the next day. A session names runs; it never points
the app at files outside that folder.

The folder is the truth, shared by every window and command of the user: a run's number is taken by creating
its folder (an exclusive `mkdir`, so two processes never get the same one), and its `run-id` file holds a
random identity. A session names each run by number and identity and is refused when a folder now holds
another run (a number used again after a delete); deleting a run removes only a folder that holds its own
identity. `scan_folder` reads every run's `run.json`, so each window also lists the runs of the others. The
process that trains a run holds a `files.FolderLock` on its folder: a run whose folder is locked is training
somewhere, and is neither cleaned nor deleted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import EventedModel, Signal, SignalGroup
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from explorer.core import files
from explorer.core.gpt import budget, histograms
from explorer.core.gpt.runs import (
    EVAL_KEYS,
    PALETTE,
    STEP_KEYS,
    PretrainRun,
    describe_config,
    health_entry,
)
from explorer.core.gpt.spec import ConfigError, GPTConfig, TrainSettings

DATA_ENV = "AUTOGRAD_EXPLORER_DATA"  # overrides the data folder (tests, portable installs)
MAX_RUNS = 1000
MAX_POINTS = 100_000  # per curve of a saved run
# A loaded session overlays at most this many runs (the newest shown ones); more curves than this on one
# plot cannot be told apart, and each costs the window time. The others are ticked on in the run list.
MAX_SHOWN_RUNS = 12
CHECKPOINT = "checkpoint.safetensors"
RUN_ID = "run-id"  # the run's identity: {"uid": 32 hex digits, "run_id": N}, written when its folder is made
RUN_JSON = "run.json"
RUN_FOLDER = re.compile(r"run-(\d{1,7})")
UID = re.compile(r"[0-9a-f]{32}")


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


def run_ids_on_disk() -> list[int]:
    """The numbers of the run folders in the data folder, ascending ([] when it cannot be listed)."""
    try:
        names = [entry.name for entry in runs_dir().iterdir()]
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(RUN_FOLDER.fullmatch, names) if m)


def allocate_run(first: int = 1) -> tuple[int, str]:
    """Take a new run number (its folder created exclusively) and give it a random identity.

    Two processes may call this at once: `os.mkdir` without exist_ok succeeds for exactly one of them, and
    the other tries the next number. FileProblem (one line) when the data folder cannot be written.
    """
    root = runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.FileProblem(f"cannot create the runs folder in {data_dir()} "
                                f"({exc.strerror or exc})") from None
    number = max([first - 1, *run_ids_on_disk()]) + 1
    for _attempt in range(10_000):
        folder = root / f"run-{number}"
        try:
            os.mkdir(folder)
        except FileExistsError:
            number += 1
            continue
        except OSError as exc:
            raise files.FileProblem(f"cannot create a run folder in {root} ({exc.strerror or exc})") from None
        uid = uuid.uuid4().hex
        try:
            files.write_atomic(folder / RUN_ID, json.dumps({"uid": uid, "run_id": number}))
        except files.FileProblem:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return number, uid
    raise files.FileProblem(f"{root}: no free run number found")


def folder_uid(folder: Path) -> str | None:
    """The identity written in a run folder, or None (an older run, or none readable)."""
    try:
        data = json.loads(files.read_text(folder / RUN_ID, "config"))
    except (files.FileProblem, ValueError, RecursionError):
        return None
    uid = data.get("uid") if isinstance(data, dict) else None
    return uid if isinstance(uid, str) and UID.fullmatch(uid) else None


def identity_problem(run_id: int, uid: str | None) -> str | None:
    """Why run `run_id` of identity `uid` cannot be attached to its folder (None: it can, or the folder is
    gone and nothing would be attached)."""
    folder = run_folder(run_id)
    if not folder.is_dir():
        return None
    if folder_uid(folder) != uid:
        return (f"run {run_id}'s folder now holds another run (made after this was saved, with the same "
                f"number); it is not attached")
    return None


def remove_stale_run_temporaries() -> int:
    """Delete what killed writers left in the runs folder and in every run folder no live process is
    writing (one holding its lock); returns how many files went."""
    removed = files.remove_stale_temporaries(runs_dir())
    for run_id in run_ids_on_disk():
        folder = run_folder(run_id)
        if not files.folder_busy(folder):
            removed += files.remove_stale_temporaries(folder)
    return removed


def scan_folder() -> list[PretrainRun]:
    """Every run in the data folder, read from its `run.json` (for a background thread: it reads files).

    The checkpoint is the one in the folder, whatever the record says (a run killed mid-training has the
    last periodic one). A run whose folder is locked is training in another process: its status says so.
    Folders without a readable record, or whose record fails validation, are left out.
    """
    found = []
    for run_id in run_ids_on_disk()[-MAX_RUNS:]:
        folder = run_folder(run_id)
        try:
            data = json.loads(files.read_text(folder / RUN_JSON, "metadata"))
            if not isinstance(data, dict) or data.get("run_id") != run_id:
                continue
            checkpoint = folder / CHECKPOINT
            data["checkpoint"] = str(checkpoint) if checkpoint.is_file() else None
            run = PretrainRun.from_state(RunModel.model_validate(data).model_dump())
        except (files.FileProblem, ValueError, RecursionError, TypeError, KeyError):
            continue
        read_records(run)
        if files.folder_busy(folder):
            run.status, run.message = "running", "training in another window or process"
        found.append(run)
    return found


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
    uid: str | None = Field(None, pattern="^[0-9a-f]{32}$")  # the identity in its folder's run-id file
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

    @model_validator(mode="after")
    def _same_run_as_its_folder(self) -> RunModel:
        """A run number used again after a delete names another run now: that one is never attached."""
        problem = identity_problem(self.run_id, self.uid)
        if problem:
            raise ValueError(problem)
        return self

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
        self.training: set[int] = set()  # the runs this workspace is training now (their records come here)
        # Where the run files go: None writes them on the calling thread; a window sets a
        # files.OrderedWriter so that the GUI thread never waits for a run's fsyncs (and flushes it on close).
        self.writer: files.OrderedWriter | None = None
        remove_stale_run_temporaries()

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
        """The number the next run will probably get (`new_run` takes it atomically, so another window
        may take it first: then the run gets the next free one)."""
        return max([*self.runs, *run_ids_on_disk()], default=0) + 1

    def new_run(self, config: dict, settings: dict, corpus: str | None,
                continues: int | None = None) -> PretrainRun:
        """Register a run about to train (continuing run `continues`, if given); its checkpoint goes to its
        own folder, made now. FileProblem (one line) when the data folder cannot be written."""
        run_id, uid = allocate_run(first=max(self.runs, default=0) + 1)
        color = PALETTE[(run_id - 1) % len(PALETTE)]
        run = PretrainRun(run_id, "", dict(config), dict(settings), corpus, color)
        origin = f" · continues run {continues}" if continues else ""
        run.name = f"Run {run_id} · {describe_config(config, settings)}{origin} · {corpus_label(corpus)}"
        run.checkpoint = None
        run.continues = continues
        run.uid = uid
        self.runs[run_id] = run
        self.training.add(run_id)
        self.save_run_files(run_id, max_points=0)  # other windows list it from now on
        self.state.selected = run_id
        self.events.run_added.emit(run_id)
        return run

    def checkpoint_path(self, run_id: int) -> Path:
        """Where run `run_id`'s checkpoint is (or will be) written."""
        return run_folder(run_id) / CHECKPOINT

    def folder_gone(self, run_id: int) -> bool:
        """True when run `run_id`'s folder was deleted (outside the app, or by another window) or now
        holds another run: only its curves in this window remain."""
        run = self.runs.get(run_id)
        folder = run_folder(run_id)
        return run is None or not folder.is_dir() or (run.uid is not None and folder_uid(folder) != run.uid)

    def gone_message(self, run_id: int) -> str:
        """The one line that says a run's folder is gone."""
        where = Path("runs") / run_folder(run_id).name
        return (f"Run {run_id}'s folder ({where} in the data folder) is gone: it was deleted outside this "
                "window. Only its curves remain here.")

    def add_records(self, run_id: int, records: list[dict]) -> None:
        """Records from the training process (a checkpoint record also updates the run's folder record)."""
        run = self.runs.get(run_id)
        if run is None:
            return
        for record in records:
            run.add(record)
        if any(r.get("type") == "checkpoint" for r in records):
            self.save_run_files(run_id, max_points=2000)
        self.events.run_changed.emit(run_id)

    def finish_run(self, run_id: int, status: str, message: str = "", checkpoint: str | None = None) -> None:
        """A run ended; its record and metrics are written to its folder."""
        self.training.discard(run_id)
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

    def save_run_files(self, run_id: int, max_points: int = MAX_POINTS) -> bool:
        """Write run.json and metrics.csv into the run's folder (atomically); False when the folder is gone
        or holds another run (nothing is written then: it is not this run's any more) or cannot be written.

        With a `writer` the texts are made here and written on its thread, in order (True then means
        "queued"; a failed write is kept in the writer's `problems`)."""
        run = self.runs[run_id]
        if self.folder_gone(run_id):
            return False
        folder = run_folder(run_id)
        writes = [(folder / RUN_JSON, json.dumps(run.to_state(max_points=max(1, max_points))))]
        if max_points:
            writes.append((folder / "metrics.csv", metrics_csv(run)))
        if run.health:
            writes.append((folder / HEALTH_CSV, health_csv(run.health)))
        if run.histograms and max_points:
            writes.append((folder / histograms.FILE_NAME, histograms.to_bytes(run.histograms)))
        if self.writer is not None:
            self.writer.submit(writes)
            return True
        try:
            for path, data in writes:
                files.write_atomic(path, data)
        except files.FileProblem:
            return False  # the run stays in the session; its folder just lacks the summary
        return True

    def flush_files(self, timeout: float | None = None) -> bool:
        """Wait until the run files handed to the writer are on disk; True when nothing is left."""
        return self.writer.flush(timeout) if self.writer is not None else True

    def delete_run(self, run_id: int) -> None:
        """Forget a run and delete its folder (the view asks for confirmation first).

        Only a folder that holds this run's own identity is deleted (a number used again names another run,
        which stays); a run that a live process is training (its folder locked) is refused with FileProblem.
        """
        run = self.runs.get(run_id)
        if run is None:
            return
        self.flush_files(60.0)  # a queued write must not bring the folder back after it is deleted
        folder = run_folder(run_id)
        own = folder.is_dir() and folder_uid(folder) == run.uid
        if own and files.folder_busy(folder):
            raise files.FileProblem(f"Run {run_id} is training in another window or process: stop it there "
                                    "before deleting it")
        del self.runs[run_id]
        self.training.discard(run_id)
        if own:
            shutil.rmtree(folder, ignore_errors=True)
        if self.state.selected == run_id:
            self.state.selected = None
        self.events.run_removed.emit(run_id)

    def merge_folder(self, found: list[PretrainRun]) -> list[int]:
        """Take the runs read from the data folder (`scan_folder`): new ones are added, the ones another
        process trains or trained are brought up to date; runs this workspace trains keep their own
        records. Returns the ids added."""
        added = []
        shown = sum(run.visible for run in self.runs.values())
        for run in found:
            mine = self.runs.get(run.run_id)
            if mine is None:
                run.visible = shown < MAX_SHOWN_RUNS
                shown += run.visible
                self.runs[run.run_id] = run
                added.append(run.run_id)
                self.events.run_added.emit(run.run_id)
            elif run.run_id not in self.training and mine.uid == run.uid:
                if _newer(run, mine):
                    mine.take_records_of(run)
                elif run.checkpoint and not mine.checkpoint:  # a crashed run's last periodic checkpoint
                    mine.checkpoint = run.checkpoint
                elif run.status != mine.status and "running" in (run.status, mine.status):
                    mine.status, mine.message = run.status, run.message  # started or ended elsewhere
                else:
                    continue
                self.events.run_changed.emit(run.run_id)
        return added

    def refresh_from_folder(self) -> list[int]:
        """Scan the data folder and merge it, here and now (scripts and tests; the panel scans on its
        worker). The ids added."""
        return self.merge_folder(scan_folder())

    def export_run(self, run_id: int, folder: str | os.PathLike) -> list[Path]:
        """Copy a run's checkpoint and write its metrics CSV into `folder`; the paths written.
        FileProblem (nothing written) when the run's folder is gone."""
        run = self.runs[run_id]
        if self.folder_gone(run_id):
            raise files.FileProblem(self.gone_message(run_id))
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
            if (run is not None and run.checkpoint and Path(run.checkpoint).exists()
                    and not self.folder_gone(run.run_id)):
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
        self.flush_files()  # run files still queued on the writer are read back below
        runs = {}
        for model in saved.runs:
            run = PretrainRun.from_state(model.model_dump())
            read_records(run)
            runs[run.run_id] = run
        for run_id in self.training:  # a run training now stays (its records keep coming here)
            if run_id in self.runs:
                runs[run_id] = self.runs[run_id]
        shown = [run for run in runs.values() if run.visible]
        for run in shown[:-MAX_SHOWN_RUNS]:  # only the newest few overlaid; the rest stay in the run list
            run.visible = False
        self.runs = runs
        self.state.update({k: getattr(saved.state, k) for k in PretrainState.model_fields})
        if self.state.selected is not None and self.state.selected not in self.runs:
            self.state.selected = None
        self.events.runs_reset.emit()


def _newer(found: PretrainRun, mine: PretrainRun) -> bool:
    """Whether the folder's copy of a run knows more than this window's (another process trained it)."""
    if found.steps_done() != mine.steps_done():
        return found.steps_done() > mine.steps_done()
    return (found.status, found.checkpoint, len(found.steps["step"])) != (
        mine.status, mine.checkpoint, len(mine.steps["step"])) and len(found.steps["step"]) >= len(
        mine.steps["step"])


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


def read_records(run: PretrainRun) -> None:
    """Give `run` the health figures and histograms its folder keeps (none where a file is missing or
    not valid): a run restored from a session and a run found by the folder scan show the same."""
    folder = run_folder(run.run_id)
    run.health = read_health(folder / HEALTH_CSV)
    run.histograms = histograms.read_file(folder / histograms.FILE_NAME)


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
