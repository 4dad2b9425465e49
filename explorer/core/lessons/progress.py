"""Lesson progress: the ticks, kept in the user's data folder so that they survive a restart.

The file is `data_dir()/lessons-progress.json`: `{"format": "autograd-explorer-lessons", "version": 1,
"done": {lesson id: [step id, ...]}}`, read with a size limit and written atomically. A missing, broken or
hostile file means no ticks yet: the Learn panel opens anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from explorer.core import files

FILE_NAME = "lessons-progress.json"
FORMAT = "autograd-explorer-lessons"


class _ProgressFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["autograd-explorer-lessons"]
    version: Literal[1]
    done: dict[str, list[str]] = Field(default_factory=dict, max_length=1000)


def default_path() -> Path:
    """Where the ticks live: the per-user data folder of explorer.core.workspaces.pretrain."""
    from explorer.core.workspaces.pretrain import data_dir

    return data_dir() / FILE_NAME


class Progress:
    """Which steps of which lessons are done."""

    def __init__(self, path: str | Path | None = None, done: dict[str, list[str]] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._done: dict[str, set[str]] = {k: set(v) for k, v in (done or {}).items()}
        self.problem: str | None = None  # why the saved file was not used (shown, never raised)

    @classmethod
    def load(cls, path=None) -> Progress:
        """The saved ticks; none when the file is missing or unreadable (`problem` then says why)."""
        progress = cls(path)
        try:
            data = files.read_bytes(progress.path, "progress")
        except files.FileProblem as exc:
            if progress.path.exists():
                progress.problem = str(exc)
            return progress
        try:
            saved = _ProgressFile.model_validate_json(files.strip_bom(data))
        except (ValidationError, ValueError, RecursionError) as exc:
            progress.problem = f"{progress.path.name}: not a progress file ({str(exc).splitlines()[0][:200]})"
            return progress
        progress._done = {k: set(v) for k, v in saved.done.items()}
        return progress

    def done(self, lesson_id: str, step_id: str) -> bool:
        """Whether the step is ticked."""
        return step_id in self._done.get(lesson_id, ())

    def mark(self, lesson_id: str, step_id: str) -> None:
        """Tick a step (save() writes it)."""
        self._done.setdefault(lesson_id, set()).add(step_id)

    def unmark(self, lesson_id: str, step_id: str) -> None:
        """Untick a step."""
        self._done.get(lesson_id, set()).discard(step_id)

    def reset(self, lesson_id: str | None = None) -> None:
        """Forget the ticks of one lesson, or of all."""
        if lesson_id is None:
            self._done.clear()
        else:
            self._done.pop(lesson_id, None)

    def completed(self, lesson) -> int:
        """How many of the lesson's steps are ticked."""
        ticked = self._done.get(lesson.id, set())
        return sum(1 for step in lesson.steps if step.id in ticked)

    def to_json(self) -> dict:
        """The file's contents."""
        done = {k: sorted(v) for k, v in sorted(self._done.items()) if v}
        return {"format": FORMAT, "version": 1, "done": done}

    def save(self) -> None:
        """Write the ticks atomically (FileProblem when the folder cannot be written)."""
        files.write_atomic(self.path, json.dumps(self.to_json(), indent=1))
