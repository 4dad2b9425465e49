"""The tracer, made faster (issue 21), records the same traces as the eager tracer it replaced: same nodes,
grad_fns, inputs, calls, saved tensors, memory, backward events, values and gradients, on a GPT step, a few
hand-made callables and every program of tests/corpus (``trace_golden.py`` says how the file was made)."""

import math

import pytest
import torch

from tests.core.trace_golden import WRITTEN_WITH, canonical_dump, load_golden

pytestmark = pytest.mark.skipif(not torch.__version__.startswith(WRITTEN_WITH),
                                reason=f"the golden traces were written with torch {WRITTEN_WITH}x")

REL, ABS = 1e-4, 1e-6  # values: same math, but another CPU (other kernels) may round float32 differently


def differences(want, got, path="", out=None, limit=20) -> list[str]:
    """Where two JSON values differ: structure and strings exactly, numbers up to rounding."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(want, dict) and isinstance(got, dict):
        if want.keys() != got.keys():
            out.append(f"{path}: keys {sorted(set(want) ^ set(got))}")
        for k in want.keys() & got.keys():
            differences(want[k], got[k], f"{path}.{k}", out, limit)
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            out.append(f"{path}: length {len(want)} != {len(got)}")
        for k, (a, b) in enumerate(zip(want, got)):  # noqa: B905 - the length is checked above
            differences(a, b, f"{path}[{k}]", out, limit)
    elif isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if not math.isclose(want, got, rel_tol=REL, abs_tol=ABS):
            out.append(f"{path}: {want!r} != {got!r}")
    elif type(want) is not type(got) or want != got:
        out.append(f"{path}: {want!r} != {got!r}")
    return out


@pytest.fixture(scope="module")
def dumps():
    return load_golden(), canonical_dump()


def test_golden_covers_gpt_callables_and_the_corpus(dumps):
    golden, _ = dumps
    assert {"gpt", "gpt_twice", "custom", "inplace", "shared_input", "seeded", "forward_only"} <= set(golden)
    assert sum(k.startswith("corpus/") for k in golden) >= 40
    gpt = golden["gpt"]
    assert len(gpt["nodes"]) > 80 and len(gpt["backward_events"]) > 60
    assert any(n["saved"] for n in gpt["nodes"]) and gpt["saved_bytes"] > 0


@pytest.mark.parametrize("name", ["gpt", "gpt_twice", "custom", "inplace", "shared_input", "seeded",
                                  "forward_only", "mut_inplace_later", "mut_data", "mut_view", "mut_out",
                                  "mut_paused", "mut_after"])
def test_trace_equals_the_recorded_trace(dumps, name):
    golden, now = dumps
    assert differences(golden[name], now[name]) == []


def test_corpus_traces_equal_the_recorded_traces(dumps):
    golden, now = dumps
    names = sorted(k for k in golden if k.startswith("corpus/"))
    assert names == sorted(k for k in now if k.startswith("corpus/"))
    bad = {name: differences(golden[name], now[name], limit=3) for name in names}
    assert {k: v for k, v in bad.items() if v} == {}


def test_differences_sees_each_kind_of_change():
    assert differences({"a": [1.0, "x"]}, {"a": [1.0 + 1e-12, "x"]}) == []
    assert differences({"a": [1.0]}, {"a": [1.001]}) != []
    assert differences({"a": [1.0]}, {"a": [1.0, 2.0]}) != []
    assert differences({"a": "x"}, {"a": "y"}) != []
    assert differences({"a": None}, {"a": 0.0}) != []
    assert differences({"a": 1}, {"b": 1}) != []
