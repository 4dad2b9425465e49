"""Per-block activation and gradient histograms (core/gpt/histograms.py): the statistics against a direct
torch computation, the intervals, batch_split, the run's file and hostile files."""

import contextlib
import math
import struct

import numpy as np
import pytest
import torch

from explorer.core.gpt import histograms as H
from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.model import GPT, GPTConfig
from explorer.core.gpt.train import Trainer, TrainSettings

CORPUS = default_corpus()[:30_000]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def direct(values: torch.Tensor, bins=H.BINS):
    """torch.histc over the finite values' own range: (lo, hi, counts, non-finite count)."""
    finite = values[torch.isfinite(values)]
    lo, hi = finite.min().item(), finite.max().item()
    return lo, hi, torch.histc(finite, bins, min=lo, max=hi).long(), int((~torch.isfinite(values)).sum())


def test_histogram_equals_torch_histc_and_counts_every_finite_value():
    gen = torch.Generator().manual_seed(0)
    parts = [torch.randn(3, 50, generator=gen) * 3, torch.randn(7, generator=gen) + 10]
    parts[0][1, 4] = math.nan
    parts[0][2, 9] = math.inf
    parts[1][0] = -math.inf
    span, counts = H.histogram(parts)
    lo, hi, want, nonfinite = direct(torch.cat([p.reshape(-1) for p in parts]))
    assert span.tolist() == pytest.approx([lo, hi], rel=0, abs=0)
    assert counts[: H.BINS].tolist() == want.tolist()
    assert counts[H.BINS].item() == nonfinite == 3
    assert counts.sum().item() == 157  # every value once: 154 finite in the bins, 3 apart


def test_histogram_of_equal_values_and_of_no_finite_value():
    span, counts = H.histogram([torch.full((5,), 2.0)])
    assert span.tolist() == [1.0, 3.0]  # widened by one each side, as torch.histc
    assert counts[: H.BINS].tolist() == torch.histc(torch.full((5,), 2.0), H.BINS, 1.0, 3.0).long().tolist()
    span, counts = H.histogram([torch.tensor([math.nan, math.inf])])
    assert span.tolist() == [0.0, 1.0] and counts[: H.BINS].sum() == 0 and counts[H.BINS] == 2


def small_model(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, context_length=8, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.1))


def test_recorder_figures_equal_a_direct_computation_on_a_small_model():
    model = small_model()
    model.train()
    settings = TrainSettings(hist_every=1)
    recorder = H.HistogramRecorder(model.blocks, settings)
    x = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(1))
    recorder.observe_batch(1, model, x[:, :-1], contextlib.nullcontext)
    assert model.training  # the eval-mode pass gives the mode back
    model.loss(x[:, :-1], x[:, 1:]).backward()
    recorder.observe_gradients(1)
    record = recorder.take()
    assert recorder.take() is None  # taken once
    entry = H.from_record(record)
    assert entry is not None and entry.step == 1 and (entry.blocks, entry.bins) == (3, H.BINS)
    # Directly: each block's output in eval mode, and each block's gradients as one vector.
    model.eval()
    outputs, h = [], model.tok_emb(x[:, :-1]) + model.pos_emb(torch.arange(7))
    with torch.no_grad():
        for block in model.blocks:
            h = block(h)
            outputs.append(h.clone())
    for i, block in enumerate(model.blocks):
        grads = torch.cat([p.grad.reshape(-1) for p in block.parameters()])
        for kind, values in (("activation", outputs[i]), ("gradient", grads)):
            lo, hi, want, nonfinite = direct(values.reshape(-1))
            edges = entry.edges[kind][i]
            assert edges[0] == pytest.approx(lo, abs=0) and edges[-1] == pytest.approx(hi, abs=0)
            assert np.allclose(np.diff(edges), (hi - lo) / H.BINS)
            assert entry.counts[kind][i].tolist() == want.tolist()
            assert entry.counts[kind][i].sum() == values.numel()
            assert entry.nonfinite[kind][i] == nonfinite == 0


def micro_trainer(**changes) -> Trainer:
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    settings = TrainSettings(steps=12, batch_size=4, warmup_steps=2, eval_every=0, sample_every=0, seed=3,
                             health_every=0, hist_every=5).replace(**changes)
    return Trainer(cfg, settings, corpus=CORPUS)


def test_trainer_records_at_the_interval_and_writes_the_file(tmp_path):
    records = list(micro_trainer(out_dir=str(tmp_path)).run())
    hist = [r for r in records if r["type"] == "histograms"]
    assert [r["step"] for r in hist] == [1, 5, 10]
    steps = [r["step"] for r in records if r["type"] in ("step", "histograms")]
    assert steps.index(5) < steps.index(6)  # each comes with its step, before the next
    for r in hist:
        entry = H.from_record(r)
        tokens = 4 * 16 * 32  # batch x context x width: every output value of the first micro-batch
        assert entry is not None and entry.counts["activation"].sum(axis=1).tolist() == [tokens, tokens]
    done = records[-1]
    assert done["type"] == "done" and done["histograms_path"].endswith(H.FILE_NAME)
    back = H.read_file(tmp_path / H.FILE_NAME)
    assert [e.step for e in back] == [1, 5, 10]
    assert back[1].to_record() == H.from_record(hist[1]).to_record()


def test_a_small_models_histograms_are_taken_on_one_thread(monkeypatch):
    # Many small kernels: on a busy 2-core machine two threads made them 15x slower (explorer/core/speed.py).
    seen = []
    real = H.histogram

    def spy(tensors, bins=H.BINS):
        seen.append(torch.get_num_threads())
        return real(tensors, bins)

    monkeypatch.setattr(H, "histogram", spy)
    torch.set_num_threads(2)
    records = list(micro_trainer(steps=1).run())
    assert any(r["type"] == "histograms" for r in records)
    assert len(seen) == 4 and set(seen) == {1}  # two blocks' activations, then their gradients
    assert torch.get_num_threads() == 2


def test_off_when_hist_every_is_zero_and_recording_changes_nothing_the_run_does():
    off = [r for r in micro_trainer(hist_every=0, steps=6).run() if r["type"] in ("step", "histograms")]
    on = [r for r in micro_trainer(hist_every=1, steps=6).run() if r["type"] in ("step", "histograms")]
    assert all(r["type"] == "step" for r in off)
    assert [r["step"] for r in on if r["type"] == "histograms"] == [1, 2, 3, 4, 5, 6]
    # the extra forward pass uses no RNG and no gradient: the same losses to the last bit
    assert [r["train_loss"] for r in off] == [r["train_loss"] for r in on if r["type"] == "step"]


@pytest.mark.slow
def test_batch_split_gives_the_same_histograms():
    """Activations of the first step: the same pass over the same weights either way, so identical.
    Gradients: the parts' gradients are added in another order, so values differ in their last bits (and
    so do the weights of later steps); a value on a bin's edge may move to the next bin."""
    torch.set_num_threads(2)
    runs = {}
    for split in ("off", "processes"):
        trainer = micro_trainer(batch_split=split, threads=2, steps=5, hist_every=5)
        runs[split] = [H.from_record(r) for r in trainer.run() if r["type"] == "histograms"]
        trainer.close()
        if split == "processes":
            assert trainer.batch_parts == 2
    assert [e.step for e in runs["off"]] == [e.step for e in runs["processes"]] == [1, 5]
    first_off, first_split = runs["off"][0], runs["processes"][0]
    assert np.array_equal(first_off.counts["activation"], first_split.counts["activation"])
    assert np.array_equal(first_off.edges["activation"], first_split.edges["activation"])
    for off, split in zip(runs["off"], runs["processes"], strict=True):
        for kind in H.KINDS:
            assert np.allclose(off.edges[kind], split.edges[kind], rtol=1e-4, atol=1e-9)
            moved = np.abs(off.counts[kind] - split.counts[kind]).sum()
            assert moved <= 0.002 * off.counts[kind].sum()
            assert np.array_equal(off.counts[kind].sum(axis=1), split.counts[kind].sum(axis=1))


def test_a_nonfinite_step_still_records_its_histograms():
    trainer = micro_trainer(hist_every=1, steps=3)
    with torch.no_grad():
        trainer.model.blocks[0].mlp.fc.weight[0, 0] = math.nan
    records = list(trainer.run())
    hist = [H.from_record(r) for r in records if r["type"] == "histograms"]
    assert records[-1]["type"] == "error" and len(hist) == 1
    assert hist[0].nonfinite["activation"][0] > 0 and hist[0].nonfinite["gradient"][0] > 0


def entries(n=3, blocks=2, bins=H.BINS) -> list[H.StepHistograms]:
    out = []
    for i in range(n):
        arrays = {}
        for kind in H.KINDS:
            arrays[f"{kind}_edges"] = np.tile(np.linspace(-1 - i, 1 + i, bins + 1), (blocks, 1))
            arrays[f"{kind}_counts"] = np.arange(blocks * bins).reshape(blocks, bins)
            arrays[f"{kind}_nonfinite"] = np.arange(blocks)
        out.append(H.from_arrays(10 * (i + 1), arrays))
    return out


def test_file_round_trip(tmp_path):
    path = H.write_file(tmp_path / H.FILE_NAME, entries())
    back = H.read_file(path)
    assert [e.to_record() for e in back] == [e.to_record() for e in entries()]
    assert H.read_file(tmp_path / "missing.safetensors") == []
    assert H.from_bytes(H.to_bytes([])) == []


def tensors_of(items) -> dict:
    from safetensors.numpy import load

    return dict(load(H.to_bytes(items)))


def save(tensors) -> bytes:
    from safetensors.numpy import save as st_save

    return st_save(tensors)


@pytest.mark.parametrize("change", [
    lambda t: t.update(activation_edges=t["activation_edges"].astype(np.float32)),  # wrong dtype
    lambda t: t.pop("gradient_counts"),  # missing
    lambda t: t.update(extra=np.zeros(3)),  # unexpected
    lambda t: t.update(steps=t["steps"][:2]),  # lengths disagree
    lambda t: t.update(activation_counts=t["activation_counts"][:, :, :5]),  # shapes disagree
])
def test_a_file_of_the_wrong_shape_gives_nothing(change):
    tensors = tensors_of(entries())
    change(tensors)
    assert H.from_bytes(save(tensors)) == []


def test_bad_rows_are_left_out_and_nothing_crashes():
    tensors = tensors_of(entries(5))
    tensors["activation_edges"][0, 0, 3] = np.nan  # NaN edge
    tensors["gradient_counts"][1, 1, 0] = 2**62  # huge count
    tensors["activation_nonfinite"][2, 0] = -4  # negative count
    tensors["steps"][4] = tensors["steps"][3]  # a repeated step
    assert [e.step for e in H.from_bytes(save(tensors))] == [40]
    tensors = tensors_of(entries(2))
    tensors["gradient_edges"][1, 0] = tensors["gradient_edges"][1, 0][::-1].copy()  # decreasing edges
    assert [e.step for e in H.from_bytes(save(tensors))] == [10]


@pytest.mark.parametrize("raw", [b"", b"\x00" * 7, struct.pack("<Q", 2**40) + b"{}", b"PK\x03\x04junk",
                                 struct.pack("<Q", 10) + b'{"a":1}   ', b"\x80\x04K\x01."])
def test_hostile_bytes_give_nothing(raw):
    assert H.from_bytes(raw) == []


def test_hostile_records_give_none():
    good = entries(1)[0].to_record()
    assert H.from_record(good) is not None
    for bad in ({**good, "step": 0}, {**good, "step": True}, {**good, "step": "x"}, {**good, "type": "step"},
                {**good, "activation_counts": [[1, 2]] * 2}, {**good, "gradient_edges": "oops"},
                {**good, "activation_nonfinite": [1.5, 0]},
                {**good, "gradient_counts": [[math.inf] * 64] * 2},
                {k: v for k, v in good.items() if k != "gradient_nonfinite"}, [], None):
        assert H.from_record(bad) is None


def test_a_long_run_is_thinned_to_the_budget():
    many = entries(1, blocks=1000, bins=64) * 40
    many = [H.StepHistograms(i + 1, e.edges, e.counts, e.nonfinite) for i, e in enumerate(many)]
    kept = H.thin(many)
    assert sum(e.numbers() for e in kept) <= H.MAX_NUMBERS and kept[-1].step == 40 and len(kept) >= 2
