"""The sentences of the status line and the inspector: what a step did, and a node's chain rule, in numbers.

Qt-free; the Timeline asks `describe_event` for each step's status, the inspector `chain_rule_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.autograd.gradcheck import chain_rules
from explorer.core.autograd.gradcheck import d_of as d_of
from explorer.core.autograd.gradcheck import node_text as node_text
from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.display import op_short_name
from explorer.core.numbers import fmt_array, fmt_number, snapshot_summary
from explorer.core.numbers import max_abs_text as max_abs_text


def describe_event(source, k: int) -> str:
    """The status line for step `k` of a Timeline (or of a trace's timeline; 0: before anything ran)."""
    timeline = source if isinstance(source, Timeline) else Timeline(source)
    trace = timeline.trace
    k = timeline.clamp(k)
    n_fwd, n_bwd = timeline.forward_length, timeline.length - timeline.forward_length
    event = timeline.event(k)
    if event is None:
        return (f"Ready: {n_fwd} forward events, then {n_bwd} backward events. "
                "Press Right (or Step ▶) to step.")
    direction, nid = event
    if direction == "forward":
        return f"forward {k}/{n_fwd} · " + _describe_forward(trace, nid)
    record = timeline.backward_event(k)
    what = _describe_backward(trace, record) if record else ""
    text = f"backward {k - n_fwd}/{n_bwd} · {what}"
    if k == timeline.length:
        text += "   — backward done"
    return text


def chain_rule_text(trace, node_id: str) -> str:
    """The chain rule for a node's gradient with numbers: upstream × local = gradient.

    The rule lives at the op(s) that read the node: each sent dL/d(node) = dL/d(op) × ∂op/∂node.
    """
    node = trace.nodes[node_id]
    if node.is_output:
        return f"{d_of(trace, node_id)} = 1 (backward starts at the output)"
    if node.grad is None:
        return f"{node_text(trace, node_id)} does not require a gradient: nothing flows into it"
    rules = consumer_rules(trace, node_id)
    if not rules:
        return f"{d_of(trace, node_id)} = {snapshot_summary(node.grad)}"
    lines = [_with_numbers(rule_line(r), r.result) for r in rules]
    if len(lines) > 1:
        total = _numbers_of(node.grad)
        lines.append(f"sum over the {len(lines)} uses: {d_of(trace, node_id)} = {total}")
    if node.kind in ("param", "leaf"):
        ev = next((e for e in trace.backward_events if e.node_id == node_id), None)
        if ev is not None and ev.grad_after is not None:
            before = snapshot_summary(ev.grad_before) if ev.grad_before is not None else "None"
            lines.append(f"AccumulateGrad: {node_text(trace, node_id)}.grad: {before} → "
                         f"{snapshot_summary(ev.grad_after)}")
    return "\n".join(lines)


def _numbers_of(snap) -> str:
    """A tensor's numbers for a formula line ("3×2 [0.23, 0.0041, 1.5, -0.5, …] (max |·| 1.5)"), its
    summary ("1×8×128 f32") beyond MAX_GRID elements."""
    data = _array(snap) if snap is not None and 1 < snap.numel <= MAX_GRID else None
    if data is None:
        return snapshot_summary(snap)
    return f"{'×'.join(map(str, snap.shape))} {fmt_array(data)}"


def _with_numbers(line: str, result) -> str:
    """A rule line whose result reads "[tensor (3, 2)]" with the numbers instead."""
    marker = f"[tensor {tuple(result.shape)}]" if result is not None else None
    return line.replace(marker, _numbers_of(result)) if marker and line.endswith(marker) else line


def rule_line(rule) -> str:
    """A gradcheck ChainRule as one line: formula = numbers = result."""
    text = getattr(rule, "text", "")
    numbers = getattr(rule, "numbers", "")
    if numbers and " = " in text:
        return text.rsplit(" = ", 1)[0] + " = " + numbers
    return text


def consumer_rules(trace, node_id: str) -> list:
    """The rule of every input slot that reads the node and sent it a gradient (`x * x`: two)."""
    done = set(trace.backward_order)
    rules = []
    for cid, consumer in trace.nodes.items():
        if node_id not in consumer.inputs or cid not in done:
            continue
        consumer_rules = chain_rules(trace, cid)
        for k, inp in enumerate(consumer.inputs):
            rule = consumer_rules[k] if inp == node_id and k < len(consumer_rules) else None
            if getattr(rule, "result", None) is not None:
                rules.append(rule)
    return rules


def manual_sum(trace, node_id: str):
    parts = [r.manual_result for r in consumer_rules(trace, node_id)]
    if not parts or any(p is None for p in parts):
        return None
    return sum(np.asarray(p, dtype=np.float64) for p in parts)


# -- private helpers ---------------------------------------------------------------------------


def _describe_forward(trace, nid: str) -> str:
    node = trace.nodes[nid]
    value = snapshot_summary(node.value)
    if node.kind == "op" or (node.kind == "const" and node.op and node.inputs):
        args = ", ".join(node_text(trace, i) for i in node.inputs)
        call = f"{args}ᵀ" if node.op == "T" else f"{op_short_name(node)}({args})"
        text = f"{node.name} = {call} = {value}" if node.name else f"{call} = {value}"
        return text if node.kind == "op" else text + "  (no grad: autograd records no backward)"
    if node.kind == "param":
        return f"leaf {node_text(trace, nid)} = {value}  (param: requires_grad=True, will receive .grad)"
    if node.kind == "const":
        return f"constant {node_text(trace, nid)} = {value}"
    return f"input {node_text(trace, nid)} = {value}  (no gradient needed)"


def _describe_backward(trace, event) -> str:
    node = trace.nodes[event.node_id]
    name = node_text(trace, event.node_id)
    if event.torch_name == "AccumulateGrad":
        before = snapshot_summary(event.grad_before) if event.grad_before is not None else "None"
        after = snapshot_summary(event.grad_after if event.grad_after is not None else node.grad)
        return f"AccumulateGrad: {name}.grad = {after}   (was {before})"
    parts = [rule_line(r) for r in chain_rules(trace, event.node_id) if r.result is not None]
    if not parts:
        upstream = snapshot_summary(event.grad_outputs[0]) if event.grad_outputs else "?"
        return f"{event.torch_name}: {d_of(trace, event.node_id)} = {upstream} arrives"
    return f"{event.torch_name}: " + ";  ".join(dict.fromkeys(parts))


# -- the tensor chain rule in numbers -----------------------------------------------------------------

MAX_GRID = 64  # tensors up to this many elements get their chain rule as grids of numbers


@dataclass
class PathTerm:
    """One path of the gradient into a value: the op that read it, and what that op sent back.

    `upstream` is dL/d(the op's output), `local` the op's elementwise local derivative (None for a
    matrix rule such as matmul, whose local part is the formula `local_formula`), `result` the term this
    path adds to the value's gradient: torch's own numbers, shaped like the value.
    """

    consumer_id: str
    input_index: int
    text: str  # "dL/dW = dL/dA @ xᵀ", the rule with names
    upstream: np.ndarray
    local: np.ndarray | None
    local_formula: str
    result: np.ndarray


@dataclass
class TensorChain:
    """The chain rule of a tensor value: one term per path, and their sum (the value's gradient)."""

    node_id: str
    name: str  # "dL/dW"
    terms: list[PathTerm]
    total: np.ndarray


def tensor_chain(trace, node_id: str, max_elements: int = MAX_GRID) -> TensorChain | None:
    """The chain rule of a tensor node of 2 to `max_elements` elements as grids (None otherwise, or
    before its gradient is known)."""
    node = trace.nodes[node_id]
    grad = node.grad
    if grad is None or node.is_output or not 1 < grad.numel <= max_elements or _array(grad) is None:
        return None
    terms = []
    for cid, k in _uses(trace, node_id):
        rule = chain_rules(trace, cid)[k]
        consumer = trace.nodes[cid]
        upstream, result = _array(consumer.grad), _array(rule.result)
        if upstream is None or result is None:
            continue
        local = _array(rule.local) if rule.local is not None and not isinstance(rule.local, float) else None
        if isinstance(rule.local, float):
            local = np.full(upstream.shape, rule.local)
        if local is not None and local.shape != upstream.shape:
            local = None
        terms.append(PathTerm(cid, k, rule.text.rsplit(" = ", 1)[0], upstream, local, rule.local_formula,
                              result))
    return TensorChain(node_id, d_of(trace, node_id), terms, _array(grad))


def element_chain(trace, node_id: str, index: tuple[int, ...]) -> list[str]:
    """The scalar chain rule of one element of a tensor value, every path term by term:
    dL/dW[i, j] = Σ over the outputs m of each op that read W of dL/dout[m] × ∂out[m]/∂W[i, j].

    The local factors come from the op table's own derivatives; the sum is checked against torch's.
    """
    node = trace.nodes[node_id]
    grad = _array(node.grad)
    if grad is None:
        return [f"{d_of(trace, node_id)}: no gradient reaches it"]
    index = tuple(int(i) for i in index)
    where = f"[{', '.join(map(str, index))}]"
    name = node_text(trace, node_id)
    lines = []
    total = 0.0
    complete = True
    uses = _uses(trace, node_id)
    for cid, k in uses:
        consumer = trace.nodes[cid]
        up = _array(consumer.grad)
        rule = chain_rules(trace, cid)[k]
        sent = _array(rule.result)
        if up is None or sent is None:
            continue
        out = d_of(trace, cid)
        via = (f"via input {k + 1} of {node_text(trace, cid)}" if consumer.inputs.count(node_id) > 1
               else f"via {node_text(trace, cid)}")
        column = _jacobian_column(trace, cid, k, index, up.shape)
        torch_term = float(sent[index])
        if column is None:  # no formula of its own for this op: torch's number only
            lines.append(f"{via}: {fmt_number(torch_term)} "
                         "(autograd's number: the op table has no formula for it)")
            total += torch_term
            complete = False
            continue
        parts = [(m, float(up[m]), float(column[m])) for m in np.ndindex(up.shape) if column[m] != 0.0]
        term = sum(u * d for _m, u, d in parts)
        if not parts:
            lines.append(f"{via}: 0 (no output element depends on {name}{where})")
            continue
        out_at = out
        factors = " + ".join(f"{fmt_number(u)} × {fmt_number(d)}" for _m, u, d in parts[:8])
        if len(parts) > 8:
            factors += f" + … ({len(parts)} terms)"
        head = (f"{out_at}{_at(parts[0][0])} × ∂{node_text(trace, cid)}{_at(parts[0][0])}/∂{name}{where}"
                if len(parts) == 1 else f"Σ_m {out_at}[m] × ∂{node_text(trace, cid)}[m]/∂{name}{where}")
        lines.append(f"{via}: {head} = {factors} = {fmt_number(term)}")
        total += term
    if len(uses) > 1 or not lines:
        lines.append(f"sum over the {len(uses)} paths: {d_of(trace, node_id)}{where} = {fmt_number(total)}")
    check = float(grad[index])
    lines.append(f"autograd: {name}.grad{where} = {fmt_number(check)}" +
                 ("" if complete else " (the paths without a formula use autograd's numbers)"))
    return [f"{d_of(trace, node_id)}{where} ="] + lines


def element_chain_total(trace, node_id: str, index: tuple[int, ...]) -> float | None:
    """Σ over every path of upstream × local for one element (the number `element_chain` writes), from
    the op table's derivatives; None when an op on the way has no formula."""
    total = 0.0
    for cid, k in _uses(trace, node_id):
        up = _array(trace.nodes[cid].grad)
        if up is None or chain_rules(trace, cid)[k].result is None:
            continue
        column = _jacobian_column(trace, cid, k, tuple(index), up.shape)
        if column is None:
            return None
        total += float(np.sum(up * column))
    return total


def _at(m) -> str:
    return f"[{', '.join(map(str, m))}]" if m else ""


def _uses(trace, node_id: str) -> list[tuple[str, int]]:
    """(consumer id, input position) of every op input that reads the node and ran in backward."""
    done = set(trace.backward_order)
    return [(cid, k) for cid, consumer in trace.nodes.items() if cid in done and consumer.kind == "op"
            for k, i in enumerate(consumer.inputs) if i == node_id]


def _array(snap) -> np.ndarray | None:
    """A complete snapshot as a float64 array of its shape (None for a missing or truncated one)."""
    if snap is None or getattr(snap, "data", None) is None or getattr(snap, "truncated", False):
        return None
    return np.asarray(snap.data, dtype=np.float64).reshape(snap.shape)


def _jacobian_column(trace, cid: str, k: int, index: tuple[int, ...], out_shape) -> np.ndarray | None:
    """∂out[m]/∂input_k[index] for every output element m of op `cid`, from the op table's own local
    derivatives (elementwise with broadcasting) or its vector-Jacobian formula (matmul, sums, ...)."""
    import torch

    from explorer.core.autograd.gradcheck import op_settings, reduce_to, snapshot_tensor
    from explorer.core.lang.ops import find_op

    node = trace.nodes[cid]
    spec = find_op(node.op) or find_op(node.torch_name)
    inputs = [trace.nodes[i].value for i in node.inputs]
    if spec is None or any(_array(s) is None for s in inputs):
        return None
    values = [snapshot_tensor(s) for s in inputs]
    values = [v.to(torch.float64) if v.is_floating_point() else v for v in values]
    in_shape = tuple(inputs[k].shape)
    size = int(np.prod(out_shape)) if out_shape else 1
    column = np.zeros(out_shape)
    try:
        if spec.manual_vjp is not None:
            out = snapshot_tensor(node.value) if _array(node.value) is not None else None
            for m in np.ndindex(*out_shape) if out_shape else [()]:
                onehot = torch.zeros(out_shape, dtype=torch.float64)
                onehot[m] = 1.0
                sent = spec.manual_vjp(onehot, *values, out=out, settings=op_settings(node))[k]
                column[m] = float(sent.reshape(in_shape)[index])
            return column
        if spec.manual is not None and size <= 4096:
            d = spec.manual(*values)[k]
            d = torch.as_tensor(d, dtype=torch.float64).expand(out_shape) if d is not None else None
            if d is None:
                return None
            for m in np.ndindex(*out_shape) if out_shape else [()]:
                onehot = torch.zeros(out_shape, dtype=torch.float64)
                onehot[m] = 1.0
                column[m] = float(reduce_to(onehot * d, in_shape)[index])
            return column
    except (RuntimeError, ValueError, TypeError, IndexError):
        return None
    return None
