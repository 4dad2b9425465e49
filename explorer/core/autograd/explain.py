"""Qt-free work behind the expression workspace: parse, trace, explain steps and chain rules.

The panel calls `compute` off the GUI thread and shows the result; the text helpers turn trace
records into the sentences of the status line and the inspector.
"""

from __future__ import annotations

import re

import numpy as np

from explorer.core.graph.display import op_short_name
from explorer.core.numbers import fmt_number, snapshot_summary
from explorer.core.numbers import max_abs_text as max_abs_text

_BINARY = {"+", "−", "×", "÷", "@", "**", "-", "*", "/"}


def node_text(trace, node_id: str, depth: int = 1) -> str:
    """A readable name for a node: its variable name, else a short expression like `w×x`."""
    node = trace.nodes[node_id]
    if node.name:
        return node.name
    if node.kind != "op":
        return node.label
    if depth <= 0:
        return "(…)"
    args = [node_text(trace, i, depth - 1) for i in node.inputs]
    if node.label in _BINARY and len(args) == 2:
        return f"({args[0]}{node.label}{args[1]})" if depth < 1 else f"{args[0]}{node.label}{args[1]}"
    return f"{node.label}({', '.join(args)})"


def describe_event(trace, k: int) -> str:
    """The status line for step `k` of the trace's timeline (0: before anything ran)."""
    n_fwd = len(trace.forward_order)
    total = n_fwd + len(trace.backward_order)
    if k <= 0:
        return (f"Ready: {n_fwd} forward events, then {len(trace.backward_order)} backward events. "
                "Press Right (or Step ▶) to step.")
    if k <= n_fwd:
        return f"forward {k}/{n_fwd} · " + _describe_forward(trace, trace.forward_order[k - 1])
    b = k - n_fwd
    event = trace.backward_events[b - 1] if b - 1 < len(trace.backward_events) else None
    what = _describe_backward(trace, event) if event else ""
    text = f"backward {b}/{len(trace.backward_order)} · {what}"
    if k == total:
        text += "   — backward done"
    return text


def chain_rule_text(trace, node_id: str) -> str:
    """The chain rule for a node's gradient with numbers: upstream × local = gradient.

    The rule lives at the op(s) that read the node: each sent dL/d(node) = dL/d(op) × ∂op/∂node.
    """
    node = trace.nodes[node_id]
    if node.is_output:
        return f"{d_of(trace, node_id)} = 1 (backward starts at the output)"
    try:
        rules = _consumer_rules(trace, node_id)
    except Exception:  # gradcheck missing or unable: derive the numbers from the trace's records
        return _chain_from_events(trace, node_id)
    if not rules:
        return _chain_from_events(trace, node_id)
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
    from explorer.core.autograd.gradcheck import chain_rules

    done = set(trace.backward_order)
    rules = []
    for cid, consumer in trace.nodes.items():
        if node_id in consumer.inputs and cid in done:
            rule = chain_rules(trace, cid)[consumer.inputs.index(node_id)]
            if getattr(rule, "result", None) is not None:
                rules.append(rule)
    return rules


def _manual_sum(trace, node_id: str):
    try:
        rules = _consumer_rules(trace, node_id)
    except Exception:  # no manual formula is shown rather than a wrong one
        return None
    parts = [getattr(r, "manual_result", None) for r in rules]
    if not parts or any(p is None for p in parts):
        return None
    return sum(np.asarray(p, dtype=np.float64) for p in parts)


# -- private helpers ---------------------------------------------------------------------------


def _describe_forward(trace, nid: str) -> str:
    node = trace.nodes[nid]
    value = snapshot_summary(node.value)
    if node.kind == "op":
        args = ", ".join(node_text(trace, i) for i in node.inputs)
        call = f"{op_short_name(node)}({args})"
        return f"{node.name} = {call} = {value}" if node.name else f"{call} = {value}"
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
    parts = []
    try:
        from explorer.core.autograd.gradcheck import chain_rules

        parts = [rule_line(r) for r in chain_rules(trace, event.node_id) if r.result is not None]
    except Exception:  # fall back to the trace's own numbers
        for idx, inp in enumerate(node.inputs):
            g = event.grad_inputs[idx] if idx < len(event.grad_inputs) else None
            if g is not None:
                parts.append(_edge_chain(trace, event.node_id, inp, event.grad_outputs, g))
    if not parts:
        upstream = snapshot_summary(event.grad_outputs[0]) if event.grad_outputs else "?"
        return f"{event.torch_name}: {d_of(trace, event.node_id)} = {upstream} arrives"
    return f"{event.torch_name}: " + ";  ".join(dict.fromkeys(parts))


def d_of(trace, node_id: str) -> str:
    """`dL/dz` for a named node, `dL/d(w×x)` for an unnamed expression."""
    text = node_text(trace, node_id)
    return f"dL/d{text}" if text.isidentifier() else f"dL/d({text})"


def _edge_chain(trace, consumer: str, inp: str, grad_outputs, sent) -> str:
    """`dL/dz = dL/da × <local> = <up> × <local> = <sent>` for the gradient one op sends to one input."""
    node = trace.nodes[consumer]
    up = grad_outputs[0] if grad_outputs else None
    up_name = d_of(trace, consumer)
    local_formula = _local_formula(trace, node, node.inputs.index(inp), up_name)
    if "{up}" in local_formula:  # matrix rules are not a plain product: show the whole expression
        return f"{d_of(trace, inp)} = {local_formula.replace('{up}', up_name)} = {snapshot_summary(sent)}"
    text = f"{d_of(trace, inp)} = {up_name} × {local_formula}"
    if up is not None and up.numel == 1 and sent.numel == 1:
        u = float(up.item())
        if u != 0:
            text += f" = {fmt_number(u)} × {fmt_number(float(sent.item()) / u)}"
    return f"{text} = {snapshot_summary(sent)}"


def _local_formula(trace, node, index: int, up_name: str) -> str:
    """The op table's local derivative for input `index`, with the inputs' names filled in."""
    names = [node_text(trace, i) for i in node.inputs]
    try:
        from explorer.core.lang.ops import find_op

        spec = find_op(node.op) or find_op(node.torch_name)
    except ImportError:
        spec = None
    chain = tuple(getattr(spec, "chain", ()) or ()) if spec else ()
    if index < len(chain):
        def fill(m: re.Match) -> str:
            key = m.group(1)
            if key == "up":
                return "{up}"
            if key == "/n":
                return "/n" if node.value.numel == 1 and _input_numel(trace, node) > 1 else ""
            i = int(key)
            return names[i] if i < len(names) else "?"

        return re.sub(r"\{(up|/n|\d+)\}", fill, chain[index])
    formula = getattr(spec, "local_derivative", "") if spec else ""
    return formula or f"∂{node.label}/∂{names[index] if index < len(names) else index}"


def _input_numel(trace, node) -> int:
    return max((trace.nodes[i].value.numel for i in node.inputs), default=1)


def _chain_from_events(trace, node_id: str) -> str:
    node = trace.nodes[node_id]
    name = node_text(trace, node_id)
    if node.is_output:
        return f"{d_of(trace, node_id)} = 1 (backward starts at the output)"
    if node.grad is None:
        return f"{name} does not require a gradient: nothing flows into it"
    terms = []
    by_node = {e.node_id: e for e in trace.backward_events}
    for cid, consumer in trace.nodes.items():
        if node_id not in consumer.inputs or cid not in by_node:
            continue
        ev = by_node[cid]
        idx = consumer.inputs.index(node_id)
        sent = ev.grad_inputs[idx] if idx < len(ev.grad_inputs) else None
        if sent is not None:
            terms.append(_edge_chain(trace, cid, node_id, ev.grad_outputs, sent))
    if len(terms) == 1:
        return terms[0]
    total = snapshot_summary(node.grad)
    return "\n+ ".join(terms) + f"\nsum over the {len(terms)} uses: {d_of(trace, node_id)} = {total}"
