"""The one Timeline of a trace, driven on its own on the seed example (no display, no Qt)."""

from __future__ import annotations

import pytest

from explorer.core.autograd.timeline import Timeline
from explorer.core.autograd.trace import trace
from explorer.core.lang.examples import SEED_SOURCE
from explorer.core.lang.program import parse


@pytest.fixture(scope="module")
def timeline():
    return Timeline(trace(parse(SEED_SOURCE).callable()))


def _id(tl, name):
    return next(n.id for n in tl.trace.nodes.values() if n.name == name)


def test_forward_events_then_backward_in_engine_order(timeline):
    tl = timeline
    # x = 1.1 and y = 1.0 are plain numbers, as in torch: w, b, w × 1.1, z, a, the target 1, L
    assert tl.length == 13 and tl.forward_length == 7
    assert tl.event(0) is None and tl.step(0).direction == "start"
    assert [d for d, _ in tl.events] == ["forward"] * 7 + ["backward"] * 6
    backward = [tl.trace.nodes[n].torch_name for d, n in tl.events if d == "backward"]
    assert backward[:2] == ["BinaryCrossEntropyBackward0", "SigmoidBackward0"]
    assert backward.count("AccumulateGrad") == 2
    assert tl.event(99) == tl.event(tl.length) and tl.clamp(-3) == 0
    for k, event in enumerate(tl.events, start=1):
        assert tl.step_of(*event) == k and tl.step(k).node_id == event[1]


def test_focus_is_the_value_computed_or_the_input_that_got_its_gradient(timeline):
    tl = timeline
    a, z, L = _id(tl, "a"), _id(tl, "z"), _id(tl, "L")
    assert tl.focus(tl.step_of("forward", a)) == a
    # BCE's backward produces dL/da, the sigmoid's produces dL/dz
    assert tl.focus(tl.step_of("backward", L)) == a
    assert tl.focus(tl.step_of("backward", a)) == z
    assert tl.focus(0) is None


def test_values_and_gradients_become_known_step_by_step(timeline):
    tl = timeline
    w, b, z, a = (_id(tl, n) for n in "wbza")
    x = next(n.id for n in tl.trace.nodes.values() if n.kind == "leaf")  # bce's target, 1.0
    k_a = tl.step_of("forward", a)
    assert not tl.value_known(a, k_a - 1) and tl.value_known(a, k_a)
    assert all(tl.value_known(n, tl.forward_length) for n in tl.trace.nodes)
    assert not any(tl.grad_known(n, tl.forward_length) for n in tl.trace.nodes)
    # dL/dz is known once SigmoidBackward0 (the event of a) has run, dL/dw once MulBackward0 sent it
    assert tl.grad_at[z] == tl.step_of("backward", a)
    mul = next(n.id for n in tl.trace.nodes.values() if w in n.inputs)
    k_mul = tl.step_of("backward", mul)
    assert not tl.grad_known(w, k_mul - 1) and tl.grad_known(w, k_mul) and k_mul == tl.grad_at[w]
    assert tl.grad_known(b, tl.step_of("backward", b))
    assert not tl.grad_known(x, tl.length)  # an input without requires_grad never gets one


def test_status_texts_carry_the_reference_numbers(timeline):
    tl = timeline
    assert tl.status(0).startswith("Ready: 7 forward events, then 6 backward events")
    assert tl.status(tl.forward_length).startswith("forward 7/7") and "0.0852" in tl.status(7)
    texts = [tl.status(k) for k in range(tl.forward_length + 1, tl.length + 1)]
    assert "dL/dz = dL/da × σ(z)(1 − σ(z)) = -1.0889 × 0.0750 = -0.0817" in texts[1]
    assert any("dL/db = dL/dz × 1" in t and "-0.0817" in t for t in texts)
    assert any("dL/dw = dL/d(w × 1.1) × 1.1" in t and "-0.0898" in t for t in texts)
    assert texts[-1].startswith("backward 6/6") and texts[-1].endswith("backward done")
    assert tl.step(tl.length).status == texts[-1]
