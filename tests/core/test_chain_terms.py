"""The chain rule the inspector shows adds up: one term per input slot that reads a value (`x * x` sends x
two terms), and the terms sum to the gradient shown, for every example and every lesson program."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.core.autograd import explain
from explorer.core.lang.examples import list_examples, load_example
from explorer.core.lessons.runner import load_catalog
from explorer.core.workspaces.expression import compute

ISSUE = "x = param(3.0)\ny = x * x + sin(x)\nL = y * 2"
TENSOR = "x = param([1.0, -2.0, 0.5])\nw = param([[0.3], [0.7], [-1.1]])\nv = x * x * x\nL = (v @ w).sum()"
SQUARE = "A = param([[1.0, 2.0], [3.0, -1.0]])\nL = (A @ A).sum() + (A * A).mean()"


def _lesson_sources() -> list[tuple[str, str]]:
    out = []
    for lesson in load_catalog().lessons:
        for step in lesson.steps:
            for action in step.actions:
                if getattr(action, "do", "") == "set_source":
                    out.append((f"{lesson.id}/{step.id}", action.source))
    return out


PROGRAMS = ([("issue", ISSUE), ("tensor", TENSOR), ("square", SQUARE)]
            + [(f"example {name}", load_example(name)) for name, _title in list_examples()
               if not name.startswith("error_")]
            + [(f"lesson {where}", src) for where, src in _lesson_sources()])


def _last_number(line: str) -> float:
    return float(line.rsplit(" = ", 1)[1].split()[0])


def test_every_lesson_program_is_collected():
    assert len(_lesson_sources()) >= 5  # the walk finds the lessons' programs (a test that cannot be empty)


@pytest.mark.parametrize(("where", "source"), PROGRAMS, ids=[w for w, _s in PROGRAMS])
def test_the_terms_shown_add_up_to_the_gradient_shown(where, source):
    result = compute(source)
    if where.startswith("lesson") and result.error:  # a step that shows an error on purpose (view-fails)
        assert result.trace is None
        return
    assert result.ok, result.error
    tr = result.trace
    if result.note.startswith("forward only"):  # nothing requires a gradient: no chain rule to add up
        assert not tr.backward_order and all(n.grad is None for n in tr.nodes.values())
        return
    checked = 0
    for nid, node in tr.nodes.items():
        if node.grad is None or node.is_output or node.grad.data is None or node.grad.truncated:
            continue
        rules = explain.consumer_rules(tr, nid)
        slots = sum(c.inputs.count(nid) for cid, c in tr.nodes.items()
                    if cid in set(tr.backward_order) and c.kind == "op")
        if not rules:
            continue
        assert len(rules) == slots, f"{where}: {explain.node_text(tr, nid)} gets a term per input slot"
        grad = np.asarray(node.grad.data, dtype=np.float64).reshape(node.grad.shape)
        total = sum(np.asarray(r.result.data, dtype=np.float64).reshape(r.result.shape) for r in rules)
        np.testing.assert_allclose(total, grad, rtol=1e-4, atol=1e-6, err_msg=f"{where}: {node.name or nid}")
        text = explain.chain_rule_text(tr, nid)
        if node.grad.numel == 1:
            # the numbers a student reads: each term's number adds up to the sum's number
            lines = text.splitlines()
            terms = [_last_number(line) for line in lines[:len(rules)]]
            shown = _last_number(lines[len(rules)]) if len(rules) > 1 else terms[0]
            assert abs(sum(terms) - shown) <= 1e-3 * max(1.0, abs(shown)) + 1e-4 * len(terms), (where, text)
            assert abs(shown - float(grad.reshape(-1)[0])) <= 1e-3 * max(1.0, abs(shown)), (where, text)
        tc = explain.tensor_chain(tr, nid)
        if tc is not None:
            assert len(tc.terms) == slots, (where, text)
            np.testing.assert_allclose(sum(t.result for t in tc.terms), tc.total, rtol=1e-4, atol=1e-6)
            for index in list(np.ndindex(*grad.shape))[:6]:
                by_formula = explain.element_chain_total(tr, nid, index)
                if by_formula is not None:
                    assert abs(by_formula - grad[index]) <= 1e-4 * max(1.0, abs(grad[index])), (where, index)
        checked += 1
    assert checked, f"{where}: no value with a chain rule was checked"


def test_the_issue_example_writes_one_term_per_factor_of_x_times_x():
    tr = compute(ISSUE).trace
    x = next(nid for nid, n in tr.nodes.items() if n.name == "x")
    lines = explain.chain_rule_text(tr, x).splitlines()
    assert [_last_number(line) for line in lines[:3]] == [6.0, 6.0, -1.98]
    assert "input 1 of (x × x)" in lines[0] and "input 2 of (x × x)" in lines[1]
    assert lines[3] == "sum over the 3 uses: dL/dx = 10.02"
    # the status line of the multiplication's backward step names both terms
    k = next(i for i in range(1, 40) if "MulBackward" in explain.describe_event(tr, i)
             and "input 2" in explain.describe_event(tr, i))
    assert "input 1 of (x × x)" in explain.describe_event(tr, k)
    element = explain.element_chain(tr, x, ())
    assert sum("via input" in line for line in element) == 2
    assert re.search(r"sum over the 3 paths: dL/dx\[\] = 10\.02", "\n".join(element))
