"""Per-block GPT health (core/gpt/health.py): each figure against a direct torch computation, the
headless contract (`train --json` keys, the metrics CSV), and hostile values."""

import argparse
import csv
import json
import math

import pytest
import torch

from explorer.commands import train as train_cmd
from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.health import BlockHealth, due, finite_or_none
from explorer.core.gpt.model import GPT, GPTConfig
from explorer.core.gpt.train import Trainer, TrainSettings

CORPUS = default_corpus()[:30_000]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, context_length=8, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.0))


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@pytest.mark.parametrize("clip", [0.0, 0.05, 100.0])
def test_block_figures_equal_a_direct_torch_computation(clip):
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    settings = TrainSettings(health_every=1, grad_clip=clip, steps=5)
    health = BlockHealth(model.blocks, optimizer, settings, lambda: 0)
    x = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(1))
    model.loss(x[:, :-1], x[:, 1:]).backward()
    # Directly: the gradient of each block's parameters as one vector, before clipping.
    want_grads = [flat([p.grad for p in b.parameters()]).norm().item() for b in model.blocks]
    before = [flat([p.detach() for p in b.parameters()]).clone() for b in model.blocks]
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf")).item()
    optimizer.step()
    after = [flat([p.detach() for p in b.parameters()]) for b in model.blocks]
    want_ratios = [((a - b).norm() / b.norm()).item() for a, b in zip(after, before, strict=True)]
    got = health.fields(1, total)
    assert got["block_grad_norms"] == pytest.approx(want_grads, rel=1e-4)
    assert got["update_ratios"] == pytest.approx(want_ratios, rel=1e-4)
    assert all(r > 0 for r in got["update_ratios"])
    assert health.fields(1, total) == {}  # taken once
    if clip == 0.05:
        assert total > clip  # the case where clipping really scaled the gradients


def test_not_measured_off_the_interval():
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    settings = TrainSettings(health_every=10, steps=100)
    step = {"n": 1}  # the trainer's step before the update: this is step 2, not due
    health = BlockHealth(model.blocks, optimizer, settings, lambda: step["n"])
    model.loss(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long)).backward()
    optimizer.step()
    assert health.fields(2, 1.0) == {}


def test_due_steps():
    assert [s for s in range(1, 31) if due(s, 10, 1, 100)] == [1, 10, 20, 30]
    assert [s for s in range(1, 31) if due(s, 10, 5, 100)] == [10, 20, 30]  # step 1 is not logged
    assert [s for s in range(1, 8) if due(s, 3, 1, 7)] == [1, 3, 6]
    assert not any(due(s, 0, 1, 10) for s in range(1, 11))


def test_hostile_values_become_null():
    assert finite_or_none([1.0, math.nan, math.inf, -math.inf, None]) == [1.0, None, None, None, None]
    model = small_model()
    with torch.no_grad():
        for p in model.blocks[1].parameters():
            p.zero_()  # |w| = 0: the ratio is undefined
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    health = BlockHealth(model.blocks, optimizer, TrainSettings(health_every=1), lambda: 0)
    model.loss(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long)).backward()
    optimizer.step()
    got = health.fields(1, math.nan)  # a NaN global norm leaves the block norms unscaled
    assert got["update_ratios"][1] is None and got["update_ratios"][0] is not None
    assert all(g is None or math.isfinite(g) for g in got["block_grad_norms"])
    json.dumps(got, allow_nan=False)


def micro_trainer(**changes) -> Trainer:
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    settings = TrainSettings(steps=12, batch_size=4, warmup_steps=2, eval_every=0, sample_every=0, seed=3,
                             health_every=5).replace(**changes)
    return Trainer(cfg, settings, corpus=CORPUS)


def test_trainer_records_carry_the_lists_on_recorded_steps(tmp_path):
    trainer = micro_trainer(out_dir=str(tmp_path))
    steps = [r for r in trainer.run() if r["type"] == "step"]
    measured = {r["step"]: r for r in steps if "block_grad_norms" in r}
    assert sorted(measured) == [1, 5, 10]
    assert all("update_ratios" in r for r in measured.values())
    for r in measured.values():
        assert len(r["block_grad_norms"]) == len(r["update_ratios"]) == 2
        assert all(v > 0 for v in r["block_grad_norms"] + r["update_ratios"])
        # The blocks' norms are part of the global norm: their squares cannot add up to more.
        assert sum(v * v for v in r["block_grad_norms"]) <= r["grad_norm"] ** 2 * (1 + 1e-5)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    by_step = {int(row["step"]): row for row in rows}
    assert json.loads(by_step[5]["block_grad_norms"]) == pytest.approx(measured[5]["block_grad_norms"])
    assert json.loads(by_step[10]["update_ratios"]) == pytest.approx(measured[10]["update_ratios"])
    assert by_step[2]["block_grad_norms"] == "" and by_step[2]["update_ratios"] == ""


def test_off_when_health_every_is_zero():
    steps = [r for r in micro_trainer(health_every=0, steps=3).run() if r["type"] == "step"]
    assert len(steps) == 3 and not any("block_grad_norms" in r for r in steps)


def test_a_small_models_health_is_measured_on_one_thread(monkeypatch):
    # Many small kernels: on a busy 2-core machine two threads made them 20x slower (explorer/core/speed.py).
    from explorer.core.gpt import health as health_mod

    seen = []
    real = health_mod.group_norm

    def spy(tensors):
        seen.append(torch.get_num_threads())
        return real(tensors)

    monkeypatch.setattr(health_mod, "group_norm", spy)
    torch.set_num_threads(2)
    steps = [r for r in micro_trainer(steps=1).run() if r["type"] == "step"]
    assert "block_grad_norms" in steps[0] and seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_cli_json_lines_carry_the_keys(capsys):
    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    args = parser.parse_args(["--n-layers", "2", "--emb-dim", "32", "--n-heads", "2", "--context-length",
                              "16", "--batch-size", "4", "--eval-every", "0", "--sample-every", "0",
                              "--threads", "1", "--steps", "10", "--json"])
    assert train_cmd.run(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    measured = [line for line in lines if "block_grad_norms" in line]
    assert [line["step"] for line in measured] == [1, 10]  # the default interval: the first, every 10th
    assert all(len(line["block_grad_norms"]) == len(line["update_ratios"]) == 2 for line in measured)


# -- the pretraining workspace keeps them in the run's folder ----------------------------------------


def test_runs_keep_health_and_their_folder_restores_it(tmp_path, monkeypatch):
    from explorer.core.gpt.runs import PretrainRun, health_arrays
    from explorer.core.workspaces import pretrain as ws_mod

    monkeypatch.setenv(ws_mod.DATA_ENV, str(tmp_path))
    ws = ws_mod.PretrainWorkspace()
    trainer = micro_trainer(steps=10)
    run = ws.new_run(trainer.config.to_dict(), trainer.settings.to_dict(), None)
    records = [r for r in trainer.run() if r["type"] in ("step", "start")]
    ws.add_records(run.run_id, records)
    assert [e["step"] for e in run.health] == [1, 5, 10]
    ws.finish_run(run.run_id, "done")
    text = (ws_mod.run_folder(run.run_id) / ws_mod.HEALTH_CSV).read_text()
    assert text.splitlines()[0] == "step,grad_norm,block_grad_norms,update_ratios"
    restored = ws_mod.PretrainWorkspace()
    restored.load(ws_mod.PretrainWorkspace.validate(json.loads(json.dumps(ws.to_json()))))
    again = restored.runs[run.run_id]
    assert again.health == run.health
    steps, norms, grads, ratios = health_arrays(again.health)
    assert steps.tolist() == [1, 5, 10] and grads.shape == ratios.shape == (3, 2)
    assert isinstance(again, PretrainRun)
    scanned = {r.run_id: r for r in ws_mod.scan_folder()}  # a run another window or the CLI left
    assert scanned[run.run_id].health == run.health


HEADER = "step,grad_norm,block_grad_norms,update_ratios\n"


@pytest.mark.parametrize("text", ["", "nonsense\n1,2,3,4\n", HEADER + "x,1,[],[]\n", HEADER + "1,1,{,[]\n",
                                  HEADER + "1,1,3,[]\n", HEADER + "1,1,[]\n"])
def test_a_broken_health_file_gives_nothing(text):
    from explorer.core.workspaces.pretrain import parse_health_csv

    assert parse_health_csv(text) == []


def test_hostile_health_values_become_none():
    from explorer.core.gpt.runs import health_entry
    from explorer.core.workspaces.pretrain import health_csv, parse_health_csv

    entry = health_entry({"step": 3, "grad_norm": math.inf, "block_grad_norms": [1.0, math.nan, "x"],
                          "update_ratios": [math.inf, None]})
    assert entry == {"step": 3, "grad_norm": None, "block_grad_norms": [1.0, None, None],
                     "update_ratios": [None, None]}
    text = health_csv([entry]) + '4,NaN,"[NaN,Infinity]",[1e-3]\n'
    parsed = parse_health_csv(text)
    assert parsed[0] == entry and parsed[1]["block_grad_norms"] == [None, None]
    assert parsed[1]["update_ratios"] == [1e-3]
