"""The language of the Expression workspace: the PyTorch people write, interpreted safely.

    import torch
    w = torch.tensor(2.2, requires_grad=True)
    L = torch.sigmoid(w * 1.1)
    L.backward()
    print(w.grad)

`parse(source)` checks the text (size, bracket depth, then the syntax tree under an allow-list:
`explorer.core.lang.syntax`) and returns a Program; `Program.run()` interprets it
(`explorer.core.lang.interp`): real Python values, real torch tensors, modules and optimizers, so the
graph is the one torch builds for the same code. The app's first language (`param(2.2)`, `sigmoid(z)`,
`bce(a, y)`) still runs: its functions are builtins (`explorer.core.lang.legacy`). Nothing is ever passed
to eval, exec or compile. Every failure, at parse time or while running, is an `ExprError` carrying a
1-based line and column and a message that says what to do instead.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from explorer.core.lang import micrograd
from explorer.core.lang.interp import LIMITS, Event, Hooks, Interpreter, Limits, Pass
from explorer.core.lang.syntax import (  # noqa: F401 -- limits re-exported as part of this module's API
    MAX_BRACKET_DEPTH,
    MAX_INT_BITS,
    MAX_NODES,
    MAX_SOURCE_CHARS,
    MAX_TREE_DEPTH,
    ExprError,
    Statement,
    check,
    fold_numbers,
    position,
    suggest,
)

__all__ = ["ExprError", "Program", "RunResult", "Statement", "fold_numbers", "parse"]


@dataclass
class RunResult:
    """What one run of a program produced: its variables, its output and the leaves that require grad.

    The output is the tensor `backward()` was last called on; without one, what `torch.autograd.grad`
    differentiated, what `draw_dot` showed, else the last value assigned at the top level."""

    env: dict[str, object]
    output: torch.Tensor
    params: dict[str, torch.Tensor]  # every named leaf that requires grad: `w`, `model.fc1.weight`
    output_name: str
    output_line: int = 1
    output_col: int = 1
    printed: str = ""
    passes: list[Pass] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    initial: dict[str, torch.Tensor] = field(default_factory=dict)  # params' values when they were made

    @property
    def backward_count(self) -> int:
        """How many times the program called backward()."""
        return sum(1 for p in self.passes if p.kind == "backward")

    @property
    def steps(self) -> int:
        """How many optimizer steps the program took."""
        return sum(1 for e in self.events if e.kind == "step")

    def require_scalar(self) -> torch.Tensor:
        """The output, or an ExprError when it has more than one element (backward needs a scalar)."""
        if self.output.numel() != 1:
            shape = tuple(self.output.shape)
            raise ExprError(
                f"backward needs a scalar output: try `.sum()` (`{self.output_name}` has shape {shape})",
                self.output_line,
                self.output_col,
            )
        return self.output


def parse(source: str) -> Program:
    """Check `source` and return a Program; raises ExprError for anything outside the language."""
    tree, statements = check(source)
    return Program(source, tree, statements)


class Program:
    """A checked program: run it as often as you like (each run starts from torch seed 0)."""

    def __init__(self, source: str, tree: ast.Module, statements: list[Statement]):
        self.source = source
        self.tree = tree
        self.statements = statements
        self.output_name = statements[-1].name if statements else ""
        self._names: dict[str, int] | None = None  # leaf name -> creation index, from a first run
        self.limits: Limits = LIMITS

    # -- the leaves ----------------------------------------------------------------------------------

    @property
    def param_names(self) -> list[str]:
        """Names of the leaves that require grad, in the order the program makes them (one run)."""
        return list(self._leaf_indices())

    def _leaf_indices(self) -> dict[str, int]:
        if self._names is None:
            self.run()
        return dict(self._names or {})

    def param_values(self, overrides: dict | None = None, dtype: torch.dtype | None = None) -> dict:
        """{leaf name: its value when the program made it} (after `overrides`)."""
        return {k: v.clone() for k, v in self.run(overrides, dtype).initial.items()}

    # -- running -------------------------------------------------------------------------------------

    def run(
        self,
        overrides: dict | None = None,
        dtype: torch.dtype | None = None,
        hooks: Hooks | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> RunResult:
        """Interpret the program once. `overrides` ({leaf name: value}) replace leaves' values as they are
        made; `dtype` (float64 for finite differences) converts every floating tensor the program makes."""
        by_index = {}
        if overrides:
            names = self._leaf_indices()
            for name, value in overrides.items():
                if name not in names:
                    raise ExprError(f"`{name}` is not a param of this program{suggest(name, names)}")
                by_index[names[name]] = value
        interp = Interpreter(self.source, self.tree, hooks, by_index, dtype, self.limits, cancelled)
        interp.run()
        return self._result(interp, interp.initial)

    def callable(self, overrides: dict | None = None, dtype: torch.dtype | None = None) -> Callable:
        """A zero-argument function for `trace()`: runs the program, returns (output, {name: tensor})."""

        def program_fn():
            result = self.run(overrides, dtype)
            return result.output, {k: v for k, v in result.env.items() if isinstance(v, torch.Tensor)}

        return program_fn

    def _result(self, interp: Interpreter, initial: dict[int, torch.Tensor]) -> RunResult:
        env = dict(interp.globals.vars)
        names = _leaf_names(env, interp.leaves)
        if self._names is None and interp.dtype is None and not interp.overrides:
            self._names = {name: index for index, name in sorted((i, n) for n, i in names.items())}
        params = {name: interp.leaves[i] for name, i in sorted(names.items(), key=lambda kv: kv[1])}
        output, output_name, where = _output(interp, env)
        line, col = (where, 1) if isinstance(where, int) else position(interp.lines, where)
        return RunResult(
            env=env,
            output=output,
            params=params,
            output_name=output_name,
            output_line=line,
            output_col=col,
            printed=interp.output_text,
            passes=list(interp.passes),
            events=list(interp.events),
            initial={n: initial[i] for n, i in names.items() if i in initial},
        )


def _output(interp: Interpreter, env: dict) -> tuple[torch.Tensor, str, int | ast.stmt]:
    """The run's output tensor, its name and its line (or the statement that assigned it)."""
    chosen = None
    line = 1
    for kind in ("backward", "grad"):
        passes = [p for p in interp.passes if p.kind == kind]
        if passes:
            chosen, line = passes[-1].tensor, passes[-1].line
            break
    if chosen is None and interp.shown is not None:
        chosen = interp.shown
    if chosen is None and interp.last_assigned is None and interp.last_number is not None:
        # a program of plain numbers: its last number, as a tensor, so there is something to show
        try:
            with interp.hooks.paused():
                chosen = torch.tensor(env[interp.last_number])
        except (RuntimeError, OverflowError, ValueError):
            raise ExprError(f"`{interp.last_number}` is too large for a tensor", interp.line) from None
        return chosen, interp.last_number, 1
    if chosen is None and interp.last_assigned is not None:
        value = env.get(interp.last_assigned)
        chosen = value.t if isinstance(value, micrograd.Value) else value
        line = next(
            (
                s
                for s in reversed(interp.tree.body)
                if isinstance(s, ast.Assign | ast.AugAssign)
                and any(
                    isinstance(t, ast.Name) and t.id == interp.last_assigned
                    for t in getattr(s, "targets", [getattr(s, "target", None)])
                )
            ),
            1,
        )
    if not isinstance(chosen, torch.Tensor):
        raise ExprError(
            "the program computes no tensor: assign one, e.g. `y = torch.sigmoid(x)`, or call "
            "backward() on one",
            interp.line,
        )
    for name, value in env.items():
        if value is chosen or (isinstance(value, micrograd.Value) and value.t is chosen):
            return chosen, name, line
    return chosen, "output", line


def _leaf_names(env: dict, leaves: list[torch.Tensor]) -> dict[str, int]:
    """{name: creation index} of each leaf that requires grad and that a top-level name reaches."""
    index = {id(t): i for i, t in enumerate(leaves)}
    names: dict[str, int] = {}
    taken: set[int] = set()

    def add(name: str, t) -> None:
        if isinstance(t, micrograd.Value):
            t = t.t
        if isinstance(t, torch.Tensor) and id(t) in index and id(t) not in taken:
            taken.add(id(t))
            names[name] = index[id(t)]

    # a module's path names its parameters first (a loop variable left holding one is not its name)
    for name, value in env.items():
        if isinstance(value, nn.Module):
            for path, p in value.named_parameters():
                add(f"{name}.{path}", p)
        elif isinstance(value, micrograd.Module):
            for path, v in _micrograd_params(value):
                add(f"{name}{path}", v)
    for name, value in env.items():
        if isinstance(value, torch.Tensor | micrograd.Value):
            add(name, value)
    for name, value in env.items():
        if isinstance(value, list | tuple) and len(value) <= 10_000:
            for i, item in enumerate(value):
                add(f"{name}[{i}]", item)
    return names


def _micrograd_params(module) -> list[tuple[str, object]]:
    """(path, Value) of a micrograd module's parameters: `.layers[0].neurons[1].w[2]`."""
    if isinstance(module, micrograd.Neuron):
        return [(f".w[{i}]", w) for i, w in enumerate(module.w)] + [(".b", module.b)]
    if isinstance(module, micrograd.Layer):
        return [
            (f".neurons[{i}]{p}", v) for i, n in enumerate(module.neurons) for p, v in _micrograd_params(n)
        ]
    if isinstance(module, micrograd.MLP):
        return [
            (f".layers[{i}]{p}", v)
            for i, layer in enumerate(module.layers)
            for p, v in _micrograd_params(layer)
        ]
    return []
