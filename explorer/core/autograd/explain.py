"""Qt-free work behind the expression workspace: parse, trace, explain steps and chain rules.

The panel calls `compute` off the GUI thread and shows the result; the text helpers turn trace
records into the sentences of the status line and the inspector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from explorer.core.autograd.gradcheck import chain_rules, compare_grads
from explorer.core.autograd.gradcheck import d_of as d_of
from explorer.core.autograd.gradcheck import node_text as node_text
from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.display import op_short_name
from explorer.core.numbers import max_abs_text as max_abs_text
from explorer.core.numbers import snapshot_summary


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

    @property
    def ok(self) -> bool:
        """True when the program ran and was traced."""
        return self.trace is not None and self.error is None


def compute(source: str, overrides: dict | None = None) -> ComputeResult:
    """Parse and trace `source` (forward and backward), with param values from `overrides`."""
    from explorer.core.autograd.trace import TraceError, trace
    from explorer.core.lang.program import ExprError, parse

    start = time.perf_counter()
    result = ComputeResult(source=source, overrides=dict(overrides or {}))
    try:
        program = parse(source)
        result.program = program
        known = set(program.param_names)
        ov = {k: _as_tensor_value(v) for k, v in result.overrides.items() if k in known}
        try:
            result.trace = prune_unused(trace(program.callable(ov or None)))
        except TraceError:
            if program.param_names:
                raise
            # nothing requires a gradient: the forward pass alone is still worth seeing
            result.trace = prune_unused(trace(program.callable(ov or None), backward=False))
            result.note = "forward only: nothing here requires a gradient (make a leaf with param(...))"
    except ExprError as exc:
        result.error = f"line {exc.line}:{exc.col}: {exc.message}"
        result.error_pos = (exc.line, exc.col)
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
    return replace(
        tr, nodes={k: v for k, v in tr.nodes.items() if k in keep},
        forward_order=[n for n in tr.forward_order if n in keep],
        backward_order=[n for n in tr.backward_order if n in keep],
        backward_events=[e for e in tr.backward_events if e.node_id in keep],
        graph=tr.graph.subgraph(keep).copy(),
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
    for _ in range(max(1, times)):
        run.output.backward(retain_graph=True)
        for name, p in run.params.items():
            g = p.grad
            history[name].append(None if g is None else _tensor_value(g.detach()))
    return history


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


def leaf_comparison(result: ComputeResult) -> dict[str, dict]:
    """Per param: autograd, finite-difference and manual-formula gradients and their differences.

    The manual value is the op table's local derivative times the upstream gradient, summed over
    the param's uses, when the op table has a formula for every use.
    """
    report = compare_grads(result.program, overrides=_tensor_overrides(result) or None)
    rows = {}
    params_by_name = {n.name: nid for nid, n in result.trace.nodes.items() if n.kind == "param"}
    for name, check in report.params.items():
        row = {k: getattr(check, k, None) for k in ("autograd", "numeric", "manual", "max_abs_error",
                                                    "max_rel_error", "skipped")}
        if row["manual"] is None and name in params_by_name:
            row["manual"] = _manual_sum(result.trace, params_by_name[name])
        rows[name] = row
    return rows


def _manual_sum(trace, node_id: str):
    parts = [r.manual_result for r in _consumer_rules(trace, node_id)]
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
    parts = [rule_line(r) for r in chain_rules(trace, event.node_id) if r.result is not None]
    if not parts:
        upstream = snapshot_summary(event.grad_outputs[0]) if event.grad_outputs else "?"
        return f"{event.torch_name}: {d_of(trace, event.node_id)} = {upstream} arrives"
    return f"{event.torch_name}: " + ";  ".join(dict.fromkeys(parts))


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
