"""The example programs of the Examples menu: each has a title, runs, and gives its expected numbers."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from explorer.core.autograd.gradcheck import compare_grads
from explorer.core.lang.program import parse

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
REQUIRED = ["seed_sigmoid_bce", "tensors_basics", "one_hidden_layer", "softmax_cross_entropy"]


def load(name: str):
    return parse((EXAMPLES / f"{name}.expr").read_text(encoding="utf-8"))


def test_every_example_has_a_title_and_runs():
    paths = sorted(EXAMPLES.glob("*.expr"))
    assert {p.stem for p in paths} >= set(REQUIRED)
    for path in paths:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Title: ") and len(first) > len("# Title: ") + 3, path.name
        report = compare_grads(parse(path.read_text(encoding="utf-8")))
        assert report.max_abs_error < 1e-4, path.name


def test_seed_example_reference_numbers():
    report = compare_grads(load("seed_sigmoid_bce"))
    assert round(report.output.item(), 4) == 0.0852
    assert round(report.params["w"].autograd.item(), 4) == -0.0898
    assert round(report.params["b"].autograd.item(), 4) == -0.0817
    assert report.params["w"].manual.item() == pytest.approx(-0.0898263, abs=1e-6)


def test_tensor_basics_example():
    env = load("tensors_basics").run().env
    assert env["A"].dtype == torch.int64 and env["F"].dtype == torch.float32
    assert env["R"].shape == (3, 2) and env["V"].shape == (6,)
    assert not env["T"].is_contiguous()
    assert env["G"].tolist() == [[14, 32], [32, 77]] and env["G"].dtype == torch.int64


def test_one_hidden_layer_example_matches_the_same_net_in_torch():
    program = load("one_hidden_layer")
    assert program.param_names == ["W1", "b1", "W2", "b2"]
    run = program.run()
    P = run.params
    h = torch.relu(F.linear(run.env["x"], P["W1"], P["b1"]))
    expected = F.binary_cross_entropy(torch.sigmoid(F.linear(h, P["W2"], P["b2"])), run.env["y"])
    assert run.output.item() == pytest.approx(expected.item(), rel=1e-6)
    assert run.env["h"].shape == (1, 5) and run.output.numel() == 1
    # the seed is chosen so that most hidden units are alive: a ReLU net where every unit is dead
    # would teach nothing
    assert int((run.env["h"] > 0).sum()) >= 3


def test_softmax_cross_entropy_example_equals_cross_entropy():
    run = load("softmax_cross_entropy").run()
    logits, target = run.env["logits"], run.env["target"]
    assert run.output.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    assert torch.allclose(run.env["p"].sum(1), torch.ones(2))
