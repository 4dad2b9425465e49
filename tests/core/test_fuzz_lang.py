"""Fuzzing the PyTorch-language interpreter (issue 19 §3): programs generated from a small grammar of the
supported constructs (imports, tensors with requires_grad, arithmetic, methods, calls, def, if, for, while,
with torch.no_grad(), comprehensions, f-strings, print, backward, .grad), then mutated with random tokens.
Whatever comes out, ``parse(src).run()`` and ``compute(src)`` raise nothing but ExprError, finish (an alarm
catches a hang, pytest-timeout a stuck test) and stay within a bounded amount of memory.
"""

from __future__ import annotations

import ast
import functools
import re
import resource
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.core.lang.program import ExprError, parse
from explorer.core.workspaces.expression import compute

HEAD = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
# every name the grammar uses is defined first, so most programs get past their first line
PRELUDE = HEAD + (
    "a = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)\n"
    "b = torch.tensor(1.5, requires_grad=True)\n"
    "w = torch.randn(3, 3, requires_grad=True)\n"
    "x = torch.ones(3)\n"
    "loss = (a * x).sum() + b\n"
    "def f(v):\n"
    "    return v * 2\n"
)
NAMES = ["a", "b", "w", "x", "loss"]
ALARM_S = 60  # one program: far beyond the interpreter's own wall-time limit
MAX_GROWTH_KB = 1_500_000  # peak resident memory the whole fuzz run may add (ru_maxrss is in KiB)

# tokens spliced in at random: the pieces of the language and of attacks on it
TOKENS = [
    "(", ")", "[", "]", ":", ",", ".", "=", "+", "-", "*", "**", "/", "@", "<", "==", "not", "and", "or",
    "if", "else", "for", "in", "while", "def", "return", "lambda", "import", "from", "class", "with", "pass",
    "break", "continue", "yield", "None", "True", "False", "__class__", "__dict__", "_version", "__import__",
    "open", "eval", "getattr", "globals", "torch.load", "torch.jit", "torch.utils", "os", "10**9", "9**9**9",
    "-1",
    "1e308", "'s'", 'f"{x}"', "x.grad", ".backward()", "requires_grad=True", "\n", "\n    ", "print", "range",
]  # fmt: skip
BINARY = ["+", "-", "*", "/", "**", "@", "<", ">", "==", "and", "or"]
FUNCS = ["torch.sigmoid", "torch.tanh", "torch.exp", "torch.relu", "F.relu", "torch.sum", "torch.mean",
         "torch.ones_like", "abs", "len", "float"]  # fmt: skip
METHODS = ["sum()", "mean()", "relu()", "tanh()", "exp()", "pow(2)", "t()", "double()", "item()",
           "tolist()", "detach()", "clamp(min=0)", "norm()", "grad", "data", "shape", "requires_grad",
           "is_leaf"]  # fmt: skip


def small_numbers():
    return st.one_of(st.integers(-3, 4).map(str), st.sampled_from(["0.5", "-1.5", "2.0", "1e-3", "0.0"]))


def tensors():
    values = st.lists(small_numbers(), min_size=1, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
    grad = st.sampled_from(["", ", requires_grad=True"])
    return st.one_of(
        st.builds(lambda v, g: f"torch.tensor({v}{g})", values, grad),
        st.builds(lambda n: f"torch.ones({n})", st.integers(1, 4)),
        st.builds(lambda n, m: f"torch.randn({n}, {m})", st.integers(1, 3), st.integers(1, 3)),
        st.builds(lambda n, m: f"torch.eye({n}, {m})", st.integers(1, 3), st.integers(1, 3)),
        st.just("torch.arange(4.0)"),
    )


@functools.cache
def expressions():
    atoms = st.one_of(small_numbers(), st.sampled_from(NAMES), tensors(), st.just('"text"'))

    def extend(children):
        return st.one_of(
            st.builds(lambda a, op, b: f"({a} {op} {b})", children, st.sampled_from(BINARY), children),
            st.builds(lambda f, a: f"{f}({a})", st.sampled_from(FUNCS), children),
            st.builds(lambda a, m: f"({a}).{m}", children, st.sampled_from(METHODS)),
            st.builds(lambda a, i: f"{a}[{i}]", children, st.sampled_from(["0", "-1", "1:", ":, 0", "::2"])),
            st.builds(lambda a: f"[{a} for i in range(3)]", children),
            st.builds(lambda a: f'f"{{{a}}}"', children.filter(lambda a: '"' not in a)),
            st.builds(lambda a: f"f({a})", children),
            st.builds(lambda a, b, c: f"({a} if {b} else {c})", children, children, children),
        )  # fmt: skip

    return st.recursive(atoms, extend, max_leaves=6)


@functools.cache
def statements(depth: int = 0):
    expr = expressions()
    name = st.sampled_from(NAMES)
    simple = st.one_of(
        st.builds(lambda n, e: f"{n} = {e}", name, expr),
        st.builds(lambda n, e: f"{n} += {e}", name, expr),
        st.builds(lambda e: f"print({e})", expr),
        st.builds(lambda n: f"{n}.backward()", name),
        st.builds(lambda n: f"{n}.sum().backward(retain_graph=True)", name),
        st.builds(lambda n, m: f"{n}, {m} = {m}, {n}", name, name),
        st.builds(lambda n: f"{n}.grad = None", name),
        st.just("pass"),
    )
    if depth >= 2:
        return simple.map(lambda s: [s])

    def block(lines):
        return "\n".join("    " + line for text in lines for line in text.split("\n"))

    body = st.lists(statements(depth + 1), min_size=1, max_size=3).map(lambda ls: [s for b in ls for s in b])
    compound = st.one_of(
        st.builds(lambda n, b: [f"for i in range({n}):", block(b)], st.integers(0, 5), body),
        st.builds(lambda c, b, e: [f"if {c}:", block(b), "else:", block(e)], expr, body, body),
        st.builds(lambda b: ["k = 0", "while k < 3:", block(b), "    k += 1"], body),
        # a condition drawn at random, bounded so that the fuzz stays fast (test_hostile_lang has the endless)
        st.builds(lambda c, b: ["k = 0", f"while {c} and k < 4:", block(b), "    k += 1"], expr, body),
        st.builds(lambda e: ["def f(v):", f"    return {e}"], expr),
        st.builds(lambda b: ["with torch.no_grad():", block(b)], body),
    )
    return st.one_of(simple.map(lambda s: [s]), compound)


@functools.cache
def programs():
    body = st.lists(statements(), min_size=1, max_size=6).map(lambda ls: [s for b in ls for s in b])
    return body.map(lambda lines: PRELUDE + "\n".join(lines) + "\n")


@st.composite
def mutated(draw):
    """A grammar program with a few random tokens inserted, replaced or deleted."""
    source = draw(programs())
    words = source.split(" ")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(words) - 1))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        token = draw(st.sampled_from(TOKENS))
        if action == "insert":
            words.insert(at, token)
        elif action == "replace":
            words[at] = token
        elif len(words) > 1:
            del words[at]
    return " ".join(words)


class Hung(BaseException):
    """The alarm fired: a BaseException, so no ``except Exception`` in the interpreter can swallow it."""


def _alarm(*_):
    raise Hung


def run_both(source: str) -> None:
    """parse().run() and compute(): only ExprError may escape, and compute reports errors in one line."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(ALARM_S)
    try:
        try:
            parse(source).run()
        except ExprError as exc:
            assert exc.line >= 1 and exc.message and "\n" not in exc.message, repr(exc.message)
        r = compute(source)
        assert r.error is None or (r.error and "\n" not in r.error), repr(r.error)
    except Hung:
        pytest.fail(f"no limit stopped this program within {ALARM_S} s:\n{source}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def memory_kb() -> tuple[int, int]:
    """(resident now, peak resident) of this process in KiB: Linux's VmRSS / VmHWM; elsewhere the peak
    (ru_maxrss) for both."""
    try:
        status = Path("/proc/self/status").read_text()
        return tuple(int(re.search(rf"{key}:\s+(\d+)", status).group(1)) for key in ("VmRSS", "VmHWM"))
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak


def reset_peak() -> None:
    """Start the peak resident memory afresh (Linux: writing 5 to clear_refs resets VmHWM), so what the
    test files that ran earlier in this worker process peaked at does not count here."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # the peak since the process began: earlier files' peaks count too (a looser check)


START_KB = memory_kb()[0]  # replaced by the first fuzz test's start (see fuzz_memory_start)


@pytest.fixture(scope="module", autouse=True)
def fuzz_memory_start():
    """The fuzz tests' baseline: resident memory now, with the peak reset (the file runs in one process)."""
    global START_KB
    reset_peak()
    START_KB = memory_kb()[0]


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(programs())
def test_fuzz_grammar_programs_raise_only_expr_error(source):
    run_both(source)


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(mutated())
def test_fuzz_mutated_programs_raise_only_expr_error(source):
    run_both(source)


@pytest.mark.timeout(600)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join))
def test_fuzz_token_soup_raises_only_expr_error(source):
    run_both(HEAD + source)


def test_fuzz_runs_stayed_within_bounded_memory():
    """Runs last in this file: the peak resident memory of the fuzz runs above grew by less than the bound
    (a tensor or list limit that lets a program allocate without end shows here)."""
    grown = memory_kb()[1] - START_KB
    assert grown < MAX_GROWTH_KB, f"peak memory grew by {grown / 1024:.0f} MiB"


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(programs())
def test_fuzz_grammar_makes_programs_cpython_parses(source):
    """The grammar's programs are Python, so the fuzz reaches the interpreter, not only its syntax check."""
    ast.parse(source)
