"""Gradient checks beside autograd: finite differences per leaf and the chain rule per traced node.

`compare_grads(program)` puts, for each param, autograd's gradient next to a central finite-difference
estimate computed in float64. `chain_rule(trace, node_id)` explains one node of a `Trace` as
"upstream × local = gradient" with torch's own numbers, the formula from the op table, and (where the
table has one) the local derivative computed by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from explorer.core.lang.ops import OpSpec, find_op
from explorer.core.lang.syntax import ExprError
from explorer.core.numbers import fmt_fixed, fmt_formula, fmt_number

if TYPE_CHECKING:  # torch is imported where it computes: the module loads without it
    import torch

    from explorer.core.lang.program import Program

# Finite differences cost two runs per element; beyond this many elements per param, or when they would
# take longer than this (estimated from one run), they are skipped.
MAX_FD_ELEMENTS = 2_000
MAX_FD_SECONDS = 20.0


@dataclass
class ParamCheck:
    """One param's gradient by autograd, by finite differences and the differences between them."""

    name: str
    autograd: torch.Tensor  # float64, the param's shape
    numeric: torch.Tensor | None  # None when skipped (too many elements)
    manual: torch.Tensor | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    skipped: str | None = None  # why `numeric` is missing


@dataclass
class GradReport:
    """Every param's check for one program, and the worst errors over all of them."""

    output_name: str
    output: torch.Tensor
    params: dict[str, ParamCheck] = field(default_factory=dict)
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    differentiable: bool = True  # False when the output does not require grad although there are params
    printed: str = ""  # what the program printed


def finite_difference_grads(
    program_or_fn: Program | Callable,
    params: dict[str, torch.Tensor] | None = None,
    eps: float = 1e-6,
    max_elements: int = MAX_FD_ELEMENTS,
    max_seconds: float = MAX_FD_SECONDS,
) -> dict[str, torch.Tensor | None]:
    """Central differences (f(p + eps) − f(p − eps)) / 2eps in float64 for each element of each param.

    `program_or_fn` is a Program (run in float64 with the perturbed params as overrides) or a function
    taking {name: tensor} and returning a scalar. `params` are the values to differentiate at (default:
    the program's initial values). A param with more than `max_elements` elements, or whose runs would
    take the whole check past `max_seconds` (its runs estimated from one run), gets None.
    """
    import torch

    from explorer.core.lang.program import Program

    if isinstance(program_or_fn, Program):
        program = program_or_fn

        def f(values):
            return differentiated(program.run(overrides=values, dtype=torch.float64))

        if params is None:
            params = program.param_values(dtype=torch.float64)
    else:
        f = program_or_fn
        if params is None:
            raise ValueError("finite_difference_grads needs `params` when given a function")
    base = {n: torch.as_tensor(v).detach().to(torch.float64).clone() for n, v in params.items()}
    out: dict[str, torch.Tensor | None] = {}
    with torch.no_grad():
        started = time.perf_counter()
        _scalar(f(dict(base)))
        per_run = time.perf_counter() - started
        for name, value in base.items():
            # a guard against waiting minutes, not a measurement: big programs get no estimate at all.
            # The budget is for all params together (eight big params each under it took minutes).
            spent = time.perf_counter() - started
            if value.numel() > max_elements or spent + 2 * value.numel() * per_run > max_seconds:
                out[name] = None
                continue
            grad = torch.zeros_like(value)
            flat, gflat = value.view(-1), grad.view(-1)
            for i in range(flat.numel()):
                original = flat[i].item()
                flat[i] = original + eps
                plus = _scalar(f(dict(base)))
                flat[i] = original - eps
                minus = _scalar(f(dict(base)))
                flat[i] = original
                gflat[i] = (plus - minus) / (2 * eps)
            out[name] = grad
    return out


def _scalar(value) -> float:
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ExprError(f"backward needs a scalar output: try `.sum()` (got shape {tuple(value.shape)})")
        return float(value.detach().to(torch.float64).reshape(-1)[0])
    return float(value)


def differentiated(run) -> torch.Tensor:
    """The scalar a run's gradients are of: its output, or Σ output·gradient when the program's one
    backward pass was given `gradient=`."""
    if run.passes and run.backward_count == 1:
        p = next(p for p in run.passes if p.kind == "backward")
        if p.gradient and p.gradient_value is not None:
            return (run.output * p.gradient_value.to(run.output.dtype)).sum()
    return run.require_scalar()


def finite_differences_apply(run) -> str | None:
    """None when finite differences of the output reproduce the leaves' `.grad`; else why not."""
    if run.steps:
        return "the program updates its parameters (optimizer.step), so .grad is not d(output)/d(start)"
    if run.backward_count > 1:
        return "the program calls backward() more than once, so .grad sums several passes"
    if any(e.kind == "zero_grad" for e in run.events):
        return "the program zeroes gradients"
    return None


def compare_grads(
    program: Program,
    overrides: dict | None = None,
    eps: float = 1e-6,
    max_fd_elements: int = MAX_FD_ELEMENTS,
    max_fd_seconds: float = MAX_FD_SECONDS,
) -> GradReport:
    """Autograd (in the program's own dtypes) against float64 finite differences, per named leaf.

    A program that calls backward() itself is reported with each leaf's `.grad` after the run (it
    accumulates across calls, as in torch); one that does not gets the implicit backward of its scalar
    output. Finite differences are computed where they can reproduce `.grad` (one pass, no updates)."""
    import torch

    run = program.run(overrides=overrides)
    names = list(run.params)
    if not names:  # nothing to differentiate: any output shape is fine
        return GradReport(run.output_name, run.output.detach(), printed=run.printed)
    if run.backward_count:
        output = run.output
        grads = [run.params[n].grad for n in names]
        why_not = finite_differences_apply(run)
    else:
        output = run.require_scalar()
        why_not = None
        if output.requires_grad:
            grads = torch.autograd.grad(output, [run.params[n] for n in names], allow_unused=True)
        else:
            grads = [None] * len(names)
    report = GradReport(run.output_name, output.detach(), differentiable=output.requires_grad,
                        printed=run.printed)
    numeric: dict = {}
    if why_not is None:
        base = program.param_values(overrides, dtype=torch.float64)
        numeric = finite_difference_grads(program, base, eps=eps, max_elements=max_fd_elements,
                                          max_seconds=max_fd_seconds)
    for name, g in zip(names, grads, strict=True):
        param = run.params[name]
        auto = torch.zeros(param.shape, dtype=torch.float64) if g is None else g.detach().to(torch.float64)
        check = ParamCheck(name, auto, numeric.get(name))
        if why_not is not None:
            check.skipped = why_not
        elif check.numeric is None:
            if param.numel() > max_fd_elements:
                check.skipped = f"{param.numel():,} elements (finite differences stop at {max_fd_elements:,})"
            else:
                runs = 2 * param.numel()
                check.skipped = (f"{runs:,} runs of this program would take the check over "
                                 f"{max_fd_seconds:g} s in all")
        else:
            diff = (auto - check.numeric).abs()
            diff = torch.where(auto == check.numeric, torch.zeros_like(diff), diff)  # equal infinities agree
            scale = torch.maximum(auto.abs(), check.numeric.abs()).clamp_min(1e-8)
            check.max_abs_error = float(diff.max()) if diff.numel() else 0.0  # NaN when either side is NaN
            check.max_rel_error = float((diff / scale).max()) if diff.numel() else 0.0
            report.max_abs_error = _worst(report.max_abs_error, check.max_abs_error)
            report.max_rel_error = _worst(report.max_rel_error, check.max_rel_error)
        report.params[name] = check
    _add_manual(program, overrides, report)
    return report


def _worst(a: float, b: float) -> float:
    """The larger error, NaN if either is NaN (Python's max would drop a NaN and report agreement)."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _add_manual(program: Program, overrides, report: GradReport) -> None:
    """Each param's gradient from the op table's own local derivatives: Σ over the ops that read it of
    (torch's upstream at that op × the table's local derivative). Left None where a use has no formula."""
    import torch

    from explorer.core.autograd.trace import TraceError, trace_program

    try:
        pt = trace_program(program, overrides)
    except (ExprError, TraceError):
        return
    if len(pt.iterations) != 1 or len(pt.last.passes) != 1:
        return
    tr = pt.last
    for nid, node in tr.nodes.items():
        check = report.params.get(node.name) if node.kind == "param" else None
        if check is None:
            continue
        parts = []
        for cid, consumer in tr.nodes.items():
            # a const node (e.g. `expand_as(target, x)`) reads the param for its shape: one leaf rule
            rules = chain_rules(tr, cid) if nid in consumer.inputs else []
            for k, inp in enumerate(consumer.inputs):
                rule = rules[k] if inp == nid and k < len(rules) and consumer.kind == "op" else None
                if rule is not None and rule.result is not None:  # uses that sent no gradient add nothing
                    parts.append(rule.manual_result)
        if parts and all(p is not None for p in parts):
            total = sum(np.asarray(p, dtype=np.float64) for p in parts)
            check.manual = torch.as_tensor(total, dtype=torch.float64).reshape(check.autograd.shape)


# ------------------------------------------------------------------------------------- chain rule


@dataclass
class ChainRule:
    """One step of the chain rule at a traced node: upstream gradient × local derivative = result.

    For an op node, `result` is the gradient it sent to its input `input_id`; for a leaf it is the
    gradient accumulated into `.grad`. `local` is a number for one-element values, else a Snapshot
    (or None where it cannot be shown elementwise); `manual_result` is upstream × the op table's own
    local derivative, to compare with torch's `result`.
    """

    node_id: str
    input_id: str | None
    upstream: object | None  # Snapshot
    local_formula: str
    local: object | None  # float | Snapshot | None
    result: object | None  # Snapshot
    text: str
    numbers: str = ""  # the same step with numbers, e.g. "-1.0889 × 0.0750 = -0.0817"
    manual_result: object | None = None  # float | numpy array | None


def chain_rules(tr, node_id: str) -> list[ChainRule]:
    """The chain rule at `node_id`, one entry per input of an op node (one entry for a leaf)."""
    node = tr.nodes[node_id]
    if node.kind != "op" or not node.inputs:
        return [_leaf_rule(tr, node)]
    return [_op_rule(tr, node, k) for k in range(len(node.inputs))]


def chain_rule(tr, node_id: str, input_index: int | None = None) -> ChainRule:
    """The chain rule at `node_id` for one input (default: the first input that received a gradient)."""
    rules = chain_rules(tr, node_id)
    if input_index is not None:
        return rules[input_index]
    for rule in rules:
        if rule.result is not None:
            return rule
    return rules[0]


MAX_NAME = 32  # longer expressions are written by their op's label instead


def node_text(tr, node_id: str, depth: int = 2) -> str:
    """How a node is written in every text of the app: its variable name, or a short expression of its
    inputs such as `(w × x)` (cut to its op's label beyond MAX_NAME characters)."""
    text = _expression(tr, node_id, depth)
    if len(text) <= MAX_NAME:
        return text
    label = tr.nodes[node_id].label or tr.nodes[node_id].op or node_id
    return label if len(label) <= MAX_NAME else label[: MAX_NAME - 1] + "…"


def _expression(tr, node_id: str, depth: int) -> str:
    node = tr.nodes[node_id]
    if node.name:
        return node.name
    if node.kind not in ("op", "const") or not node.inputs:  # a no-grad op reads as an op all the same
        return node.label
    if depth <= 0:
        return "…"
    parts = [_expression(tr, node.inputs[v], depth - 1) if kind == "in" else fmt_number(v)
             for kind, v in operand_slots(node)]
    spec = find_op(node.op) or find_op(node.torch_name)
    infix = spec is not None and (spec.kind == "operator" or spec.name == "matmul")
    if infix and len(parts) == 2:
        return f"({parts[0]} {node.label} {parts[1]})"
    if spec is not None and spec.name == "T":
        return f"{parts[0]}ᵀ"
    return f"{node.label}({', '.join(parts)})"


def d_of(tr, node_id: str) -> str:
    """`dL/dz` for a named node, `dL/d(w × x)` for an unnamed expression."""
    return _d(node_text(tr, node_id))


def _d(name: str) -> str:
    # "dL/da", but "dL/d(w × x)" needs no second pair of brackets
    return f"dL/d{name}" if name.startswith("(") or " " not in name else f"dL/d({name})"


def _event(tr, node_id: str):
    for ev in tr.backward_events:
        if ev.node_id == node_id:
            return ev
    return None


def _leaf_rule(tr, node) -> ChainRule:
    name = node_text(tr, node.id)
    ev = _event(tr, node.id)
    grad = node.grad
    if grad is None:
        text = f"no gradient reaches `{name}`: nothing it feeds needs one"
        return ChainRule(node.id, None, None, "", None, None, text)
    uses = sum(n.inputs.count(node.id) for n in tr.nodes.values())  # an op reading it twice: two uses
    summed = f"Σ over its {uses} uses" if uses > 1 else "the gradient sent by its one use"
    text = f"{_d(name)} = {summed} = {fmt_formula(grad)}"
    if ev is not None and ev.grad_before is not None and ev.grad_after is not None:
        text += (f"; .grad accumulates: {fmt_formula(ev.grad_before)} + {fmt_formula(grad)} = "
                 f"{fmt_formula(ev.grad_after)}")
    return ChainRule(node.id, None, grad, "1", 1.0, grad, text)


def operand_slots(node) -> list[tuple[str, object]]:
    """The op's operands in the order it was written: ("in", k) for its k-th input node, ("const", x) for
    a plain number written beside a tensor (`a ** 3`, `2 * x`)."""
    if getattr(node, "operands", None):
        slots = [("in", o) if isinstance(o, int) else ("const", o) for o in node.operands]
        seen = {v for kind, v in slots if kind == "in"}
        return slots + [("in", k) for k in range(len(node.inputs)) if k not in seen]
    return [("in", k) for k in range(len(node.inputs))]


def operand_values(tr, node) -> list:
    """Snapshots of the inputs and 0-d float64 tensors of the constants, in operand order."""
    import torch

    out = []
    for kind, v in operand_slots(node):
        constant = torch.tensor(float(v), dtype=torch.float64) if kind == "const" else None
        out.append(tr.nodes[node.inputs[v]].value if kind == "in" else constant)
    return out


def _slot_of(node, k: int) -> int:
    return operand_slots(node).index(("in", k))


def _op_rule(tr, node, k: int) -> ChainRule:
    input_id = node.inputs[k]
    spec = find_op(node.op) or find_op(node.torch_name)
    slots = operand_slots(node)
    names = [node_text(tr, node.inputs[v]) if kind == "in" else fmt_number(v) for kind, v in slots]
    k_slot = _slot_of(node, k)
    out_name = node_text(tr, node.id)
    upstream = node.grad
    ev = _event(tr, node.id)
    result = ev.grad_inputs[k] if ev is not None and k < len(ev.grad_inputs) else None
    up_text = _d(out_name)
    template = spec.chain[k_slot] if spec is not None and k_slot < len(spec.chain) else ""
    name = names[k_slot]
    head = _d(name) + slot_tag(tr, node.id, k)
    local_formula = _fill(template, names, "upstream", tr, node) if template else f"∂{out_name}/∂{name}"
    if "{up}" in template:
        rhs = _fill(template, names, up_text, tr, node)
    else:
        rhs = f"{up_text} × {local_formula}"
    if upstream is None or result is None:
        text = f"{head} = {rhs} (no gradient flowed to `{name}` here)"
        return ChainRule(node.id, input_id, upstream, local_formula, None, result, text)
    text = f"{head} = {rhs} = {fmt_formula(result)}"
    local, manual_result = _local_numbers(tr, node, spec, k_slot, upstream, result)
    numbers = ""
    if isinstance(local, float) and upstream.numel == 1 and result.numel == 1:
        numbers = f"{fmt_formula(upstream)} × {fmt_fixed(local)} = {fmt_formula(result)}"
    return ChainRule(node.id, input_id, upstream, local_formula, local, result, text, numbers, manual_result)


def slot_tag(tr, node_id: str, k: int) -> str:
    """" (input 2 of (x × x))" when op `node_id` reads its input `k` in more than one slot, else "".

    Each slot is a use of its own: `x * x` sends x one term per factor, and the terms add up."""
    node = tr.nodes[node_id]
    if node.inputs.count(node.inputs[k]) < 2:
        return ""
    return f" (input {k + 1} of {node_text(tr, node_id)})"


def _fill(template: str, names: list[str], up: str, tr, node) -> str:
    text = template.replace("{up}", up)
    for i, n in enumerate(names):
        text = text.replace("{" + str(i) + "}", n)
    n = _mean_divisor(tr, node)
    text = text.replace("{/n}", "" if n == 1 else f" / {n}")
    # an operand that was a plain number is not a node: name it by its place, as the table's text does
    for i, letter in enumerate("abc"):
        text = text.replace("{" + str(i) + "}", letter)
    return text


def _mean_divisor(tr, node) -> int:
    """What a loss divides by: every element for bce/mse, the batch for cross-entropy/nll."""
    if not node.inputs:
        return 1
    first = tr.nodes[node.inputs[0]].value
    spec = find_op(node.op) or find_op(node.torch_name)
    if spec is not None and spec.name in ("cross_entropy", "nll"):
        return first.shape[0] if len(first.shape) >= 2 else 1
    return first.numel


def _local_numbers(tr, node, spec: OpSpec | None, k: int, upstream, result):
    """(local derivative, upstream × manual local) where they can be computed; else (ratio, None)."""
    import torch

    local = None
    manual_result = None
    operands = operand_values(tr, node)
    inputs = [_as_snapshot(v) for v in operands]
    tensor_args = [a for a in spec.args if a.kind == "tensor"] if spec is not None else []
    complete = (
        spec is not None and len(inputs) <= len(tensor_args)
        and all(s.data is not None and not s.truncated for s in inputs)
        and upstream.data is not None and not upstream.truncated
    )
    if complete and spec.manual_vjp is not None:
        # a matrix rule: the formula gives the gradient itself (there is no elementwise local factor)
        try:
            values = [snapshot_tensor(s) for s in inputs]
            whole = node.value.data is not None and not node.value.truncated
            out = snapshot_tensor(node.value) if whole else None
            sent = spec.manual_vjp(snapshot_tensor(upstream), *values, out=out, settings=op_settings(node))
            g = sent[k] if k < len(sent) else None
        except (RuntimeError, ValueError, TypeError, IndexError):
            g = None
        if g is not None and tuple(g.shape) == tuple(inputs[k].shape):
            manual_result = float(g.reshape(-1)[0]) if g.numel() == 1 else g.numpy()
        if upstream.numel == 1 and result.numel == 1 and upstream.item() != 0:
            local = result.item() / upstream.item()
        return local, manual_result
    usable = complete and spec.manual is not None and len(inputs) == len(tensor_args)
    if usable:
        try:
            values = [torch.from_numpy(np.asarray(s.data, dtype=np.float64)).reshape(s.shape) for s in inputs]
            derivs = spec.manual(*values)
            d = derivs[k] if k < len(derivs) else None
        except (RuntimeError, ValueError, TypeError, IndexError):
            d = None
        if d is not None:
            up = torch.from_numpy(np.asarray(upstream.data, dtype=np.float64)).reshape(upstream.shape)
            full = up * d
            target = tuple(inputs[k].shape)
            manual = reduce_to(full, target)
            local = float(d.reshape(-1)[0]) if d.numel() == 1 else _snapshot(d)
            manual_result = float(manual.reshape(-1)[0]) if manual.numel() == 1 else manual.numpy()
            return local, manual_result
    if upstream.numel == 1 and result.numel == 1:
        u = upstream.item()
        if u != 0:
            local = result.item() / u
    return local, manual_result


def _as_snapshot(value):
    """A constant operand (a 0-d tensor) as a Snapshot; a Snapshot as itself."""
    import torch

    return _snapshot(value) if isinstance(value, torch.Tensor) else value


def op_settings(node) -> tuple[int, ...]:
    """The whole-number settings of a recorded call: "sum(·, 1)" -> (1,), "transpose(·, 0, 1)" -> (0, 1)."""
    call = getattr(node, "call", None) or ""
    inside = call.partition("(")[2].rpartition(")")[0]
    out = []
    for part in inside.split(","):
        text = part.strip().rpartition("=")[2].strip()
        if text.lstrip("-").isdigit():
            out.append(int(text))
    return tuple(out)


def snapshot_tensor(snap) -> torch.Tensor:
    """A snapshot's data as a tensor of its shape (float64 for floats, as the snapshot stores it)."""
    import torch

    return torch.from_numpy(np.array(snap.data)).reshape(snap.shape)


def reduce_to(t: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Sum a broadcast gradient back to an input's shape (what autograd does for broadcasting)."""
    while t.dim() > len(shape):
        t = t.sum(0)
    for i, size in enumerate(shape):
        if size == 1 and t.shape[i] != 1:
            t = t.sum(i, keepdim=True)
    return t.reshape(shape)


def _snapshot(t: torch.Tensor):
    from explorer.core.autograd.trace import Snapshot

    return Snapshot.of(t)
