"""Session files: every workspace's state in one JSON file, validated whole before anything is applied.

A session file is
`{"format": "autograd-explorer-session", "version": 2, "workspaces": {...}, "current": key}`.
`read_session` reads (size-limited, regular files only) and validates the whole file with the workspaces'
schemas; `Workspaces.apply` then applies all of it, so a hostile or broken file is refused with one message
that names the bad field and leaves the current session exactly as it was.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from explorer.core import files

if TYPE_CHECKING:  # the models are imported on use: the network and pretraining ones import torch
    from explorer.core.workspaces.expression import ExpressionState, ExpressionWorkspace
    from explorer.core.workspaces.network import NetworkState, NetworkWorkspace
    from explorer.core.workspaces.pretrain import PretrainWorkspace, SavedPretrain

FORMAT = "autograd-explorer-session"
VERSION = 2
KEYS = ("expression", "network", "pretrain")
# each workspace's module, model class and saved-state class (what a session file holds for it)
MODELS = {
    "expression": ("explorer.core.workspaces.expression", "ExpressionWorkspace", "ExpressionState"),
    "network": ("explorer.core.workspaces.network", "NetworkWorkspace", "NetworkState"),
    "pretrain": ("explorer.core.workspaces.pretrain", "PretrainWorkspace", "SavedPretrain"),
}
_schema_lock = threading.Lock()


class SessionError(ValueError):
    """A session that cannot be opened; the message says which field is wrong and why."""


class SavedWorkspaces(BaseModel):
    """The workspaces' parts of a session (each optional: a missing one keeps its defaults).

    Its field types are the workspaces' own state models, imported when a session is first validated
    (`complete_schema`): importing this module, and making the expression model, needs no torch.
    """

    model_config = ConfigDict(extra="forbid")

    expression: ExpressionState | None = None
    network: NetworkState | None = None
    pretrain: SavedPretrain | None = None


class SessionFile(BaseModel):
    """The whole session file."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["autograd-explorer-session"]
    version: Literal[2]
    workspaces: SavedWorkspaces = Field(default_factory=SavedWorkspaces)
    current: Literal["expression", "network", "pretrain"] = "expression"


def complete_schema() -> None:
    """Import the workspaces' state models and complete the session schema with them (once; the network
    and pretraining models import torch). `parse_session` calls it; any thread may."""
    if SessionFile.__pydantic_complete__:
        return
    with _schema_lock:
        if SessionFile.__pydantic_complete__:
            return
        names = {}
        for module, _model, state in MODELS.values():
            names[state] = getattr(importlib.import_module(module), state)
        SavedWorkspaces.model_rebuild(_types_namespace=names)
        SessionFile.model_rebuild(_types_namespace={**names, "SavedWorkspaces": SavedWorkspaces})


def model_class(key: str):
    """The model class of workspace `key` (its module imported now)."""
    module, model, _state = MODELS[key]
    return getattr(importlib.import_module(module), model)


class Workspaces:
    """The three workspace models of one window, created on first use (the models import torch).

    A session applied before a workspace exists is kept, validated, and applied when it is created.
    """

    def __init__(self) -> None:
        self._models: dict[str, object] = {}
        self._pending: dict[str, BaseModel] = {}
        self.current = "expression"

    def get(self, key: str):
        """The workspace model named `key` (created now if needed)."""
        if key not in KEYS:
            raise KeyError(f"unknown workspace {key!r}; choose from {', '.join(KEYS)}")
        if key not in self._models:
            model = model_class(key)()
            if key in self._pending:
                model.load(self._pending.pop(key))
            self._models[key] = model
        return self._models[key]

    @property
    def expression(self) -> ExpressionWorkspace:
        """The expression workspace."""
        return self.get("expression")

    @property
    def network(self) -> NetworkWorkspace:
        """The network workspace."""
        return self.get("network")

    @property
    def pretrain(self) -> PretrainWorkspace:
        """The pretraining workspace."""
        return self.get("pretrain")

    def created(self, key: str) -> bool:
        """Whether the model of `key` exists yet."""
        return key in self._models

    def to_json(self) -> dict:
        """The session as JSON-able data (workspaces never opened keep what the last session said)."""
        parts = {key: self._models[key].to_json() for key in KEYS if key in self._models}
        for key, saved in self._pending.items():
            parts[key] = saved.model_dump(mode="json")
        return {"format": FORMAT, "version": VERSION, "current": self.current, "workspaces": parts}

    def restore(self, key: str, state: BaseModel) -> None:
        """Apply one workspace's validated saved state (`parse_part`), now or when its model is made."""
        if key in self._models:
            self._models[key].load(state)
        else:
            self._pending[key] = state

    def apply(self, session: SessionFile, skip: tuple[str, ...] | set[str] = ()) -> None:
        """Apply a validated session: every workspace it names (but those in `skip`), then the current one."""
        saved = session.workspaces
        for key in KEYS:
            part = getattr(saved, key)
            if part is None or key in skip:
                continue
            if key in self._models:
                self._models[key].load(part)
            else:
                self._pending[key] = part
        self.current = session.current


def parse_session(text: str | bytes) -> SessionFile:
    """A validated session from JSON text (SessionError naming the bad field otherwise); a leading
    byte-order mark is fine, as in every text file the app reads."""
    complete_schema()
    try:
        return SessionFile.model_validate_json(files.strip_bom(text))
    except ValidationError as exc:
        raise SessionError(describe_validation_error(exc)) from None
    except (ValueError, RecursionError) as exc:  # e.g. nesting deeper than the parser allows
        raise SessionError(f"not a valid session file: {str(exc).splitlines()[0][:200]}") from None


def parse_part(text: str | bytes, key: str) -> BaseModel | None:
    """The saved state of workspace `key` alone from a session's JSON text, validated by its model (None
    when the session has none); SessionError when the text or that part is bad. It imports that workspace's
    model only: the expression workspace's needs no torch, so a restored session's visible workspace can be
    made before torch loads; `parse_session` validates the whole session afterwards."""
    try:
        data = json.loads(files.strip_bom(text))
    except (ValueError, RecursionError) as exc:
        raise SessionError(f"not a valid session file: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise SessionError("not an autograd-explorer session of this version")
    parts = data.get("workspaces") or {}
    if not isinstance(parts, dict) or parts.get(key) is None:
        return None
    module, _model, state = MODELS[key]
    try:
        return getattr(importlib.import_module(module), state).model_validate(parts[key])
    except ValidationError as exc:
        raise SessionError(f"workspaces.{key}." + describe_validation_error(exc)) from None


def read_session(path: str | Path) -> SessionFile:
    """Read and validate a session file (regular file, size-limited): SessionError on any problem."""
    try:
        text = files.read_bytes(path, "session")
    except files.FileProblem as exc:
        raise SessionError(str(exc)) from None
    return parse_session(text)


def write_session(path: str | Path, workspaces: Workspaces) -> Path:
    """Write the session atomically (a kill mid-write leaves the old file)."""
    return files.write_atomic(path, json.dumps(workspaces.to_json(), indent=1))


def describe_validation_error(exc: ValidationError) -> str:
    """One line: where the first problem is (workspaces.network.spec.lr) and what it is."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(map(_field_name, first.get("loc", ()))) or "the file"
    message = " ".join(str(first.get("msg", "invalid")).removeprefix("Value error, ").split())
    if first.get("type") == "json_invalid":
        return f"not valid JSON: {' '.join(str(first.get('ctx', {}).get('error', message)).split())}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


def _field_name(part) -> str:
    """A place in the file as the one-line error names it: a key that is empty or holds a line break or
    another unprintable character (the file's own text) is shown quoted, with its escapes."""
    text = str(part)
    return text if text and text.isprintable() else json.dumps(text)
