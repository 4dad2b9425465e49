"""Hostile and random input: the language raises nothing but ExprError, and rejects attacks at parse time."""

import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.core.lang import interp as interp_module
from explorer.core.lang.ops import OPS
from explorer.core.lang.program import MAX_BRACKET_DEPTH, ExprError, parse

HOSTILE = {
    "import": "x = __import__('os').system('true')",
    "import_no_quotes": "x = __import__(os).system(true)",
    "subclasses": "x = ().__class__.__bases__[0].__subclasses__()",
    "subclasses_on_value": "y = 1.0\nx = y.__class__.__bases__",
    "lambda": "f = lambda: 1",
    "lambda_in_comprehension": "fs = [lambda: i for i in range(3)]",
    "huge_power": "x = 9**9**9**9",
    "deep_parens": "x = " + "(" * 10_000 + "1" + ")" * 10_000,
    "import_statement": "import os",
    "torch_load": "import torch\nm = torch.load('model.pt')",
    "getattr_class": "class Evil(nn.Module):\n    def __getattr__(self, name):\n        return 1",
    "plain_class": "class Plain:\n    pass",
    "dunder_through_data": "import torch\nx = torch.ones(2)\ny = x.data.__class__",
    "exec_call": "x = exec(1)",
    "eval_call": "x = eval(1)",
    "open_call": "x = open(1)",
    "getattr_call": "x = getattr(1, 2)",
    "dunder_name": "x = __builtins__",
    "deep_unary": "x = " + "-" * 5_000 + "1",
    "long_chain": "x = " + "+".join(["1"] * 4_000),
    "huge_literal": "x = " + "9" * 5_000,
    "walrus": "x = (y := 2)",
    "try_block": "try:\n    x = 1\nexcept Exception:\n    x = 2",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_rejected_at_parse_time(name, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a hostile program reached the runner")

    monkeypatch.setattr(interp_module.Interpreter, "__init__", must_not_run)
    with pytest.raises(ExprError) as info:
        parse(HOSTILE[name])
    err = info.value
    assert err.line >= 1 and err.col >= 1 and err.message
    assert "Traceback" not in str(err)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("lambda", "lambdas are not supported"),
        ("lambda_in_comprehension", "lambdas are not supported"),
        ("huge_power", "too large"),
        ("deep_parens", f"nested more than {MAX_BRACKET_DEPTH} deep"),
        ("import_statement", "`import os` is not allowed"),
        ("subclasses_on_value", "`.__class__`: attributes starting with `_` are not allowed"),
        ("exec_call", "`exec` is not allowed"),
        ("torch_load", "`torch.load` is not allowed"),
        ("getattr_class", "may not start with `_`"),
        ("plain_class", "nn.Module"),
        ("dunder_through_data", "attributes starting with `_` are not allowed"),
    ],
)
def test_hostile_messages_say_what_is_wrong(name, needle):
    with pytest.raises(ExprError, match=None) as info:
        parse(HOSTILE[name])
    assert needle in info.value.message


def test_hostile_inputs_finish_promptly_in_a_fresh_process():
    # a hang guard, not a benchmark: a regression that computes 9**9**9**9 would never finish
    script = textwrap.dedent(
        """
        import json, sys
        from explorer.core.lang.program import ExprError, parse
        for src in json.loads(sys.stdin.read()):
            try:
                parse(src)
            except ExprError:
                continue
            raise SystemExit("accepted: " + src[:40])
        print("all rejected")
        """
    )
    import json

    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(list(HOSTILE.values())), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "all rejected" in done.stdout


def _run_fully(source: str) -> None:
    """Parse, run and (when there are params) differentiate; only ExprError may escape."""
    program = parse(source)
    result = program.run()
    if result.params and result.output.requires_grad:
        out = result.require_scalar()
        torch.autograd.grad(out, list(result.params.values()), allow_unused=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_expr_error(text):
    try:
        _run_fully(text)
    except ExprError:
        pass


# -------------------------------------------------------------------------- grammar-generated programs

NAMES = ["a", "b", "c", "w", "x"]
FUNCS = sorted(n for n, s in OPS.items() if s.kind in ("function", "loss") and n != "T")
CONSTRUCTORS = ["randn", "rand", "zeros", "ones", "eye", "arange"]


def _numbers():
    ints = st.integers(-5, 6).map(str)
    floats = st.floats(-4, 4, allow_nan=False).map(lambda f: repr(round(f, 3)))
    odd = st.sampled_from(["0", "-1", "1e308", "1e-320", "10**20", "2**62", "0.0"])
    return st.one_of(ints, floats, odd)


def _atoms():
    sizes = st.lists(st.integers(-1, 4).map(str), min_size=0, max_size=3).map(", ".join)
    lists = st.lists(_numbers(), min_size=0, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    matrix = st.lists(lists, min_size=1, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
    ctor = st.builds(lambda f, s: f"{f}({s})", st.sampled_from(CONSTRUCTORS), sizes)
    return st.one_of(_numbers(), st.sampled_from(NAMES + ["float64", "int64"]), lists, matrix, ctor)


def _extend(children):
    binop = st.builds(lambda a, op, b: f"({a} {op} {b})", children,
                      st.sampled_from(["+", "-", "*", "/", "**", "@"]), children)
    unary = children.map(lambda a: f"-{a}")
    call1 = st.builds(lambda f, a: f"{f}({a})", st.sampled_from(FUNCS), children)
    call2 = st.builds(lambda f, a, b: f"{f}({a}, {b})", st.sampled_from(FUNCS), children, children)
    method = st.builds(lambda a, m: f"{a}{m}", children, st.sampled_from(
        [".T", ".sum()", ".mean()", ".reshape(-1)", ".view(2, -1)", ".transpose(0, 1)", ".to(float64)",
         ".sum(0)", ".reshape(2, 3)"]))
    return st.one_of(binop, unary, call1, call2, method)


EXPRESSIONS = st.recursive(_atoms(), _extend, max_leaves=8)


@st.composite
def programs(draw):
    lines = []
    if draw(st.booleans()):
        lines.append(f"seed({draw(st.integers(0, 5))})")
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True)):
        value = draw(EXPRESSIONS)
        if draw(st.integers(0, 3)) == 0:
            value = f"param({value})"
        lines.append(f"{name} = {value}")
    return "\n".join(lines)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's deprecation notes (x.T on 1-D) are fine
def test_grammar_generated_programs_raise_only_expr_error():
    outcomes = {"ran": 0, "rejected": 0}

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(programs())
    def check(source):
        try:
            _run_fully(source)
            outcomes["ran"] += 1
        except ExprError as err:
            assert err.line >= 1 and err.col >= 1 and err.message
            outcomes["rejected"] += 1

    check()
    # the generator is worth something only if many of its programs run to the end
    assert outcomes["ran"] >= 20, outcomes
