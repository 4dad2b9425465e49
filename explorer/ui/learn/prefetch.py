"""A lesson step's computations, done on the Worker before the step runs on the GUI thread.

An expression step's actions (load an example, set a program or a param, step the player) each parse and
trace a program (`ExpressionWorkspace.compute_now`): 100-400 ms of GUI-thread time per step. The Learn panel
first runs the same actions on a private copy of the expression workspace on the Worker (Qt-free, nothing
listens to it) and keeps every result computed there, keyed by what it was computed from (program,
params, iteration). Then it runs the actions on the window's own workspace on the GUI thread as before,
with `compute_now` answered from those results when the key matches, else computed as usual. The step's
outcome is the one the actions give (the same inputs make the same trace); only where the tracing runs
changes. The window's workspace is never touched off the GUI thread.
"""

from __future__ import annotations


class _One:
    """The part of `Workspaces` a lesson's actions use, holding one expression workspace."""

    def __init__(self, expression) -> None:
        self.expression = expression
        self.current = "expression"

    def get(self, key: str):
        if key != "expression":
            raise KeyError(key)
        return self.expression


class Prefetched:
    """What the Worker made for a step: every computation, and the gradient check of the last result."""

    def __init__(self, made: list, checks: tuple | None = None) -> None:
        self.made = made  # [(compute_key, ComputeResult)], in order
        self.checks = checks  # (ComputeResult, leaf_comparison of it) when the step shows a param's check


def precompute(lesson, index: int, state: dict, seed, after: int | None,
               cancelled=lambda: False) -> Prefetched:
    """Run step `index` of `lesson` (its expression actions, as `open_step` would after step `after`) on a
    copy of an expression workspace whose saved state is `state` and result `seed`; the (key, result) of
    every computation, in order, and, when the step ends on a param whose gradient is known, that result's
    gradient check (the inspector shows it). Runs on the Worker: touches no Qt object and no workspace of a
    window."""
    from explorer.core import lessons
    from explorer.core.workspaces.expression import ExpressionWorkspace, leaf_comparison

    made: list = []

    class Recording(ExpressionWorkspace):
        def compute_now(self, reason: str = "program"):
            if cancelled():
                raise lessons.LessonError("cancelled")
            key = self.computation_key()
            result = super().compute_now(reason)
            made.append((key, result))
            return result

    scratch = Recording()
    scratch.load(ExpressionWorkspace.validate(state))
    if seed is not None:
        scratch.apply(seed)  # the window's result: its current program is not traced again
    try:
        lessons.open_step(lesson, index, _One(scratch), after)
    except lessons.LessonError:
        return Prefetched(made)  # the step runs again on the GUI thread, which shows its error
    result, focus = scratch.result, scratch.focus()
    node = result.trace.nodes.get(focus) if result is not None and result.ok and focus else None
    if node is None or node.kind != "param" or not scratch.timeline.grad_known(focus, scratch.step):
        return Prefetched(made)
    try:
        return Prefetched(made, (result, leaf_comparison(result)))
    except Exception:  # noqa: BLE001 - the inspector computes (and reports) it itself then
        return Prefetched(made)
