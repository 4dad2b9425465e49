"""Checkpoints: round trip, atomic write, and clear refusals of pickles, truncated and mismatched files."""

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.core.gpt.checkpoint import CheckpointError, load_model, read_checkpoint
from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.train import Trainer, TrainSettings

CORPUS = default_corpus()[:30_000]


def make_trainer(**cfg_changes) -> Trainer:
    cfg = GPTConfig(vocab_size=128, context_length=8, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
    settings = TrainSettings(steps=3, batch_size=2, warmup_steps=1, eval_every=0, sample_every=0, seed=3)
    return Trainer(cfg.replace(**cfg_changes), settings, corpus=CORPUS)


@pytest.fixture
def trained(tmp_path):
    trainer = make_trainer()
    list(trainer.run())
    return trainer, trainer.save_checkpoint(tmp_path / "ck.safetensors")


def snapshot(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()], trainer.step


def unchanged(trainer, snap):
    params, step = snap
    return trainer.step == step and all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters(),
                                                                           strict=True))


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_round_trip_restores_everything(trained, tmp_path):
    trainer, path = trained
    ck = read_checkpoint(path)
    assert ck.step == 3 and ck.tokens == 3 * 2 * 8
    assert ck.config == trainer.config and ck.settings == trainer.settings.to_dict()
    assert set(ck.rng) == {"torch", "batch"}
    model, tokenizer, _ = load_model(path)
    assert tokenizer.encode("the") == trainer.tokenizer.encode("the")
    for a, b in zip(model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_tied_weights_round_trip(tmp_path):
    trainer = make_trainer(tie_weights=True)
    list(trainer.run())
    path = trainer.save_checkpoint(tmp_path / "tied.safetensors")
    model, _, _ = load_model(path)
    assert model.out_head.weight is model.tok_emb.weight
    assert torch.equal(model.out_head.weight, trainer.model.out_head.weight)


@pytest.mark.parametrize("via_torch_save", [False, True])
def test_pickle_that_would_run_code_is_refused_and_changes_nothing(trained, tmp_path, via_torch_save):
    trainer, _ = trained
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.safetensors"
    if via_torch_save:
        torch.save({"model": Payload(marker)}, evil)
    else:
        evil.write_bytes(pickle.dumps(Payload(marker)))
    before = snapshot(trainer)
    with pytest.raises(CheckpointError, match="pickle.*can run code"):
        trainer.load_state(evil)
    with pytest.raises(CheckpointError, match="pickle"):
        Trainer.load_checkpoint(evil)
    assert not marker.exists()
    assert unchanged(trainer, before)


@pytest.mark.parametrize("keep", [0, 5, 100, "half", "minus1"])
def test_truncated_checkpoint_is_refused(trained, tmp_path, keep):
    trainer, path = trained
    raw = path.read_bytes()
    n = {"half": len(raw) // 2, "minus1": len(raw) - 1}.get(keep, keep)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:n])
    before = snapshot(trainer)
    with pytest.raises(CheckpointError, match="truncated|not a checkpoint"):
        trainer.load_state(cut)
    assert unchanged(trainer, before)


def test_garbage_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(struct.pack("<Q", 20) + b"{this is not json!!}" + b"\0" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(junk)
    ours = b'{"__metadata__": {"format": "autograd-explorer-gpt", "version": "1"}, "w": 5}'
    for header in (b'{"w": 5}', b'{"__metadata__": 3}', b'[1, 2]', ours):
        blob = header + b" " * (-len(header) % 8)
        junk.write_bytes(struct.pack("<Q", len(blob)) + blob)
        with pytest.raises(CheckpointError, match="corrupt|not an Autograd Explorer"):
            read_checkpoint(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an Autograd Explorer checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_checkpoint_of_another_model_is_refused(trained, tmp_path):
    _, path = trained
    other = make_trainer(emb_dim=32)
    before = snapshot(other)
    with pytest.raises(CheckpointError, match="different model.*emb_dim 16 vs 32"):
        other.load_state(path)
    assert unchanged(other, before)


def test_tensors_that_do_not_fit_their_config_are_refused(trained, tmp_path):
    _, path = trained
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["meta"])
    meta["config"]["hidden_dim"] = 32  # the tensors were saved with 64
    header["__metadata__"]["meta"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])
    with pytest.raises(CheckpointError, match="does not match its config.*mlp.fc"):
        read_checkpoint(bad)


def test_resume_continues_to_more_steps(trained):
    _, path = trained
    trainer = Trainer.load_checkpoint(path, corpus=CORPUS, settings={"steps": 5})
    assert trainer.step == 3 and trainer.settings.steps == 5
    assert [r["step"] for r in trainer.run() if r["type"] == "step"] == [4, 5]


def test_resume_on_another_corpus_warns(trained):
    _, path = trained
    trainer = Trainer.load_checkpoint(path, corpus=CORPUS[::-1], settings={"steps": 4})
    warnings = [r for r in trainer.run() if r["type"] == "warning"]
    assert len(warnings) == 1 and "not the one this checkpoint was trained on" in warnings[0]["message"]


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    trainer = make_trainer()
    list(trainer.run())
    return trainer.save_checkpoint(tmp_path_factory.mktemp("fuzz") / "ck.safetensors").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoints_only_ever_raise_checkpoint_error(checkpoint_bytes, tmp_path, data):
    raw = bytearray(checkpoint_bytes)
    (n,) = struct.unpack("<Q", raw[:8])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, 8 + n - 1))  # damage the header, where the structure lives
        raw[pos] = data.draw(st.integers(0, 255))
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(raw))
    try:
        read_checkpoint(path)
    except CheckpointError:
        pass


@pytest.mark.parametrize("meta", ['[]', '{"config": 3}', '{"config": {}, "settings": 5, "tokenizer": {}}',
                                  '{"config": {"emb_dim": "x"}}', '"text"'])
def test_odd_metadata_is_a_checkpoint_error(checkpoint_bytes, tmp_path, meta):
    (n,) = struct.unpack("<Q", checkpoint_bytes[:8])
    header = json.loads(checkpoint_bytes[8:8 + n])
    header["__metadata__"]["meta"] = meta
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + checkpoint_bytes[8 + n:])
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
