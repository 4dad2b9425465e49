"""dtype "auto" on a CPU: bf16 autocast is decided by timing the model's own block, never by the CPU's name.

No test here reads a clock: the probe's timer and the probe itself are injected, so the decisions are the
same on every machine. One test runs the real probe on a small block and checks only what it leaves behind.
"""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer.commands.train import start_line
from explorer.core.gpt import train as train_mod
from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.model import GPTConfig
from explorer.core.gpt.part_process import MALLOC_KEEP
from explorer.core.gpt.train import (
    CPU_BF16_MIN_SPEEDUP,
    CPU_BF16_MIN_WIDTH,
    CpuBf16Probe,
    Trainer,
    TrainSettings,
    cpu_bf16_decision,
    probe_cpu_bf16,
)

CORPUS = default_corpus()[:30_000]
WIDE = GPTConfig(vocab_size=128, context_length=16, emb_dim=CPU_BF16_MIN_WIDTH, n_heads=2, n_layers=1,
                 drop_rate=0.0)


@pytest.fixture
def probes(monkeypatch):
    """A fake probe whose speed-up the test sets; it records what it was asked to measure."""
    asked = []
    state = {"speedup": 1.5}

    def fake(config, rows, threads):
        asked.append((config.emb_dim, rows, threads))
        return CpuBf16Probe(state["speedup"] * 0.002, 0.002, rows, rows * config.context_length, threads)

    monkeypatch.setattr(train_mod, "CPU_BF16_PROBES", {})
    monkeypatch.setattr(train_mod, "probe_cpu_bf16", fake)
    return asked, state


@pytest.fixture(autouse=True)
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def settings(**changes) -> TrainSettings:
    base = TrainSettings(steps=2, batch_size=4, eval_every=0, sample_every=0, device="cpu", threads=1,
                         batch_split="off", health_every=0, hist_every=0, seed=3)
    return base.replace(**changes)


def test_the_probe_times_both_precisions_with_the_timer_it_is_given_and_leaves_the_process_as_it_was():
    ticks = itertools.count()
    rng, count = torch.get_rng_state(), torch.get_num_threads()
    probe = probe_cpu_bf16(WIDE, rows=3, threads=1, timer=lambda: float(next(ticks)), repeats=2)
    # every timed pass reads the timer twice, so each took exactly one tick: a tie, not fast enough
    assert (probe.float32_s, probe.bfloat16_s, probe.speedup) == (1.0, 1.0, 1.0)
    assert next(ticks) == 2 * 2 * 2  # 2 repeats x 2 precisions x (start, end): the untimed passes read none
    assert (probe.rows, probe.tokens, probe.threads) == (3, 3 * 16, 1)
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == count
    assert not torch.is_autocast_enabled("cpu")


def test_the_probe_keeps_to_its_budget_of_work(monkeypatch):
    # Past CPU_PROBE_FLOPS it measures fewer rows; a context too long for the budget is shortened, down to
    # CPU_PROBE_MIN_TOKENS tokens.
    monkeypatch.setattr(train_mod, "CPU_PROBE_FLOPS", 1)
    monkeypatch.setattr(train_mod, "CPU_PROBE_MIN_TOKENS", 8)
    probe = probe_cpu_bf16(WIDE, rows=12, threads=1, timer=lambda: 0.0, repeats=1)
    assert (probe.rows, probe.tokens) == (1, 8)
    monkeypatch.setattr(train_mod, "CPU_PROBE_MIN_TOKENS", 40)
    probe = probe_cpu_bf16(WIDE, rows=12, threads=1, timer=lambda: 0.0, repeats=1)
    assert (probe.rows, probe.tokens) == (2, 32)  # whole rows of the 16-token context


def test_a_real_probe_answers_with_positive_times():
    probe = probe_cpu_bf16(WIDE, rows=2, threads=1, repeats=1)
    assert probe.float32_s > 0 and probe.bfloat16_s > 0 and probe.speedup > 0


@pytest.mark.parametrize(("speedup", "want"), [
    (2.4, "bfloat16"),  # the baby GPT's products with avx512_bf16 on an AMD EPYC
    (CPU_BF16_MIN_SPEEDUP, "bfloat16"),
    (CPU_BF16_MIN_SPEEDUP - 0.01, "float32"),  # faster, but within the margin: float32 is the reference
    (0.5, "float32"),  # slower: avx512_bf16 on a Xeon, or no bf16 instructions at all
])
def test_auto_follows_the_measurement_with_a_margin_and_says_why(probes, speedup, want):
    asked, state = probes
    state["speedup"] = speedup
    start = next(Trainer(WIDE, settings(), corpus=CORPUS).run())
    assert start["dtype"] == want and len(asked) == 1
    note = start["dtype_note"]
    assert note.startswith("bf16 autocast" if want == "bfloat16" else "float32")
    assert f"{speedup:.2f}x float32's speed" in note and "2.0 ms in bf16" in note
    assert note in start_line(start)


def test_explicit_precisions_and_narrow_models_are_never_measured(probes):
    asked, _ = probes
    assert Trainer(WIDE, settings(dtype="float32"), corpus=CORPUS).autocast_dtype is None
    assert Trainer(WIDE, settings(dtype="bfloat16"), corpus=CORPUS).autocast_dtype == torch.bfloat16
    narrow = Trainer(WIDE.replace(emb_dim=32), settings(), corpus=CORPUS)
    assert narrow.autocast_dtype is None and f"under the {CPU_BF16_MIN_WIDTH}" in narrow.dtype_note
    assert asked == []
    explicit = next(Trainer(WIDE, settings(dtype="bfloat16"), corpus=CORPUS).run())
    assert explicit["dtype_note"] == "" and explicit["dtype"] == "bfloat16"


def test_the_probe_runs_once_per_shape_on_one_thread_with_a_part_s_rows(probes):
    asked, _ = probes
    torch.set_num_threads(2)
    Trainer(WIDE, settings(threads=2), corpus=CORPUS)
    Trainer(WIDE, settings(threads=2, seed=4), corpus=CORPUS)  # the same shape: measured once per process
    # The whole batch, on one thread even for a run on two (a probe on two threads is at the load's mercy)
    assert asked == [(CPU_BF16_MIN_WIDTH, 4, 1)] and torch.get_num_threads() == 2
    # A batch split in two: each part (2 rows) runs on one core with one-thread kernels.
    split = Trainer(WIDE, settings(threads=2, batch_split="threads"), corpus=CORPUS)
    assert split.batch_parts == 2 and asked[-1] == (CPU_BF16_MIN_WIDTH, 2, 1)
    Trainer(WIDE, settings(threads=1, batch_size=5), corpus=CORPUS)
    assert asked[-1] == (CPU_BF16_MIN_WIDTH, 5, 1) and len(asked) == 3


def test_ranks_settle_on_one_figure():
    # A distributed run passes `agree` (the mean over ranks): every rank then trains in one precision.
    cfg = WIDE.replace(context_length=8)
    fast, note = cpu_bf16_decision(cfg, 1, agree=lambda speedup: 5.0)
    assert fast and "5.00x" in note
    fast, note = cpu_bf16_decision(cfg, 1, agree=lambda speedup: 0.25)
    assert not fast and "0.25x" in note


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and page-fault counts")
def test_a_split_step_reuses_its_memory_instead_of_faulting_pages_in_again():
    # The batch split's processes keep what malloc frees (part_process.keep_freed_memory, MALLOC_KEEP):
    # a step's blocks are then the last step's pages, not fresh ones faulted in (the baby GPT's split:
    # ~1,000 faults a step in the trainer's process and ~540 in the helper, none with it). Counted, not
    # timed, on a block glibc would otherwise always hand back. In a subprocess: the setting is global.
    code = (
        "import resource, torch\n"
        "from explorer.core.gpt.part_process import keep_freed_memory\n"
        "def faults():\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "def churn():\n"
        "    for _ in range(5):\n"
        "        torch.ones(10_000_000).sum()\n"  # 40 MB, freed at once: above what glibc ever keeps
        "churn(); before = faults(); churn(); plain = faults() - before\n"
        "assert keep_freed_memory()\n"
        "churn(); before = faults(); churn(); kept = faults() - before\n"
        "print(plain, kept)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name in MALLOC_KEEP:
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    plain, kept = map(int, done.stdout.split())
    assert plain >= 5 * 9_000 and kept < 100, (plain, kept)  # 40 MB is ~9,800 pages
