"""Session files: every workspace's state in one JSON file, validated whole before anything is applied.

A session file is
`{"format": "autograd-explorer-session", "version": 2, "workspaces": {...}, "current": key}`.
`read_session` reads (size-limited, regular files only) and validates the whole file with the workspaces'
schemas; `Workspaces.apply` then applies all of it, so a hostile or broken file is refused with one message
that names the bad field and leaves the current session exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from explorer.core import files
from explorer.core.workspaces.expression import ExpressionState, ExpressionWorkspace
from explorer.core.workspaces.network import NetworkState, NetworkWorkspace
from explorer.core.workspaces.pretrain import PretrainWorkspace, SavedPretrain

FORMAT = "autograd-explorer-session"
VERSION = 2
KEYS = ("expression", "network", "pretrain")


class SessionError(ValueError):
    """A session that cannot be opened; the message says which field is wrong and why."""


class SavedWorkspaces(BaseModel):
    """The workspaces' parts of a session (each optional: a missing one keeps its defaults)."""

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


class Workspaces:
    """The three workspace models of one window: what a session saves and restores."""

    def __init__(self) -> None:
        self.expression = ExpressionWorkspace()
        self.network = NetworkWorkspace()
        self.pretrain = PretrainWorkspace()
        self.current = "expression"

    def get(self, key: str):
        """The workspace model named `key`."""
        if key not in KEYS:
            raise KeyError(f"unknown workspace {key!r}; choose from {', '.join(KEYS)}")
        return getattr(self, key)

    def to_json(self) -> dict:
        """The session as JSON-able data."""
        return {"format": FORMAT, "version": VERSION, "current": self.current,
                "workspaces": {key: self.get(key).to_json() for key in KEYS}}

    def apply(self, session: SessionFile) -> None:
        """Apply a validated session: every workspace it names, then the current one."""
        saved = session.workspaces
        if saved.expression is not None:
            self.expression.load(saved.expression)
        if saved.network is not None:
            self.network.load(saved.network)
        if saved.pretrain is not None:
            self.pretrain.load(saved.pretrain)
        self.current = session.current


def parse_session(text: str | bytes) -> SessionFile:
    """A validated session from JSON text (SessionError naming the bad field otherwise)."""
    try:
        return SessionFile.model_validate_json(text)
    except ValidationError as exc:
        raise SessionError(describe_validation_error(exc)) from None
    except (ValueError, RecursionError) as exc:  # e.g. nesting deeper than the parser allows
        raise SessionError(f"not a valid session file: {str(exc).splitlines()[0][:200]}") from None


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
    where = ".".join(str(p) for p in first.get("loc", ())) or "the file"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return f"not valid JSON: {first.get('ctx', {}).get('error', message)}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
