"""The sentences of the status line and the inspector: what a step did, and a node's chain rule, in numbers.

Qt-free; the Timeline asks `describe_event` for each step's status, the inspector `chain_rule_text`.
"""

from __future__ import annotations

import numpy as np

from explorer.core.autograd.gradcheck import chain_rules
from explorer.core.autograd.gradcheck import d_of as d_of
from explorer.core.autograd.gradcheck import node_text as node_text
from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.display import op_short_name
from explorer.core.numbers import max_abs_text as max_abs_text
from explorer.core.numbers import snapshot_summary


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
    rules = _consumer_rules(trace, node_id)
    if not rules:
        return f"{d_of(trace, node_id)} = {snapshot_summary(node.grad)}"
    lines = [rule_line(r) for r in rules]
    if len(lines) > 1:
        total = snapshot_summary(node.grad)
        lines.append(f"sum over the {len(lines)} uses: {d_of(trace, node_id)} = {total}")
    if node.kind in ("param", "leaf"):
        ev = next((e for e in trace.backward_events if e.node_id == node_id), None)
        if ev is not None and ev.grad_after is not None:
            before = snapshot_summary(ev.grad_before) if ev.grad_before is not None else "None"
            lines.append(f"AccumulateGrad: {node_text(trace, node_id)}.grad: {before} → "
                         f"{snapshot_summary(ev.grad_after)}")
    return "\n".join(lines)


def rule_line(rule) -> str:
    """A gradcheck ChainRule as one line: formula = numbers = result."""
    text = getattr(rule, "text", "")
    numbers = getattr(rule, "numbers", "")
    if numbers and " = " in text:
        return text.rsplit(" = ", 1)[0] + " = " + numbers
    return text


def _consumer_rules(trace, node_id: str) -> list:
    done = set(trace.backward_order)
    rules = []
    for cid, consumer in trace.nodes.items():
        if node_id in consumer.inputs and cid in done:
            rule = chain_rules(trace, cid)[consumer.inputs.index(node_id)]
            if getattr(rule, "result", None) is not None:
                rules.append(rule)
    return rules


def _manual_sum(trace, node_id: str):
    parts = [r.manual_result for r in _consumer_rules(trace, node_id)]
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
