"""The CPU batch split: each micro-batch cut into parts (threads or helper processes) gives the unsplit
run's numbers."""

import functools
import os
import threading

import pytest
import torch

from explorer.core.gpt.data import default_corpus
from explorer.core.gpt.model import GPT, GPTConfig, preset
from explorer.core.gpt.part_process import PartProcess, trainable
from explorer.core.gpt.train import (
    Trainer,
    TrainSettings,
    cpu_batch_mode,
    cpu_batch_parts,
    keep_cores_for_training,
    one_thread_pool,
    peak_flops,
    usable_cores,
)

CORPUS = default_corpus()[:60_000]


@pytest.fixture
def threads():
    """Set torch's thread count for a test (results must not depend on the machine's cores)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


# The split over helper processes starts one per part after the first (a torch import each: seconds).
MODES = ["threads", pytest.param("processes", marks=pytest.mark.slow)]

CFG = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)


def run(split: str, steps: int = 6, **changes) -> tuple[list[float], list[float], Trainer]:
    fields = {"steps": steps, "batch_size": 4, "warmup_steps": 2, "eval_every": 0, "sample_every": 0,
              "seed": 7, "batch_split": split, **changes}
    if split == "processes":  # as many parts as the test's threads, whatever the machine's cores
        fields.setdefault("threads", torch.get_num_threads())
    if split == "off":
        # The unsplit reference on one thread: its numbers do not depend on the count (the comparisons
        # allow for rounding), and two OpenMP threads that spin at every tiny kernel's join cost this
        # 5-10x the CPU time on a busy two-core machine.
        fields.setdefault("threads", 1)
    settings = TrainSettings(**fields)
    trainer = Trainer(CFG, settings, CORPUS)
    try:
        steps_ = [r for r in trainer.run() if r["type"] == "step"]
    finally:
        trainer.close()
    return [r["train_loss"] for r in steps_], [r["grad_norm"] for r in steps_], trainer


@functools.cache
def shared_run(mode: str, parts: int) -> tuple[list[float], list[float], Trainer]:
    """The seeded 6-step run split `mode` in `parts` parts, evaluating every 3 steps: made once (a helper
    process costs seconds to start) for the tests that only read it. Call it under the `threads` fixture:
    a trainer sets torch's thread count."""
    return run(mode, threads=parts, eval_every=3)


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, ended but not yet waited for, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [2, 3])  # 3 parts of a batch of 4: rows 2, 1, 1, weighted by their share
def test_split_steps_equal_the_unsplit_ones(threads, n, mode):
    threads(n)
    losses, norms, split = shared_run(mode, n)  # processes count the cores unless told a thread count
    assert split.batch_parts == n and split.batch_mode == mode
    base_losses, base_norms, whole = run("off")
    assert whole.batch_parts == 1
    assert losses == pytest.approx(base_losses, rel=1e-5)
    assert norms == pytest.approx(base_norms, rel=1e-4)
    for a, b in zip(split.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if mode == "threads":  # a split over processes gives the threads' run bit for bit (the next test)
        again, _, _ = run(mode, threads=n, eval_every=3)
        assert again == losses  # a seeded split run repeats exactly


@pytest.mark.parametrize("n", [2, 3])
def test_processes_and_threads_give_the_same_run_bit_for_bit(threads, n):
    # The same parts on one-thread kernels, summed in the same order: only where they run differs. With
    # the threads' run repeating exactly (the test above), so does a split over processes, whose helpers
    # cost seconds each to start.
    threads(n)
    by_process, norms_p, p = shared_run("processes", n)
    by_thread, norms_t, t = shared_run("threads", n)
    assert p.batch_mode == "processes" and t.batch_mode == "threads" and p.batch_parts == t.batch_parts == n
    assert (by_process, norms_p) == (by_thread, norms_t)
    for a, b in zip(p.model.parameters(), t.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_the_helpers_part_gradient_and_ours_sum_to_the_whole_batchs():
    torch.manual_seed(3)
    model = GPT(CFG)
    x = torch.randint(0, CFG.vocab_size, (5, CFG.context_length))
    y = torch.randint(0, CFG.vocab_size, (5, CFG.context_length))
    params = trainable(model)
    helper = PartProcess(model, rows=3)
    try:
        with torch.no_grad():  # the helper computes with the weights as they are when sent
            params[0].add_(0.01)
        whole = torch.autograd.grad(model.loss(x, y), params)
        helper.send_weights(params)
        helper.start_grad(x[2:], y[2:], 3 / 5, 3 / 5)  # rows 2-4 there, weighted by their share
        here = torch.autograd.grad(model.loss(x[:2], y[:2]) * (2 / 5), params)
        loss, there = helper.finish_grad(params)
        assert loss.item() == pytest.approx((model.loss(x[2:], y[2:]) * 3 / 5).item(), rel=1e-6)
        for a, b, w in zip(here, there, whole, strict=True):
            torch.testing.assert_close(a + b, w, rtol=1e-5, atol=1e-7)
        with torch.no_grad():
            params[0].sub_(0.02)
        helper.send_weights(params)
        helper.start_loss(x[2:], y[2:], 1.0)
        assert helper.finish_loss().item() == pytest.approx(model.loss(x[2:], y[2:]).item(), rel=1e-6)
        pid = helper.pid
    finally:
        helper.close()
    assert helper.pid is None and not alive(pid)


@pytest.mark.parametrize("mode", MODES)
def test_split_evaluation_equals_the_unsplit_one(threads, mode):
    threads(2)
    _, _, whole = run("off", steps=2)  # trained weights, not the initial ones
    split = Trainer(CFG, whole.settings.replace(batch_split=mode, threads=2), CORPUS)  # initial weights
    assert split.batch_parts == 2 and split.batch_mode == mode
    try:
        initial = split.evaluate()  # the parts (for processes, the helper) start on the initial weights
        with torch.no_grad():
            for a, b in zip(split.model.parameters(), whole.model.parameters(), strict=True):
                a.copy_(b)  # the same weights: only the split differs
        got, want = split.evaluate(), whole.evaluate()  # the running parts see the weights as they are now
    finally:
        split.close()
    assert got == pytest.approx(want, rel=1e-5)
    assert initial["val_loss"] != pytest.approx(want["val_loss"], rel=1e-3)  # the weights did change


@pytest.mark.parametrize("mode", MODES)
def test_split_with_gradient_accumulation(threads, mode):
    threads(2)
    losses, _, _ = run(mode, grad_accum_steps=3)
    base, _, _ = run("off", grad_accum_steps=3)
    assert losses == pytest.approx(base, rel=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_bf16_autocast_reaches_the_parts(threads, mode):
    # Autocast is per thread (and the helper process's own): a part that missed it would train in float32.
    threads(2)
    bf16, _, trainer = run(mode, steps=3, dtype="bfloat16")
    assert trainer.batch_parts == 2 and trainer.autocast_dtype == torch.bfloat16
    bf16_whole, _, _ = run("off", steps=3, dtype="bfloat16")
    fp32, _, _ = run("off", steps=3, dtype="float32")
    assert bf16 == pytest.approx(bf16_whole, rel=2e-3)
    assert max(abs(a - b) for a, b in zip(bf16, fp32, strict=True)) > 1e-5


def test_when_the_batch_is_split():
    cfg = CFG
    cpu, before = torch.device("cpu"), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for split in ("threads", "processes"):
            settings = TrainSettings(batch_size=4, batch_split=split, threads=2 * (split == "processes"))
            assert cpu_batch_parts(settings, cfg, cpu) == 2
            assert cpu_batch_parts(settings.replace(batch_size=1), cfg, cpu) == 1
            assert cpu_batch_parts(settings.replace(batch_split="off"), cfg, cpu) == 1
            assert cpu_batch_parts(settings.replace(compile=True), cfg, cpu) == 1
            assert cpu_batch_parts(settings.replace(checkpoint_blocks=True), cfg, cpu) == 1
            assert cpu_batch_parts(settings, cfg.replace(drop_rate=0.1), cpu) == 1  # masks: other generators
            assert cpu_batch_parts(settings, cfg, cpu, distributed=True) == 1
            assert cpu_batch_parts(settings, cfg, torch.device("cuda")) == 1
        threads = TrainSettings(batch_size=4, batch_split="threads")
        processes = threads.replace(batch_split="processes")
        torch.set_num_threads(8)
        assert cpu_batch_parts(threads, cfg, cpu) == 4  # never more parts than rows
        assert cpu_batch_parts(processes.replace(threads=3), cfg, cpu) == 3
        torch.set_num_threads(1)
        assert cpu_batch_parts(threads, cfg, cpu) == 1
        # Processes count the cores, not this process's intra-op threads (the app keeps one for its window),
        # unless the settings name a thread count.
        cores = usable_cores()
        assert cpu_batch_parts(processes, cfg, cpu) == min(cores, 4)
        assert cpu_batch_parts(processes.replace(threads=1), cfg, cpu) == 1
        # ... at most the cores the process was given: the app's training process leaves one to the window
        # (on a 2-core machine its batches are not split: two busy processes would stall the GUI)
        try:
            keep_cores_for_training(1)
            assert usable_cores() == 1 and cpu_batch_parts(processes, cfg, cpu) == 1
            keep_cores_for_training(3)
            assert cpu_batch_parts(processes, cfg, cpu) == min(usable_cores(), 3) == min(cores, 3)
        finally:
            keep_cores_for_training(None)
        assert usable_cores() == cores
        # auto: processes for a model like nanoGPT's baby GPT, none for a micro model (a step too short to
        # pay for a helper) or a large one.
        baby = preset("tiny")
        auto = TrainSettings(batch_size=12, batch_split="auto", threads=2)
        assert cpu_batch_parts(auto, baby, cpu) == 2
        assert cpu_batch_parts(auto.replace(threads=8), baby, cpu) == 4  # each helper holds its own torch
        assert cpu_batch_mode(auto, 2) == "processes"
        assert cpu_batch_parts(auto.replace(batch_size=4), cfg, cpu) == 1
        assert cpu_batch_parts(auto, preset("small", drop_rate=0.0), cpu) == 1
        assert cpu_batch_mode(auto, 1) == "off" and cpu_batch_mode(threads, 2) == "threads"
    finally:
        torch.set_num_threads(before)
    assert "batch_split" in TrainSettings(batch_split="sometimes").problems()
    assert TrainSettings().batch_split == "auto"  # what a user gets


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
    for mode in ("threads", "processes"):
        trainer = Trainer(CFG, TrainSettings(steps=1, batch_size=4, eval_every=0, sample_every=0, threads=2,
                                             batch_split=mode), CORPUS)
        start = next(trainer.run())
        assert start["type"] == "start" and (start["batch_parts"], start["batch_mode"]) == (2, mode)
    default = Trainer(CFG, TrainSettings(steps=1, batch_size=4, eval_every=0, sample_every=0), CORPUS)
    start = next(default.run())
    assert (start["batch_parts"], start["batch_mode"]) == (1, "off")  # auto: a micro model is not split


@pytest.mark.slow
def test_a_split_run_stopped_and_resumed_equals_an_uninterrupted_one(threads, tmp_path):
    threads(2)
    settings = TrainSettings(steps=6, batch_size=4, warmup_steps=2, eval_every=3, sample_every=0, seed=7,
                             batch_split="processes", threads=2, out_dir=str(tmp_path))
    whole, _, _ = shared_run("processes", 2)  # the same settings, never stopped
    first = Trainer(CFG, settings, CORPUS)
    records = []
    for record in first.run():
        records.append(record)
        if record["type"] == "step" and record["step"] == 2:
            pids = first.part_process_ids
            assert len(pids) == 1 and alive(pids[0])  # the helper runs while the run does
            first.request_stop()
    assert records[-1]["type"] == "stopped" and records[-1]["step"] == 2
    first.close()
    assert first.part_process_ids == [] and not alive(pids[0])  # Stop's end leaves no helper behind
    second = Trainer.load_checkpoint(tmp_path / "checkpoint.safetensors", corpus=CORPUS)
    try:
        rest = [r for r in second.run() if r["type"] == "step"]
    finally:
        second.close()
    assert second.batch_mode == "processes"
    got = [r["train_loss"] for r in records if r["type"] == "step"] + [r["train_loss"] for r in rest]
    assert got == whole


@pytest.mark.slow
def test_a_helper_that_dies_ends_the_run_with_an_error_record(threads):
    threads(2)
    trainer = Trainer(CFG, TrainSettings(steps=50, batch_size=4, eval_every=0, sample_every=0, threads=2,
                                         batch_split="processes"), CORPUS)
    last = None
    try:
        for record in trainer.run():
            last = record
            if record["type"] == "step" and record["step"] == 1:
                os.kill(trainer.part_process_ids[0], 9)
    finally:
        trainer.close()
    assert last["type"] == "error" and "part process ended" in last["message"]
    assert trainer.part_process_ids == []


@pytest.mark.skipif(usable_cores() < 2, reason="a split needs two cores")
@pytest.mark.slow
def test_the_apps_training_process_splits_over_processes_and_stops(tmp_path):
    # The app trains in a spawned daemon process (which multiprocessing forbids to have children) on every
    # core but one (here two, as on a 3-core machine): its batches split over a helper process, and Stop
    # ends both.
    import multiprocessing as mp
    import queue

    from explorer.core.gpt.child_process import run_training

    ctx = mp.get_context("spawn")
    commands, records = ctx.Queue(), ctx.Queue()
    settings = {"steps": 10**6, "batch_size": 4, "device": "cpu", "eval_every": 0, "sample_every": 0,
                "batch_split": "processes"}
    checkpoint = tmp_path / "checkpoint.safetensors"
    child = ctx.Process(target=run_training, daemon=True,
                        args=(CFG.to_dict(), settings, None, str(checkpoint), commands, records, 2))
    child.start()
    seen = []
    try:
        while not seen or seen[-1]["type"] != "exit":
            try:
                batch = records.get(timeout=120)
            except queue.Empty:
                pytest.fail(f"no record from the training process; last ones: {seen[-3:]}")
            seen += batch
            if any(r["type"] == "step" and r["step"] == 2 for r in batch):
                commands.put("stop")
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
    start = next(r for r in seen if r["type"] == "start")
    assert (start["batch_mode"], start["batch_parts"]) == ("processes", 2)
    assert any(r["type"] == "stopped" for r in seen), seen[-3:]
    assert checkpoint.is_file() and child.exitcode == 0


def test_mfu_of_a_split_over_processes_counts_one_core_per_part(threads):
    threads(1)  # like the app's training process: one intra-op thread, yet both cores train
    cpu = torch.device("cpu")
    assert peak_flops(cpu, False, cores=2) == pytest.approx(2 * peak_flops(cpu, False))
    trainer = Trainer(CFG, TrainSettings(batch_size=4, batch_split="processes", threads=2), CORPUS)
    threads(1)
    assert trainer.peak_flops == pytest.approx(2 * peak_flops(cpu, False))
    whole = Trainer(CFG, TrainSettings(batch_size=4, batch_split="off", threads=1), CORPUS)
    assert whole.peak_flops == pytest.approx(peak_flops(cpu, False))
