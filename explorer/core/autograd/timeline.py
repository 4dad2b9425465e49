"""The one timeline of a trace: what step k of a player shows.

Step 0 is "nothing computed yet"; steps 1..F are the forward events in execution order; steps F+1..F+B
the backward events in the order torch's autograd engine ran them. For each step the timeline says
which event it is, which node it is about (its focus), which nodes know their value and their gradient,
and the status line in words and numbers. The expression player, the network iteration player and the
"Trace one step" tab all ask this object; nothing else maps steps to nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Step:
    """What one step of the timeline shows."""

    k: int
    direction: str  # "start" | "forward" | "backward"
    node_id: str | None  # the event's node (None at step 0)
    focus: str | None  # the node the step is about: the value just computed, or the input whose
    # gradient was just produced (backward), else the event's own node
    status: str  # the status line


class Timeline:
    """Steps of one Trace (see the module docstring)."""

    def __init__(self, trace) -> None:
        self.trace = trace
        self.events: list[tuple[str, str]] = [("forward", n) for n in trace.forward_order] + [
            ("backward", n) for n in trace.backward_order
        ]

    @property
    def length(self) -> int:
        """The last step: forward plus backward events."""
        return len(self.events)

    @property
    def forward_length(self) -> int:
        """How many forward events come before the first backward one."""
        return len(self.trace.forward_order)

    def event(self, k: int) -> tuple[str, str] | None:
        """("forward"|"backward", node id) of step k, None at step 0 (k is clamped)."""
        k = self.clamp(k)
        return self.events[k - 1] if k > 0 else None

    def backward_event(self, k: int):
        """The trace's BackwardEvent record of step k (what torch sent), None on forward steps."""
        k = self.clamp(k)
        b = k - self.forward_length
        events = self.trace.backward_events
        return events[b - 1] if 0 < b <= len(events) else None

    def step_of(self, direction: str, node_id: str) -> int | None:
        """The step of the event ("forward"|"backward", node id), None when the trace has no such event."""
        return self._index.get((direction, node_id))

    @cached_property
    def _index(self) -> dict[tuple[str, str], int]:
        index: dict[tuple[str, str], int] = {}
        for i, event in enumerate(self.events):
            index.setdefault(event, i + 1)
        return index

    def clamp(self, k: int) -> int:
        """k limited to 0..length."""
        return max(0, min(int(k), self.length))

    @cached_property
    def value_at(self) -> dict[str, int]:
        """Node id -> the first step at which its value is known (leaves at their first use)."""
        return {nid: i + 1 for i, nid in enumerate(self.trace.forward_order)}

    @cached_property
    def grad_at(self) -> dict[str, int]:
        """Node id -> the first step at which dL/d(node) is known: after the last op that reads it has
        sent its share (the output: after its own event). Nodes no gradient reaches are absent."""
        n_fwd = self.forward_length
        bpos = {n: i for i, n in enumerate(self.trace.backward_order)}
        last_consumer: dict[str, int] = {}
        for nid, node in self.trace.nodes.items():
            if nid in bpos:
                for inp in node.inputs:
                    last_consumer[inp] = max(last_consumer.get(inp, -1), bpos[nid])
        steps: dict[str, int] = {}
        for nid, node in self.trace.nodes.items():
            if nid not in bpos and node.grad is None:
                continue  # no gradient ever reaches it (inputs, constants)
            if nid in last_consumer:
                steps[nid] = n_fwd + last_consumer[nid] + 1
            elif nid in bpos:
                steps[nid] = n_fwd + bpos[nid] + 1
        return steps

    @cached_property
    def saved_alive(self) -> list[int]:
        """Bytes of activations saved for backward alive at each step 0..length (see saved.py)."""
        from explorer.core.autograd.saved import alive_by_step

        return alive_by_step(self)

    def saved_bytes_at(self, k: int) -> int:
        """Bytes autograd keeps for backward at step k: rising in the forward, freed node by node in
        the backward (the model's weights left out)."""
        return self.saved_alive[self.clamp(k)]

    def value_known(self, node_id: str, k: int) -> bool:
        """Whether step k shows the node's value."""
        return k >= self.value_at.get(node_id, 0)

    def grad_known(self, node_id: str, k: int) -> bool:
        """Whether step k shows dL/d(node)."""
        at = self.grad_at.get(node_id)
        return at is not None and k >= at

    def focus(self, k: int) -> str | None:
        """The node step k is about (see `Step.focus`)."""
        event = self.event(k)
        if event is None:
            return None
        direction, nid = event
        node = self.trace.nodes[nid]
        if direction == "backward" and node.inputs:
            receivers = [i for i in node.inputs if self.trace.nodes[i].grad is not None]
            return receivers[0] if receivers else nid
        return nid

    def status(self, k: int) -> str:
        """The status line of step k, in words and numbers."""
        from explorer.core.autograd.explain import describe_event

        k = self.clamp(k)
        text = describe_event(self, k)
        head = self.pass_text(k)
        if head:
            text = f"{head} · {text}"
        events = getattr(self.trace, "events", None) or []
        if k == self.length and k > 0 and events:
            text += " · then " + "; ".join(e.get("text", e.get("kind", "")) for e in events)
        return text

    def pass_text(self, k: int) -> str:
        """Which backward pass step k belongs to, when the trace has more than one ("" otherwise)."""
        passes = getattr(self.trace, "passes", None) or []
        if len(passes) < 2:
            return ""
        b = self.clamp(k) - self.forward_length - 1  # index into backward_events
        if b < 0:
            return ""
        for i, p in enumerate(passes):
            if p.first <= b < p.first + p.count:
                where = f" (line {p.line})" if p.line else ""
                if p.kind == "grad":
                    return f"torch.autograd.grad pass {i + 1} of {len(passes)}{where}: .grad is left alone"
                earlier = any(q.kind == "backward" for q in passes[:i])
                note = ": .grad accumulates" if earlier else ": .grad starts from None"
                return f"backward pass {i + 1} of {len(passes)}{where}{note}"
        return ""

    def step(self, k: int) -> Step:
        """Everything step k shows."""
        k = self.clamp(k)
        event = self.event(k)
        direction, nid = event if event else ("start", None)
        return Step(k, direction, nid, self.focus(k), self.status(k))
