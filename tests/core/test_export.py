"""Exported scripts and notebooks print the app's own numbers.

Every generated script of this module runs in ONE subprocess (`batch`): the machine is shared, and
starting torch once per script would cost more than the scripts. That subprocess cannot import `explorer`,
so a script that needed our code would fail there.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from explorer.cli import main
from explorer.commands.grad import json_safe, report_json
from explorer.core.autograd.gradcheck import compare_grads
from explorer.core.export import ExportError, export_document, export_notebook, export_script
from explorer.core.export.expression import GRAD_PREFIX, OUTPUT_PREFIX
from explorer.core.export.notebook import notebook_code, to_script
from explorer.core.lang import ops
from explorer.core.lang.examples import list_examples, load_example
from explorer.core.lang.program import parse
from explorer.core.mlp.network import NetSpec
from explorer.core.mlp.toydata import make_dataset, train_toy
from explorer.core.workspaces.expression import ExpressionWorkspace
from explorer.core.workspaces.network import NetworkWorkspace

# Programs beyond the examples: tensors, every kind of op, and names that shadow what a script uses.
MORE_PROGRAMS = {
    "shadow_torch": "torch = param(2.0)\nF = param(0.5)\nnn = torch * F\nmath = sigmoid(nn)\nL = math * 3",
    "shadow_helpers": ("dtype = param(1.5)\nvalues = dtype * 2\nleaf = exp(values)\ninitial = leaf.sum()\n"
                       "print = initial + 1\nint = print * 1.0\nprogram = int - 2\n"
                       "START_VALUES = program ** 2\noutput = START_VALUES / 3"),
    "unicode_names": "α = param(0.3)\nβ_2 = α ** 2\nπ = tanh(β_2) * -1.0\nL = -π",
    "matmul_relu": "seed(3)\nW = param(randn(3, 4))\nx = randn(4, 2)\nH = relu(W @ x)\nL = H.sum()",
    "softmax_keyword": "z = param([1.0, 2.0, 0.5])\np = softmax(z, dim=0)\nq = log(p)\nL = -q.mean()",
    "cross_entropy": "Z = param([[1.0, -1.0, 0.5], [0.1, 0.2, 0.3]])\nL = cross_entropy(Z, [2, 0])",
    "bce_int_target": "z = param([0.2, -0.4])\np = sigmoid(z)\nL = bce(p, 1)",
    "mse_broadcast_target": "w = param([[1.0, 2.0], [3.0, 4.0]])\nL = mse(w, [1.0, 1.0])",
    "dropout_stream": ("seed(5)\nx = randn(6)\nw = param(ones(6))\nh = dropout(x * w, 0.3)\ny = randn(2)\n"
                       "L = (h.sum() + y.sum()) ** 2"),
    "layer_norm_gelu": ("seed(2)\nx = randn(2, 4)\nW = param(randn(3, 4) * 0.5)\nb = param(zeros(3))\n"
                        "h = layer_norm(gelu(linear(x, W, b)))\nL = mean(h * h) + max(h) - min(h)"),
    "shapes": ("A = param(randn(2, 3))\nB = A.transpose(0, 1).reshape(6).view(2, 3)\n"
               "C = squeeze(unsqueeze(B, 0))\nD = flatten(C.T)\nL = sum(D * arange(6))"),
    "numbers_and_precedence": ("a = param(2)\nb = 3 - a\nc = (2 * 3) / b\nd = 2 ** -a\ne = (-a) ** 2\n"
                               "f = a ** 2 ** 0.5\nL = c + d + e - f + sqrt(abs(a)) + sin(a) * cos(a)"),
    "to_float64": "w = param([1.0, 2.0])\nv = to(w, float64)\nu = v * v\nL = u.sum()",
    "int_cuts_graph": "w = param(1.5)\nk = to(w, int64)\nL = k * 2",
    "unused_param": "w = param(1.0)\nu = param(2.0)\nL = w * 3",
    "bce_logits": "z = param([[0.5], [-1.0]])\nL = bce_with_logits(z, [[1.0], [0.0]])",
    "nll": "z = param([[0.5, 1.0]])\nL = nll(log_softmax(z), [1])",
    "numbers_into_functions": "w = param(0.5)\nc = exp(1.0)\nL = w * c * sigmoid(2.0)",
    "comments_kept": "# the input\nx = 2.0\n# the weight\nw = param(-1.5)\nL = tanh(w * x)  # a neuron",
}
# every example but those that show an autograd error (they stop on their line: tests/core/test_examples.py)
EXAMPLES = [name for name, _ in list_examples() if not name.startswith("error_")]
OVERRIDES = {"w": 1.25}  # the seed example with a value set in the app
ALLOWED_IMPORTS = {"torch", "math", "os", "dataclasses", "numpy", "re", "pydoc_data", "tokenizers",
                   "builtins", "contextlib", "threading", "random", "time"}

DRIVER = r"""
import contextlib, io, json, runpy, sys, traceback
sys.modules["explorer"] = None  # an exported script must not need our code
results = {}
for path in sys.argv[1:]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        results[path] = {"ok": True, "stdout": out.getvalue()}
    except BaseException:
        results[path] = {"ok": False, "stdout": out.getvalue(), "error": traceback.format_exc(limit=3)}
print(json.dumps(results))
"""


# specs beyond the presets: no hidden layer, MSE, AdamW's own decay; SGD with momentum and GELU
CUSTOM_SPECS = {
    "custom-linear": NetSpec(3, [], [], 1, "sigmoid", "mse", "adamw", 0.05, 0.0, 0.0, 5, 7),
    "custom-sgd": NetSpec(4, [6, 3], ["gelu", "sigmoid"], 2, "none", "cross-entropy", "sgd", 0.1, 0.9, 0.01,
                          6, 3),
    "custom-xavier": NetSpec(2, [4], ["tanh"], 1, "none", "bce-logits", "adam", 0.01, 0.0, 0.0, 4, 5,
                             "xavier"),
    "custom-zeros": NetSpec(2, [3], ["sigmoid"], 1, "none", "bce-logits", "sgd", 0.1, 0.0, 0.0, 4, 5,
                            "zeros"),
}
# deep-relu-he: He initialisation, drawn after torch's default init from the same seed in app and script
NETWORKS = ["seed", "mlp-50-30-20-3", "toy-2d", "deep-relu-he", *CUSTOM_SPECS]


def _network_workspace(preset: str) -> NetworkWorkspace:
    ws = NetworkWorkspace()
    if preset in CUSTOM_SPECS:
        ws.set_spec(NetSpec.from_dict(CUSTOM_SPECS[preset].to_dict()))
    else:
        ws.set_preset(preset)
    ws.state.iterations = 2
    ws.state.skip_zero_grad = preset == "seed"  # the second iteration adds to the first's .grad
    ws.state.dataset = ws.state.dataset.model_copy(update={"steps": 30, "count": 80, "name": "xor"})
    return ws


def _scripts() -> dict[str, str]:
    """name -> code of every script the batch runs."""
    out = {f"expr_{n}": export_script("expression", load_example(n)) for n in EXAMPLES}
    out |= {f"expr_{n}": export_script("expression", src) for n, src in MORE_PROGRAMS.items()}
    ws = ExpressionWorkspace(load_example("seed_sigmoid_bce"))
    ws.state.overrides = dict(OVERRIDES)
    out["expr_overrides"] = export_script("expression", ws)
    out["nb_expr_one_hidden_layer"] = notebook_code(export_notebook("expression",
                                                                    load_example("one_hidden_layer")))
    for preset in NETWORKS:
        out[f"net_{preset}"] = export_script("network", _network_workspace(preset))
    out["nb_net_toy-2d"] = notebook_code(export_notebook("network", _network_workspace("toy-2d")))
    # the built-in corpus, read by the script's own code: the imports, config and corpus sections
    from explorer.core.export.gpt import gpt_document
    from explorer.core.gpt.model import preset
    from explorer.core.gpt.train import TrainSettings

    doc = gpt_document(preset("tiny"), TrainSettings(device="cpu"))
    doc.sections = doc.sections[:3]
    out["gpt_default_corpus"] = to_script(doc) + "print('corpus', len(text), len(chars))\n"
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict[str, dict]:
    """Every script run once in one subprocess: name -> {"ok", "stdout", "error", "code"}."""
    folder = tmp_path_factory.mktemp("exported")
    scripts = _scripts()
    for name, (config, settings) in _pretrain_runs(folder).items():
        scripts[f"pretrain_{name}"] = export_script("pretrain", config, settings=settings)
    paths = {}
    for name, code in scripts.items():
        path = folder / f"exported_{name}.py"  # a prefix: "numbers.py" would shadow the stdlib module
        path.write_text(code, encoding="utf-8")
        paths[str(path)] = name
    done = subprocess.run([sys.executable, "-c", DRIVER, *paths], capture_output=True, text=True,
                          timeout=600, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    return {paths[p]: {**r, "code": scripts[paths[p]], "folder": str(folder)} for p, r in results.items()}


def _ran(batch, name) -> str:
    result = batch[name]
    assert result["ok"], f"{name} failed:\n{result.get('error')}\n{result['code']}"
    return result["stdout"]


def _printed(stdout: str, prefix: str) -> dict[str, object]:
    """`prefix<label> = <Python literal>` lines as {label: value}."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith(prefix):
            label, value = line[len(prefix):].split(" = ", 1)
            value = re.sub(r"\bnan\b", "NaN", re.sub(r"\binf\b", "Infinity", value))
            out[label] = json.loads(value)
    return out


def _grad_json(source: str) -> dict:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["grad", "--json", "-e", source]) == 0
    return json.loads(buffer.getvalue())


def _close(got, want, tol=1e-6) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol * np.maximum(1.0, np.abs(want))))


def _check_against_grad(stdout: str, reference: dict) -> None:
    outputs = _printed(stdout, OUTPUT_PREFIX)
    name = reference["output"]["name"]
    assert list(outputs) == [name]
    assert _close(outputs[name], reference["output"]["value"])
    grads = _printed(stdout, GRAD_PREFIX)
    d = "dL/d" if name == "L" else f"d{name}/d"
    assert set(grads) == {d + p for p in reference["grads"]}
    for param, value in reference["grads"].items():
        assert _close(grads[d + param], value), param
    # torch.autograd.gradcheck in float64 agrees with autograd for every leaf (a loop, an optimizer or
    # micrograd's values: the script says why it skips it)
    if "gradcheck: skipped (" in stdout:
        return
    checks = dict(re.findall(r"gradcheck of (\S+): (\w+)", stdout))
    assert set(checks) == set(reference["grads"])
    assert all(v == "True" for v in checks.values()), checks


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_prints_what_grad_json_prints(batch, name):
    _check_against_grad(_ran(batch, f"expr_{name}"), _grad_json(load_example(name)))


@pytest.mark.parametrize("name", list(MORE_PROGRAMS))
def test_more_programs_print_what_grad_json_prints(batch, name):
    _check_against_grad(_ran(batch, f"expr_{name}"), _grad_json(MORE_PROGRAMS[name]))


def test_values_set_in_the_app_are_exported(batch):
    stdout = _ran(batch, "expr_overrides")
    reference = json_safe(report_json(compare_grads(parse(load_example("seed_sigmoid_bce")), OVERRIDES)))
    _check_against_grad(stdout, reference)
    assert reference["output"]["value"] != _grad_json(load_example("seed_sigmoid_bce"))["output"]["value"]


def test_scripts_import_torch_and_the_standard_library_only(batch):
    for name, result in batch.items():
        tree = ast.parse(result["code"])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_IMPORTS, (name, roots)


def test_names_that_shadow_torch_rename_the_imports():
    code = export_script("expression", MORE_PROGRAMS["shadow_torch"])
    ast.parse(code)
    assert "import torch as torch_" in code and "import torch.nn.functional as F_" in code
    # the user's name stays, the module's goes by another
    assert "torch = torch_.tensor(2.0, requires_grad=True)" in code
    helpers = export_script("expression", MORE_PROGRAMS["shadow_helpers"])
    assert "builtins.print(" in helpers and "print = " in helpers  # a program's own `print` is left alone


def test_each_op_is_written_from_its_op_table_entry(monkeypatch):
    spec = ops.OPS["sigmoid"]
    monkeypatch.setitem(ops.OPS, "sigmoid", dataclasses.replace(spec, torch_code="torch.special.expit({x})"))
    code = export_script("expression", load_example("seed_sigmoid_bce"))
    assert "a = torch.special.expit(z)" in code


def test_program_comments_come_along_and_the_statements_read_as_written():
    code = export_script("expression", MORE_PROGRAMS["comments_kept"])
    assert "# the input" in code and "# the weight" in code
    assert "L = torch.tanh(w * x)" in code
    seed = export_script("expression", load_example("seed_sigmoid_bce"))
    assert "z = w * x + b" in seed and "L = F.binary_cross_entropy(a, torch.full_like(a, y))" in seed


def test_a_program_with_an_error_is_refused():
    with pytest.raises(ExportError, match="line 1"):
        export_script("expression", "x = = 1")


# -- networks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", NETWORKS)
def test_the_exported_iteration_has_the_workspaces_grads_and_updates(batch, preset):
    stdout = _ran(batch, f"net_{preset}")
    ws = _network_workspace(preset)
    iteration = ws.record()
    grads = _printed(stdout, "grad ")
    updates = _printed(stdout, "update ")
    assert set(grads) == set(iteration.grads) == set(updates)
    for name, grad in iteration.grads.items():
        assert _close(grads[name], grad), name
        assert _close(updates[name], iteration.phases[-1].params[name].delta), name
    assert f"iteration 2: loss = {iteration.loss!r}" in stdout


def test_the_exported_toy_training_ends_where_the_apps_does(batch):
    stdout = _ran(batch, "net_toy-2d")
    ws = _network_workspace("toy-2d")
    d = ws.state.dataset
    data = make_dataset(d.name, d.count, d.noise, d.test_fraction, d.seed)
    last = [r for r in train_toy(ws.spec(), data, d.steps) if r["type"] == "step"][-1]
    found = re.search(r"after (\d+) steps: train loss ([\d.]+), accuracy [\d.]+; test loss ([\d.]+)", stdout)
    assert found and int(found.group(1)) == d.steps
    assert abs(float(found.group(2)) - last["train_loss"]) < 2e-6
    assert abs(float(found.group(3)) - last["test_loss"]) < 2e-6


# -- notebooks ----------------------------------------------------------------------------------


def test_notebooks_validate_and_explain_each_step():
    from explorer.core.workspaces.pretrain import PretrainWorkspace

    sources = (("expression", load_example("broadcasting")), ("network", _network_workspace("seed")),
               ("pretrain", PretrainWorkspace()))
    for kind, source in sources:
        nb = export_notebook(kind, source)
        nbformat.validate(nb)
        kinds = [c.cell_type for c in nb.cells]
        assert kinds[0] == "markdown" and "code" in kinds
        # every code cell follows a markdown cell that says what it does
        assert all(kinds[i - 1] == "markdown" for i, k in enumerate(kinds) if k == "code")
        nbformat.validate(nbformat.reads(nbformat.writes(nb), as_version=4))


def test_notebook_code_cells_run_in_order_as_one_script(batch):
    _check_against_grad(_ran(batch, "nb_expr_one_hidden_layer"), _grad_json(load_example("one_hidden_layer")))
    assert "after 30 steps" in _ran(batch, "nb_net_toy-2d")


def test_a_notebook_holds_the_same_code_as_the_script():
    from explorer.core.workspaces.pretrain import PretrainWorkspace

    for kind, source in (("expression", MORE_PROGRAMS["shadow_torch"]), ("pretrain", PretrainWorkspace())):
        script = ast.parse(export_script(kind, source))
        script.body = script.body[1:]  # the module docstring is the notebook's first markdown cell
        assert ast.dump(script) == ast.dump(ast.parse(notebook_code(export_notebook(kind, source))))


# -- pretraining --------------------------------------------------------------------------------


def test_the_pretraining_script_reads_the_built_in_corpus_as_the_app_does(batch):
    from explorer.core.gpt.data import char_vocab_size, default_corpus

    found = re.search(r"corpus (\d+) (\d+)", _ran(batch, "gpt_default_corpus"))
    assert found and (int(found.group(1)), int(found.group(2))) == (len(default_corpus()), char_vocab_size())


def _pretrain_runs(folder: Path) -> dict[str, tuple]:
    """The pretraining exports the batch runs: name -> (model config, settings), on a corpus in `folder`."""
    from explorer.core.gpt.model import preset
    from explorer.core.gpt.train import TRAIN_PRESETS

    corpus = folder / "corpus.txt"
    if not corpus.exists():
        line = "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
        corpus.write_text((line * 30 + "\n") * 5, encoding="utf-8")
    base = TRAIN_PRESETS["tiny"].replace(device="cpu", sample_every=0, sample_tokens=20,
                                         corpus_path=str(corpus))
    return {
        "char": (preset("tiny", context_length=32, emb_dim=64, n_layers=2, n_heads=4, drop_rate=0.1),
                 base.replace(steps=20, batch_size=4, grad_accum_steps=2, warmup_steps=5, eval_every=10)),
        "bpe": (preset("tiny", vocab_size=300, context_length=16, emb_dim=32, n_layers=1, n_heads=2),
                base.replace(steps=5, batch_size=2, eval_every=0, tokenizer="bpe")),
        # bf16 autocast on a CPU: both run the attention itself in float32 (model.attend)
        "bf16": (preset("tiny", context_length=16, emb_dim=128, n_layers=1, n_heads=4),
                 base.replace(steps=5, batch_size=2, eval_every=0, dtype="bfloat16")),
    }


@pytest.mark.slow
def test_pretraining_script_gives_the_trainers_losses(batch):
    """20 CPU steps, same seed: the script draws weights, batches and dropout masks in the Trainer's order.

    Parity is exact here (float32 rounding apart), for the character tokenizer with dropout and gradient
    accumulation, for a byte-level BPE (trained by the same library call as the app's) and under bf16
    autocast; the scripts run in the batch's one subprocess.
    """
    from explorer.core.gpt.train import Trainer

    runs = _pretrain_runs(Path(batch["pretrain_char"]["folder"]))
    for name, (config, settings) in runs.items():
        stdout = _ran(batch, f"pretrain_{name}")
        # The script takes each batch in one pass; so does the trainer here (no split over threads).
        whole = settings.replace(batch_split="off")
        ours = [r["train_loss"] for r in Trainer(config, whole).run() if r["type"] == "step"]
        theirs = [float(v) for v in re.findall(r"train loss ([0-9.e+-]+),", stdout)]
        assert len(theirs) == len(ours) == settings.steps, name
        assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-4, name
    assert theirs[-1] < theirs[0]  # and it learns something
    assert "validation loss" in batch["pretrain_char"]["stdout"]


def test_the_pretraining_script_decides_bf16_on_a_cpu_by_measuring_as_the_trainer_does():
    # dtype "auto" on a CPU: the trainer times one of the model's blocks in both precisions
    # (cpu_bf16_decision); the script the user takes home must decide the same way, not by AMX alone
    from explorer.core.gpt.model import preset
    from explorer.core.gpt.train import CPU_BF16_MIN_SPEEDUP, CPU_BF16_MIN_WIDTH, TRAIN_PRESETS

    code = export_script("pretrain", preset("tiny", emb_dim=128), settings=TRAIN_PRESETS["tiny"])
    tree = ast.parse(code)
    probe = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "cpu_bf16_is_faster"]
    assert len(probe) == 1
    called = {n.func.attr for n in ast.walk(probe[0]) if isinstance(n, ast.Call)
              and isinstance(n.func, ast.Attribute)}
    assert {"autocast", "backward", "perf_counter", "set_num_threads"} <= called
    assert f">= {CPU_BF16_MIN_SPEEDUP} * best[True]" in code
    assert f"config.emb_dim >= {CPU_BF16_MIN_WIDTH}" in code
    assert "amx" not in code.lower() or "_is_amx_tile_supported" not in code
    assert "CPU_BF16_MIN" not in code  # every placeholder filled in


def test_an_unknown_kind_is_refused():
    with pytest.raises(ExportError, match="unknown kind"):
        export_document("video", "x")


def test_a_title_with_quotes_and_backslashes_stays_a_docstring():
    code = export_script("expression", '# Title: a \\d """ b\nw = param(1.0)\nL = w * 2')
    assert ast.get_docstring(ast.parse(code)).startswith("a \\d ''' b: exported from Autograd Explorer")
