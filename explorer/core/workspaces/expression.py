"""The expression workspace's state, Qt-free: the program, its params, the player and the learning tools.

`ExpressionWorkspace.state` holds everything a session saves (program text, param overrides, player step,
selected node, learning rate, descent history, backward-again count) in a pydantic model whose fields emit
psygnal events when set; `events` adds the derived events (a new computation). `compute()` (parse -> run ->
trace -> prune) lives here. A view subscribes to both and never holds the truth: a lesson, a test or a
restored session sets a field and the widgets follow.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from psygnal import EventedModel, Signal, SignalGroup
from pydantic import ConfigDict, Field, field_validator

from explorer.core.autograd.timeline import Timeline
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.syntax import MAX_SOURCE_CHARS

MAX_PARAM_ELEMENTS = 10_000  # a saved override bigger than this is refused (the editor grid shows far fewer)


@dataclass
class ComputeResult:
    """One run of a program: its trace, or the language error that stopped it."""

    source: str
    program: object | None = None
    trace: object | None = None
    overrides: dict = field(default_factory=dict)     # param name -> float or nested list
    error: str | None = None                          # message shown to the user
    error_pos: tuple[int, int] | None = None          # 1-based line, col of a language error
    note: str = ""                                    # e.g. why there is no backward pass
    elapsed_ms: float = 0.0
    printed: str = ""                                 # what the program printed (the output pane)
    program_trace: object | None = None               # every iteration (core.autograd.trace.ProgramTrace)
    iteration: int = 0                                # which iteration `trace` is

    @property
    def ok(self) -> bool:
        """True when the program ran and was traced."""
        return self.trace is not None and self.error is None


def compute(source: str, overrides: dict | None = None, iteration: int | None = None,
            cancelled=None) -> ComputeResult:
    """Parse and trace `source` (the program's own backward passes, or the implicit one), with leaf values
    from `overrides`; `trace` is iteration `iteration` of it (None: the last)."""
    from explorer.core.autograd.trace import TraceError, trace_program
    from explorer.core.lang.program import ExprError, parse

    start = time.perf_counter()
    result = ComputeResult(source=source, overrides=dict(overrides or {}))
    try:
        program = parse(source)
        result.program = program
        known = set(program.param_names) if result.overrides else set()
        ov = {k: _as_tensor_value(v) for k, v in result.overrides.items() if k in known}
        pt = trace_program(program, ov or None, cancelled=cancelled)
        result.program_trace = pt
        result.printed = pt.run.printed
        count = len(pt.iterations)
        index = count - 1 if iteration is None else max(0, min(int(iteration), count - 1))
        result.iteration = index
        result.trace = prune_unused(pt.iterations[index])
        if not result.trace.passes and not result.trace.backward_events:
            result.note = ("forward only: nothing here requires a gradient (create a leaf with "
                           "requires_grad=True)")
    except ExprError as exc:
        result.error = f"line {exc.line}:{exc.col}: {exc.message}"
        result.error_pos = (exc.line, exc.col)
    except TraceError as exc:
        result.error = str(exc)
    except Exception as exc:  # torch errors (shape mismatch ...) are the user's to fix: show them
        result.error = _short_error(exc)
        line = _statement_line_of(exc)
        result.error_pos = (line, 1) if line else None
    result.elapsed_ms = (time.perf_counter() - start) * 1000
    return result


def prune_unused(tr):
    """The trace without values that neither have a name nor lead to a named value or the output.

    Such values are by-products (a checking run inside an op, say) that would only clutter the
    graph and add steps where nothing visible happens.
    """
    import networkx as nx

    targets = [tr.output_id] + [nid for nid, n in tr.nodes.items() if n.name]
    keep: set[str] = set()
    for t in targets:
        if t not in keep:
            keep |= {t} | nx.ancestors(tr.graph, t)
    if len(keep) == len(tr.nodes):
        return tr
    kept = [e.node_id in keep for e in tr.backward_events]
    passes = []  # each pass's slice of backward_events, counted again over the kept events
    for p in getattr(tr, "passes", None) or []:
        first = sum(kept[:p.first])
        passes.append(replace(p, first=first, count=sum(kept[p.first:p.first + p.count])))
    extra = {"passes": passes} if hasattr(tr, "passes") else {}
    return replace(
        tr, nodes={k: v for k, v in tr.nodes.items() if k in keep},
        forward_order=[n for n in tr.forward_order if n in keep],
        backward_order=[n for n in tr.backward_order if n in keep],
        backward_events=[e for e, k in zip(tr.backward_events, kept, strict=True) if k],
        graph=tr.graph.subgraph(keep).copy(), **extra,
    )


def param_values(result: ComputeResult) -> dict[str, object]:
    """Current value of every param: a float for one element, else a nested list."""
    out: dict[str, object] = {}
    if result.trace is None:
        return out
    for node in result.trace.nodes.values():
        if node.kind == "param" and node.name and node.name not in out:
            out[node.name] = _snap_value(node.value)
    return out


def param_grads(result: ComputeResult) -> dict[str, object]:
    """Gradient of every param from the trace: a float or a nested list (None when it got none)."""
    out: dict[str, object] = {}
    if result.trace is None:
        return out
    for node in result.trace.nodes.values():
        if node.kind == "param" and node.name and node.name not in out:
            out[node.name] = _snap_value(node.grad) if node.grad is not None else None
    return out


def descent_step(result: ComputeResult, lr: float) -> dict[str, object]:
    """New param values after one step of gradient descent: p - lr * dL/dp."""
    values, grads = param_values(result), param_grads(result)
    new = {}
    for name, v in values.items():
        g = grads.get(name)
        if g is None:
            new[name] = v
        else:
            new[name] = (np.asarray(v, dtype=np.float64) - lr * np.asarray(g, dtype=np.float64)).tolist()
    return new


def accumulated_grads(result: ComputeResult, times: int) -> dict[str, list[object]]:
    """Run backward `times` times without zeroing .grad: each param's .grad after every call."""
    program = result.program
    ov = {k: _as_tensor_value(v) for k, v in result.overrides.items() if k in set(program.param_names)}
    run = program.run(overrides=ov or None)
    history: dict[str, list[object]] = {name: [] for name in run.params}
    if run.passes:  # the program runs its own backward(): its graph is spent, and .grad is what it left
        for name, p in run.params.items():
            history[name].append(None if p.grad is None else _tensor_value(p.grad.detach()))
        return history
    for _ in range(max(1, times)):
        run.output.backward(retain_graph=True)
        for name, p in run.params.items():
            g = p.grad
            history[name].append(None if g is None else _tensor_value(g.detach()))
    return history


def leaf_comparison(result: ComputeResult) -> dict[str, dict]:
    """Per param: autograd, finite-difference and manual-formula gradients and their differences.

    The manual value is the op table's local derivative times the upstream gradient, summed over
    the param's uses, when the op table has a formula for every use.
    """
    from explorer.core.autograd.explain import manual_sum
    from explorer.core.autograd.gradcheck import compare_grads

    report = compare_grads(result.program, overrides=_tensor_overrides(result) or None)
    rows = {}
    params_by_name = {n.name: nid for nid, n in result.trace.nodes.items() if n.kind == "param"}
    for name, check in report.params.items():
        row = {k: getattr(check, k, None) for k in ("autograd", "numeric", "manual", "max_abs_error",
                                                    "max_rel_error", "skipped")}
        if row["manual"] is None and name in params_by_name:
            row["manual"] = manual_sum(result.trace, params_by_name[name])
        rows[name] = row
    return rows


def _snap_value(snap):
    if snap is None:
        return None
    if snap.numel == 1:
        return float(snap.item())
    return np.asarray(snap.data, dtype=np.float64).reshape(snap.shape).tolist()


def _tensor_value(t):
    return float(t.item()) if t.numel() == 1 else t.double().tolist()


def _as_tensor_value(v):
    import torch

    if isinstance(v, (int, float)):
        return float(v)
    return torch.tensor(v, dtype=torch.float32)


def _tensor_overrides(result: ComputeResult) -> dict:
    known = set(getattr(result.program, "param_names", []))
    return {k: _as_tensor_value(v) for k, v in result.overrides.items() if k in known}


def _short_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _statement_line_of(exc: Exception) -> int | None:
    return getattr(exc, "line", None)


Override = float | list


class ExpressionState(EventedModel):
    """What the expression workspace saves; setting a field emits `state.events.<field>`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    source: str = Field(SEED_SOURCE, max_length=MAX_SOURCE_CHARS)
    overrides: dict[str, Override] = Field(default_factory=dict)  # param name -> number or nested list
    step: int | None = Field(None, ge=0)  # player step; None: the end
    selected: str | None = Field(None, max_length=64)  # node id pinned in the inspector
    lr: float = Field(0.1, gt=0, le=1000)  # learning rate of the descent step
    losses: list[float] = Field(default_factory=list, max_length=10_000)  # loss after each descent step
    backward_again: int = Field(0, ge=0, le=1000)  # extra backward calls without zeroing
    iteration: int | None = Field(None, ge=0)  # which loop iteration the player shows; None: the last

    @field_validator("overrides")
    @classmethod
    def _finite_overrides(cls, value: dict) -> dict:
        for name, v in value.items():
            if not name.isidentifier() or len(name) > 64:
                raise ValueError(f"{name!r} is not a param name")
            flat = np.asarray(v, dtype=np.float64).reshape(-1) if isinstance(v, list) else np.asarray([v])
            if flat.size > MAX_PARAM_ELEMENTS:
                raise ValueError(f"{name}: more than {MAX_PARAM_ELEMENTS:,} values")
            if not np.isfinite(flat).all():
                raise ValueError(f"{name}: values must be finite numbers")
        return value


class ExpressionEvents(SignalGroup):
    """Derived events of the workspace (the saved fields have their own, on `state.events`)."""

    computed = Signal(object)
    """A computation finished and is now the workspace's result (a ComputeResult, ok or with an error)."""
    accumulated = Signal(object)
    """Backward ran again without zeroing: {param: [.grad after each call]}."""


class ExpressionWorkspace:
    """The expression workspace: state, the last valid result and its timeline."""

    key = "expression"

    def __init__(self, source: str | None = None) -> None:
        self.state = ExpressionState() if source is None else ExpressionState(source=source)
        self.events = ExpressionEvents()
        self.result: ComputeResult | None = None  # the last valid run (what the graph shows)
        self.last: ComputeResult | None = None  # the last run, valid or not (the error line)
        self.timeline: Timeline | None = None
        self._restoring = False  # the next result comes from a loaded state: keep its history
        self._prepared: list[tuple[tuple, ComputeResult]] = []  # see answered_from
        self.state.events.iteration.connect(self._on_iteration)

    # -- the program ------------------------------------------------------------------------------

    def set_source(self, text: str) -> None:
        """A new program: its params start from the program's own values, the descent history restarts."""
        self.state.update({"source": text, "overrides": {}, "losses": [], "step": None,
                           "backward_again": 0, "selected": None, "iteration": None})

    def load_example(self, name: str) -> None:
        """Example `name` of assets/examples, with the learning rate it suggests."""
        from explorer.core.lang.examples import example_learning_rate, load_example

        source = load_example(name)
        lr = example_learning_rate(source)
        if lr is not None:
            self.state.lr = lr
        self.set_source(source)

    def set_param(self, name: str, value) -> None:
        """Change one param's value (a number, or nested lists for a tensor)."""
        base = param_values(self.result) if self.result is not None else {}
        self.state.overrides = {**base, **self.state.overrides, name: value}

    def compute_now(self, reason: str = "program") -> ComputeResult:
        """Compute the current state in the calling thread and apply it (tests, lessons, screenshots).

        Inside `answered_from`, a result prepared for this very state is applied instead of computing it.
        """
        result = self._take_prepared()
        if result is None:
            result = compute(self.state.source, dict(self.state.overrides), iteration=self.state.iteration)
        self.apply(result, reason)
        return result

    def _take_prepared(self) -> ComputeResult | None:
        """The prepared result for the current state (removed from those left), or None."""
        if self._prepared:
            key = self.computation_key()
            for i, (made_for, _) in enumerate(self._prepared):
                if made_for == key:
                    return self._prepared.pop(i)[1]
        return None

    def computation_key(self) -> tuple[str, str, int | None]:
        """What `compute_now`'s result depends on: the program, the param values and the iteration."""
        state = self.state
        return state.source, json.dumps(state.overrides, sort_keys=True, default=repr), state.iteration

    @contextmanager
    def answered_from(self, made: list[tuple[tuple, ComputeResult]]):
        """Within the block, `compute_now` applies a result of `made`, pairs (computation_key, result) that
        a copy of this workspace computed elsewhere (a lesson step's Worker), when its key matches the
        state, each at most once; any other state is computed as usual. The same inputs make the same
        trace, so only where the tracing ran differs."""
        self._prepared = list(made)
        try:
            yield self
        finally:
            self._prepared = []

    def apply(self, result: ComputeResult, reason: str = "program") -> None:
        """Make `result` the workspace's result (a worker computed it); emits `events.computed`.

        An invalid program keeps the previous valid result on screen. `reason` is "program", "leaf" or
        "descent" (the descent history grows only on a descent step).
        """
        self.last = result
        if result.ok:
            previous = self.result
            same = previous is not None and previous.source == result.source
            self.result = result
            self.timeline = Timeline(result.trace)
            loss = _scalar(result.trace.nodes[result.trace.output_id].value)
            if self._restoring:
                self._restoring = False
            elif reason == "descent" and loss is not None:
                self.state.losses = [*self.state.losses, loss]
            elif not same or reason == "leaf" or not self.state.losses:
                self.state.update({"losses": [] if loss is None else [loss], "backward_again": 0})
            if self.state.step is not None and self.state.step > self.timeline.length:
                self.state.step = None
            if self.state.selected is not None and self.state.selected not in result.trace.nodes:
                self.state.selected = None
        self.events.computed.emit(result)

    # -- iterations of a training loop ------------------------------------------------------------

    @property
    def iteration_count(self) -> int:
        """How many backward iterations the program on screen ran (1 without a loop)."""
        pt = self.result.program_trace if self.result is not None else None
        return len(pt.iterations) if pt is not None else (1 if self.result is not None else 0)

    def iteration_losses(self) -> list[float | None]:
        """Each iteration's output value (None where it was not a finite number)."""
        pt = self.result.program_trace if self.result is not None else None
        if pt is None:
            return []
        return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in pt.losses]

    def set_iteration(self, k: int | None) -> None:
        """Show iteration `k` of the loop (clamped; None: the last) without running the program again."""
        count = self.iteration_count
        if k is not None and count:
            k = max(0, min(int(k), count - 1))
            if k == count - 1:
                k = None
        self.state.iteration = k

    def _on_iteration(self, k: int | None) -> None:
        result = self.result
        if result is None or result.program_trace is None:
            return
        count = len(result.program_trace.iterations)
        index = count - 1 if k is None else max(0, min(int(k), count - 1))
        if index == result.iteration:
            return
        result.iteration = index
        result.trace = prune_unused(result.program_trace.iterations[index])
        self.timeline = Timeline(result.trace)
        self.state.update({"step": None, "selected": None})
        self.events.computed.emit(result)

    # -- the player -------------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The player's step, the end when the state says None."""
        if self.timeline is None:
            return 0
        return self.timeline.length if self.state.step is None else self.timeline.clamp(self.state.step)

    def set_step(self, k: int) -> None:
        """Move the player (clamped to the timeline)."""
        length = self.timeline.length if self.timeline is not None else 0
        self.state.step = max(0, min(int(k), length))

    def status(self) -> str:
        """The status line of the current step."""
        return self.timeline.status(self.step) if self.timeline is not None else ""

    def focus(self) -> str | None:
        """The node the inspector shows: the pinned one, else the one the player is on."""
        if self.state.selected is not None:
            return self.state.selected
        return self.timeline.focus(self.step) if self.timeline is not None else None

    # -- learning by doing ------------------------------------------------------------------------

    def descent_step(self) -> bool:
        """p <- p - lr * dL/dp for every param (the next computation records the loss); False if none."""
        if self.result is None or not self.result.ok:
            return False
        self.state.update({"overrides": descent_step(self.result, self.state.lr), "step": None})
        return True

    def backward_again(self) -> dict[str, list]:
        """Call backward once more without zeroing: each param's .grad after every call."""
        if self.result is None or not self.result.ok:
            return {}
        self.state.backward_again += 1
        history = accumulated_grads(self.result, self.state.backward_again + 1)
        self.events.accumulated.emit(history)
        return history

    # -- saving -----------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The state as JSON-able data."""
        return self.state.model_dump(mode="json")

    @staticmethod
    def validate(data: dict) -> ExpressionState:
        """A validated state from saved data (raises pydantic.ValidationError)."""
        return ExpressionState.model_validate(data)

    def load(self, state: ExpressionState) -> None:
        """Apply a state that `validate` accepted, field by field (each emits its event)."""
        self._restoring = True
        self.result = self.timeline = None
        self.state.update(state.model_dump())


def _scalar(snap) -> float | None:
    try:
        v = float(snap.item())
    except (ValueError, AttributeError, TypeError):
        return None
    return v if math.isfinite(v) else None
