"""The user's work, kept before a lesson step overwrites it (Qt-free).

A lesson step's actions set a workspace's fields (a program, a network, a pretraining form). Before they
run on a workspace the user has edited (its work differs from a fresh workspace's and from what the last
lesson step left there), `WorkKeeper.before_step` keeps that workspace's whole state; `restore` puts it
back, once, when the student asks (the Learn panel offers it when the lesson ends or is left).
"""

from __future__ import annotations

import json

# The fields that are the user's work: a player's step, a selection or a tab are not.
WORK_FIELDS = {
    "expression": ("source", "overrides", "lr"),
    "network": ("spec", "preset", "skip_zero_grad", "dataset", "runs"),
    "pretrain": ("preset", "config", "settings", "corpus", "gpus"),
}

NAMES = {"expression": "Expression", "network": "Network", "pretrain": "Pretraining"}


def work_of(workspaces, key: str) -> str:
    """The work fields of workspace `key` as canonical JSON text (what "edited" is judged on)."""
    data = workspaces.get(key).to_json()
    state = data.get("state", data) if key == "pretrain" else data
    return json.dumps({f: state.get(f) for f in WORK_FIELDS[key]}, sort_keys=True, default=str)


def fresh_work(workspaces, key: str) -> str:
    """The work fields of a fresh workspace of that kind (its state model's defaults)."""
    state = type(workspaces.get(key).state)()
    data = state.model_dump(mode="json")
    return json.dumps({f: data.get(f) for f in WORK_FIELDS[key]}, sort_keys=True, default=str)


class WorkKeeper:
    """Snapshots of the workspaces a lesson was about to overwrite, one per workspace, oldest kept."""

    def __init__(self) -> None:
        self.saved: dict[str, dict] = {}  # workspace key -> its to_json() before the lesson changed it
        self.lesson_id: str | None = None  # the lesson that was about to change it
        self._left: dict[str, str] = {}  # workspace key -> the work the last lesson step left there

    def before_step(self, workspaces, key: str, lesson_id: str) -> bool:
        """Call before a step's actions change workspace `key`: keep its state when the user edited it
        since the lessons last touched it. True when a snapshot was taken now."""
        if key in self.saved:
            return False
        work = work_of(workspaces, key)
        if work == self._left.get(key) or work == fresh_work(workspaces, key):
            return False
        self.saved[key] = workspaces.get(key).to_json()
        self.lesson_id = lesson_id
        return True

    def after_step(self, workspaces, key: str) -> None:
        """Note what the step left in workspace `key` (an edit after this is the user's again)."""
        self._left[key] = work_of(workspaces, key)

    def names(self) -> list[str]:
        """The kept workspaces' titles ("Expression", ...), in tab order."""
        return [NAMES[k] for k in NAMES if k in self.saved]

    def restore(self, workspaces) -> list[str]:
        """Put every kept workspace back as it was (a pretraining workspace keeps the runs made since)
        and forget the snapshots; the titles of the workspaces restored."""
        restored = []
        for key in [k for k in NAMES if k in self.saved]:
            data = dict(self.saved.pop(key))
            ws = workspaces.get(key)
            if key == "pretrain":
                data["runs"] = ws.to_json()["runs"]
            ws.load(ws.validate(data))
            self._left.pop(key, None)
            restored.append(NAMES[key])
        self.lesson_id = None
        return restored

    def discard(self) -> None:
        """Forget the snapshots (the student keeps the lesson's state)."""
        self.saved.clear()
        self.lesson_id = None
