"""Loading lesson files, running a step's action on the workspace models, and checking answers (stubs)."""

from __future__ import annotations

from explorer.core.lessons.model import Catalog, Expected, Feedback, Step


def load_catalog(folder=None) -> Catalog:
    """Every lesson of `folder` (default: the package's assets/lessons); bad files go to catalog.problems."""
    raise NotImplementedError


def run_step(step: Step, workspaces) -> None:
    """Apply the step's action to the workspace models (LessonError when it cannot)."""
    raise NotImplementedError


def expected(step: Step, workspaces) -> Expected:
    """The step's exercise answer, computed from the workspace state at this step."""
    raise NotImplementedError


def check(step: Step, workspaces, answer: str, attempt: int) -> Feedback:
    """Check `answer` (the student's text; ignored for "do" exercises) on try number `attempt` (from 1)."""
    raise NotImplementedError
