"""The corpus: PyTorch and micrograd snippets written after public tutorials (``tests/corpus/``), each run
through ``python -m explorer grad FILE --json`` and compared with CPython running the same file.

The reference (``tests/corpus_reference.py``) runs every snippet under plain CPython and torch in one
subprocess and records the tensor backward was last called on, every leaf's final ``.grad`` by name and the
bytes torch's ``saved_tensors_hooks`` packed. The app must report the same output and the same gradients
(1e-6 relative) under the same names, and, for single-iteration torch programs, the same saved bytes in
``graph --format json``.

Run them alone with ``-m corpus`` (or ``-k corpus``). ``CORPUS_APP=reference`` points the app side at the
reference runner too (CPython on both sides): the harness check, which must pass whatever the app does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import run_in_process

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
RUNNER = ROOT / "tests" / "corpus_reference.py"
SNIPPETS = sorted(CORPUS.glob("*.py"))
NAMES = [p.stem for p in SNIPPETS]
REL = 1e-6

# torch programs whose passes (backward, torch.autograd.grad) all start from one tensor: one forward, so the
# bytes saved for backward are one graph's. The reference's own classification must agree (tested below).
SINGLE_ITERATION = {
    "accumulate_twice", "augmented_assign", "autograd_bce_logits", "autograd_jacobian_product",
    "autograd_no_grad_detach", "bce_with_logits_module", "blitz_exclusion", "blitz_external_grad",
    "d2l_control_flow", "eye_transpose_double", "fastbook_gradient", "fastbook_scalar", "indexing_slicing",
    "lecture_torch_neuron", "llm_appendix_logistic", "llm_appendix_network", "pow_method_manual_neuron",
    "retain_grad_nonleaf", "seed_sigmoid_bce", "stack_cat_max", "tuple_unpacking", "where_clamp_norm",
    "zip_enumerate_listcomp",
}  # fmt: skip

pytestmark = pytest.mark.corpus


# ------------------------------------------------------------------------------------------ the two sides


def run_reference(*args: str) -> dict:
    """{stem: record} from the reference runner, in a fresh CPython."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(RUNNER), *args, *map(str, SNIPPETS)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@functools.cache
def reference() -> dict:
    return run_reference()


@functools.cache
def reference_shapes() -> dict:
    """A second, separate run of the reference: {"grad" | "graph": {stem: the record shaped as that
    command prints it}}."""
    return run_reference("--as", "grad,graph")


def reference_shaped(shape: str) -> dict:
    return reference_shapes()[shape]


def last_json_object(stdout: str) -> dict | None:
    """The JSON object a command printed: all of stdout, else its last line that is one (a program's
    prints may come first)."""
    with contextlib.suppress(ValueError):
        data = json.loads(stdout)
        if isinstance(data, dict):
            return data
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    return None


def run_app(*argv: str) -> tuple[int, str, str]:
    """`python -m explorer ARGV` in this process, the way explorer.cli dispatches it."""
    done = run_in_process(*argv)
    return done.returncode, done.stdout, done.stderr


def app_report(kind: str, path: Path) -> dict:
    """What the app's command printed for one snippet: `grad --json` (kind "grad") or `graph --format
    json` (kind "graph"); a failure is {"error": its message}."""
    if os.environ.get("CORPUS_APP") == "reference":
        return reference_shaped(kind)[path.stem]
    argv = ["grad", str(path), "--json"] if kind == "grad" else ["graph", str(path), "--format", "json"]
    code, out, err = run_app(*argv)
    if code != 0:
        return {"error": (err.strip() or out.strip() or f"exit status {code}").splitlines()[-1]}
    data = last_json_object(out)
    return data if data is not None else {"error": f"no JSON object in the output: {out[-200:]!r}"}


# ------------------------------------------------------------------------------------------ comparing


def _number(v):
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


def _flatten(v) -> list:
    if isinstance(v, list):
        return [x for item in v for x in _flatten(item)]
    return [_number(v)]


def _shape(v) -> tuple:
    return (len(v), *_shape(v[0])) if isinstance(v, list) and v else ((0,) if isinstance(v, list) else ())


def close(want, got, rel: float = REL) -> str | None:
    """None when ``got`` equals ``want`` (numbers or nested lists, None for no gradient) to ``rel``
    relative; else what differs. Near zero, the tolerance is ``rel`` of the largest magnitude in the
    tensor (a float32 sum that cancels to 1e-9 is 0 to this precision)."""
    if want is None or got is None:
        return None if want is None and got is None else f"expected {want!r}, got {got!r}"
    if _shape(want) != _shape(got):
        return f"expected shape {_shape(want)}, got {_shape(got)}"
    a, b = _flatten(want), _flatten(got)
    if not all(isinstance(x, int | float) for x in a + b):
        return None if a == b else f"expected {want!r}, got {got!r}"
    scale = max((abs(x) for x in a if math.isfinite(x)), default=0.0)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return f"element {i}: expected {x}, got {y}"
            continue
        if math.isinf(x) or math.isinf(y):
            if x != y:
                return f"element {i}: expected {x}, got {y}"
            continue
        if abs(x - y) > rel * max(abs(x), abs(y), scale * 1e-3):
            gap = abs(x - y) / max(abs(x), 1e-300)
            return f"element {i}: expected {x!r}, got {y!r} (relative difference {gap:.1e})"
    return None


def compare(ref: dict, app: dict) -> list[str]:
    """Every way the app's `grad --json` object differs from the reference record (empty: they agree)."""
    if "error" in app:
        return [f"the app failed: {app['error']}"]
    problems = []
    output = app.get("output")
    if not isinstance(output, dict):
        return [f"no output object in {sorted(app)}"]
    if ref["output"]["name"] is not None and output.get("name") != ref["output"]["name"]:
        problems.append(f"output name: expected {ref['output']['name']!r}, got {output.get('name')!r}")
    diff = close(ref["output"]["value"], output.get("value"))
    if diff:
        problems.append(f"output value: {diff}")
    grads = app.get("grads")
    if not isinstance(grads, dict):
        return [*problems, "no grads object"]
    missing, extra = sorted(set(ref["grads"]) - set(grads)), sorted(set(grads) - set(ref["grads"]))
    if missing:
        problems.append(f"leaves missing from grads: {missing}")
    if extra:
        problems.append(f"grads for names torch has no leaf for: {extra}")
    for name in ref["grads"]:
        if name in grads:
            diff = close(ref["grads"][name], grads[name])
            if diff:
                problems.append(f"grad of {name}: {diff}")
    return problems


# ------------------------------------------------------------------------------------------ the harness


def test_corpus_is_big_enough_and_every_snippet_names_its_source():
    assert len(SNIPPETS) >= 33
    for path in SNIPPETS:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# after: ") and len(first) > 20, path.name


def test_corpus_reference_runs_every_snippet_with_a_backward_and_leaves():
    ref = reference()
    assert sorted(ref) == NAMES
    for name, record in ref.items():
        assert "error" not in record, (name, record)
        assert record["backward_calls"] >= 1, name  # every snippet ends in the output of interest
        assert record["grads"], name
        assert record["output"]["value"] is not None, name


def test_corpus_single_iteration_list_matches_the_reference():
    ref = reference()
    assert {n for n, r in ref.items() if r["single_iteration"]} == SINGLE_ITERATION
    assert all(isinstance(ref[n]["saved_bytes"], int) and ref[n]["saved_bytes"] > 0 for n in SINGLE_ITERATION)


def test_corpus_reference_knows_torch_and_micrograd_facts():
    ref = reference()
    # d2l 2.5.1: after zero_() and y = x.sum(), x.grad is all ones; y = 3 * dot(x, x) had 6x before that
    assert ref["d2l_dot"]["grads"] == {"x": [1.0] * 5}
    # three backward calls of the Jacobian example: 1 + 1 (accumulated) then zeroed and 1 more
    assert ref["autograd_jacobian_product"]["grads"]["inp"][0][0] == 2 * (1 + 2)
    # (w . x)**2 with w . x = -2, backward twice: 2 * 2 * (-2) * x
    assert ref["accumulate_twice"]["grads"]["w"] == pytest.approx([2 * 2 * -2 * 2.0, 2 * 2 * -2 * 3.0])
    # a micrograd node used twice accumulates: c = a*a + (a + a) -> dc/da = 2a + 2
    assert ref["micrograd_reuse"]["grads"] == {"a": pytest.approx(2 * -1.5 + 2)}
    # the lecture's neuron in micrograd (float64) and in torch (.double()) agree
    assert ref["micrograd_lecture_neuron"]["grads"]["w1"] == pytest.approx(
        ref["lecture_torch_neuron"]["grads"]["w1"][0], rel=1e-6)  # torch.Tensor rounds to float32 first
    mlp = ref["micrograd_lecture_mlp"]["grads"]
    assert len(mlp) == 4 * 4 + 4 * 5 + 1 * 5 and "model.layers[2].neurons[0].b" in mlp
    assert set(ref["micrograd_neuron_module"]["grads"]) >= {"unit.w[1]", "layer.neurons[2].b", "inputs[0]"}
    # a module parameter keeps its path though the loop variable `param` still holds the last one
    assert "net.2.bias" in ref["bce_with_logits_module"]["grads"] and "param" not in ref[
        "bce_with_logits_module"]["grads"]
    assert set(ref["seed_nn_module"]["grads"]) == {f"model.{m}.{p}" for m in ("hidden", "out")
                                                   for p in ("weight", "bias")}
    assert ref["seed_sigmoid_bce"]["output"] == {"name": "loss", "value": pytest.approx(0.0852, abs=1e-4)}
    assert ref["seed_sigmoid_bce"]["grads"]["w"] == [pytest.approx(-0.0898, abs=1e-4)]


def test_compare_reports_each_kind_of_difference():
    ref = {"output": {"name": "loss", "value": 2.0}, "grads": {"w": [1.0, -2.0], "b": 0.5, "u": None}}
    same = {"output": {"name": "loss", "value": 2.0 * (1 + 1e-8)}, "grads": {"w": [1.0, -2.0], "b": 0.5,
                                                                            "u": None}}
    assert compare(ref, same) == []
    cases = {
        "output name": {"output": {"name": "L", "value": 2.0}},
        "output value": {"output": {"name": "loss", "value": 2.0001}},
        "grad of w": {"grads": {"w": [1.0, -2.00001], "b": 0.5, "u": None}},
        "shape": {"grads": {"w": [[1.0, -2.0]], "b": 0.5, "u": None}},
        "missing": {"grads": {"w": [1.0, -2.0], "u": None}},
        "no leaf": {"grads": {"w": [1.0, -2.0], "b": 0.5, "u": None, "c": 1.0}},
        "expected None": {"grads": {"w": [1.0, -2.0], "b": 0.5, "u": 0.0}},
        "failed": {"error": "line 3: no"},
    }
    for needle, change in cases.items():
        app = json.loads(json.dumps(same)) if needle != "failed" else {}
        app.update(change)
        problems = compare(ref, app)
        assert problems and needle in " ".join(problems), (needle, problems)


def test_close_handles_zero_nan_and_infinity():
    assert close([1e-12, 3.0], [0.0, 3.0]) is None  # far below 1e-6 of the tensor's scale
    assert close(0.0, 1e-3) is not None
    assert close("nan", float("nan")) is None and close(float("inf"), "inf") is None
    assert close(float("inf"), float("-inf")) is not None
    assert close([], []) is None and close([], [1.0]) is not None


def test_last_json_object_skips_a_programs_prints():
    assert last_json_object('tensor(1.)\n{"output": {"name": "L", "value": 1}}\n') == {
        "output": {"name": "L", "value": 1}}
    assert last_json_object("1\n2\n") is None


def test_corpus_harness_agrees_with_cpython_on_both_sides():
    """The comparison finds nothing when both sides are CPython (a second, separate run of the reference
    shaped as the app's commands print), so any difference it finds in the app is the app's."""
    ref = reference()
    grads, graphs = reference_shaped("grad"), reference_shaped("graph")
    for name in NAMES:
        assert compare(ref[name], json.loads(json.dumps(grads[name]))) == [], name
        assert graphs[name]["saved_bytes"] == ref[name]["saved_bytes"], name


# ------------------------------------------------------------------------------------------ the app


@pytest.mark.parametrize("path", SNIPPETS, ids=NAMES)
def test_corpus_grad_json_equals_torch(path):
    problems = compare(reference()[path.stem], app_report("grad", path))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", sorted(SINGLE_ITERATION))
def test_corpus_saved_bytes_equal_torch(name):
    path = CORPUS / f"{name}.py"
    app = app_report("graph", path)
    assert "error" not in app, f"{path.name}: the app failed: {app['error']}"
    assert app.get("saved_bytes") == reference()[name]["saved_bytes"], path.name


def test_corpus_grad_command_runs_as_a_subprocess():
    """One snippet end to end through `python -m explorer` (the rest run the command in this process)."""
    path = CORPUS / "seed_sigmoid_bce.py"
    if os.environ.get("CORPUS_APP") == "reference":
        pytest.skip("the app side is the reference runner")
    done = subprocess.run([sys.executable, "-m", "explorer", "grad", str(path), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    data = last_json_object(done.stdout)
    assert data is not None and compare(reference()[path.stem], data) == []
