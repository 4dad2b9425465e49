"""The CPU batch split: each micro-batch cut into one part per thread gives the unsplit run's numbers."""

import threading

import pytest
import torch

from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.train import Trainer, TrainSettings, cpu_batch_parts, one_thread_pool

CORPUS = default_corpus()[:60_000]


@pytest.fixture
def threads():
    """Set torch's thread count for a test (results must not depend on the machine's cores)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def run(split: str, steps: int = 6, **changes) -> tuple[list[float], list[float], Trainer]:
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    settings = TrainSettings(steps=steps, batch_size=4, warmup_steps=2, eval_every=0, sample_every=0,
                             seed=7, batch_split=split, **changes)
    trainer = Trainer(cfg, settings, CORPUS)
    steps_ = [r for r in trainer.run() if r["type"] == "step"]
    return [r["train_loss"] for r in steps_], [r["grad_norm"] for r in steps_], trainer


@pytest.mark.parametrize("n", [2, 3])  # 3 parts of a batch of 4: rows 2, 1, 1, weighted by their share
def test_split_steps_equal_the_unsplit_ones(threads, n):
    threads(n)
    losses, norms, split = run("auto")
    assert split.batch_parts == n
    base_losses, base_norms, whole = run("off")
    assert whole.batch_parts == 1
    assert losses == pytest.approx(base_losses, rel=1e-5)
    assert norms == pytest.approx(base_norms, rel=1e-4)
    for a, b in zip(split.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    again, _, _ = run("auto")
    assert again == losses  # a seeded split run repeats exactly


def test_split_evaluation_equals_the_unsplit_one(threads):
    threads(2)
    _, _, split = run("auto", steps=2)
    _, _, whole = run("off", steps=2)
    assert split.batch_parts == 2
    with torch.no_grad():
        for a, b in zip(split.model.parameters(), whole.model.parameters(), strict=True):
            a.copy_(b)  # the same weights: only the split differs
    got, want = split.evaluate(), whole.evaluate()
    assert got == pytest.approx(want, rel=1e-5)


def test_split_with_gradient_accumulation(threads):
    threads(2)
    losses, _, _ = run("auto", grad_accum_steps=3)
    base, _, _ = run("off", grad_accum_steps=3)
    assert losses == pytest.approx(base, rel=1e-5)


def test_bf16_autocast_reaches_the_part_threads(threads):
    # Autocast is per thread: a part that missed it would train in float32.
    threads(2)
    bf16, _, trainer = run("auto", steps=3, dtype="bfloat16")
    assert trainer.batch_parts == 2 and trainer.autocast_dtype == torch.bfloat16
    bf16_whole, _, _ = run("off", steps=3, dtype="bfloat16")
    fp32, _, _ = run("off", steps=3, dtype="float32")
    assert bf16 == pytest.approx(bf16_whole, rel=2e-3)
    assert max(abs(a - b) for a, b in zip(bf16, fp32, strict=True)) > 1e-5


def test_when_the_batch_is_split():
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    cpu, before = torch.device("cpu"), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        settings = TrainSettings(batch_size=4, batch_split="auto")
        assert cpu_batch_parts(settings, cfg, cpu) == 2
        assert cpu_batch_parts(settings.replace(batch_size=1), cfg, cpu) == 1
        assert cpu_batch_parts(settings.replace(batch_split="off"), cfg, cpu) == 1
        assert cpu_batch_parts(settings.replace(compile=True), cfg, cpu) == 1
        assert cpu_batch_parts(settings.replace(checkpoint_blocks=True), cfg, cpu) == 1
        assert cpu_batch_parts(settings, cfg.replace(drop_rate=0.1), cpu) == 1  # masks from one generator
        assert cpu_batch_parts(settings, cfg, cpu, distributed=True) == 1
        assert cpu_batch_parts(settings, cfg, torch.device("cuda")) == 1
        torch.set_num_threads(8)
        assert cpu_batch_parts(settings, cfg, cpu) == 4  # never more parts than rows
        torch.set_num_threads(1)
        assert cpu_batch_parts(settings, cfg, cpu) == 1
    finally:
        torch.set_num_threads(before)
    assert "batch_split" in TrainSettings(batch_split="sometimes").problems()


def test_part_threads_run_one_thread_kernels_and_leave_the_rest_alone(threads):
    threads(2)
    pool = one_thread_pool(2)
    try:
        assert [pool.submit(torch.get_num_threads).result() for _ in range(4)] == [1, 1, 1, 1]
    finally:
        pool.shutdown()
    assert torch.get_num_threads() == 2
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [2]  # threads started later still take the process's count


def test_start_record_says_how_the_batch_is_split(threads):
    threads(2)
    cfg = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    trainer = Trainer(cfg, TrainSettings(steps=1, batch_size=4, eval_every=0, sample_every=0,
                                         batch_split="auto"), CORPUS)
    start = next(trainer.run())
    assert start["type"] == "start" and start["batch_parts"] == 2
    default = Trainer(cfg, TrainSettings(steps=1, batch_size=4, eval_every=0, sample_every=0), CORPUS)
    assert next(default.run())["batch_parts"] == 1  # off by default
