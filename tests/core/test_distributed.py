"""Training on several ranks through the real launcher (torch.distributed.run), on CPU with gloo.

Each launch starts fresh interpreters, so the runs are tiny: one layer, width 16, context 16, 3 steps.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from explorer.core.gpt.distributed import COLLECTIVE_TIMEOUT, rank_slice, torchrun_argv
from explorer.core.gpt.train import Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"vocab_size": 64, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0}
COMMON = {"eval_every": 0, "sample_every": 0, "threads": 1, "device": "cpu", "lr": 3e-3, "warmup_steps": 2}
FLAGS = ["--device", "cpu", "--n-layers", "1", "--n-heads", "2", "--emb-dim", "16", "--context-length", "16",
         "--drop-rate", "0", "--eval-every", "0", "--sample-every", "0", "--threads", "1", "--lr", "0.003",
         "--warmup-steps", "2", "--json"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def launch(argv: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


def step_losses(stdout: str) -> dict[int, float]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len({r["step"] for r in rows}) == len(rows), "a step was printed twice: more than one rank prints"
    return {r["step"]: r["train_loss"] for r in rows}


def single_process(steps: int, out_dir: Path | None = None, until: int | None = None) -> dict[int, float]:
    """1 process x batch 12, in this process (a run of `steps` steps, left after step `until` if given)."""
    out = str(out_dir) if out_dir else None
    trainer = Trainer(MODEL, TrainSettings(steps=steps, batch_size=12, out_dir=out, **COMMON))
    if until is not None:
        losses = {}
        for r in trainer.run():
            if r["type"] == "step":
                losses[r["step"]] = r["train_loss"]
                if r["step"] == until:
                    return losses
        raise AssertionError(f"the run ended before step {until}")
    records = list(trainer.run())
    assert records[-1]["type"] == "done", records[-1]
    return {r["step"]: r["train_loss"] for r in records if r["type"] == "step"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank_slices_tile_the_global_batch():
    rows = [list(range(12))[rank_slice(6, r)] for r in range(2)]
    assert rows == [list(range(6)), list(range(6, 12))]


def test_torchrun_argv_one_node_and_many():
    one = torchrun_argv(2, ["--steps", "3"], python="py")
    assert one[:4] == ["py", "-m", "torch.distributed.run", "--nproc-per-node=2"] and "--standalone" in one
    assert one[-5:] == ["-m", "explorer", "train", "--steps", "3"]
    many = torchrun_argv(4, [], nnodes=2, rdzv_endpoint="10.0.0.1:29500")
    assert "--nnodes=2" in many and "--rdzv-backend=c10d" in many and "--standalone" not in many
    assert "--rdzv-endpoint=10.0.0.1:29500" in many
    with pytest.raises(ValueError):
        torchrun_argv(2, [], nnodes=2)


@pytest.mark.slow
def test_two_ranks_match_one_process_and_checkpoints_cross(tmp_path):
    # 2 ranks x batch 6 == 1 process x batch 12, step by step; exactly one rank prints; rank 0 saves.
    nproc2 = [sys.executable, "-m", "explorer", "train", "--nproc", "2", "--batch-size", "6"]
    two = launch([*nproc2, "--steps", "3", "--out", str(tmp_path / "two"), *FLAGS])
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("parameters (1 layers") == 1  # the start line, from rank 0 only
    reference = single_process(6)
    got = step_losses(two.stdout)
    assert sorted(got) == [1, 2, 3]
    for step, loss in got.items():
        assert abs(loss - reference[step]) < 1e-5, (step, loss, reference[step])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "checkpoint.safetensors", "histograms.safetensors", "metrics.csv"]

    # The 2-rank checkpoint resumes in 1 process (batch 12) and continues the same run.
    resumed = Trainer.load_checkpoint(tmp_path / "two" / "checkpoint.safetensors",
                                      settings={"steps": 6, "batch_size": 12, "out_dir": None})
    after = {r["step"]: r["train_loss"] for r in resumed.run() if r["type"] == "step"}
    assert sorted(after) == [4, 5, 6]
    for step, loss in after.items():
        assert abs(loss - reference[step]) < 1e-5, (step, loss, reference[step])
    # And the other way round, a 1-process checkpoint resumed on 2 ranks: the two-node test below.


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_quickly(tmp_path):
    # The real launcher runs a script that makes rank 1 fail at its second step, then the usual command.
    script = tmp_path / "fail_on_rank1.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from explorer.core.gpt.train import Trainer
        original = Trainer._train_step
        def failing(self):
            if self.rank == 1 and self.step == 1:
                raise RuntimeError("boom on rank 1")
            return original(self)
        Trainer._train_step = failing
        from explorer.cli import main
        sys.exit(main(sys.argv[1:]))
    """))
    argv = torchrun_argv(2, [])[:-4] + [str(script), "train", "--batch-size", "6", "--steps", "50", *FLAGS]
    # "Quickly" means: the other rank does not wait out the collective timeout on its dead peer. A bound
    # below that timeout tells the two apart on a loaded machine too (a wall-clock limit of a few seconds
    # failed there: two torch processes start slowly when the cores are busy).
    limit = COLLECTIVE_TIMEOUT.total_seconds() * 0.75
    start = time.monotonic()
    result = launch(argv, timeout=limit)
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert elapsed < limit, elapsed
    assert "boom on rank 1" in result.stderr
    assert len(step_losses(result.stdout)) < 50


@pytest.mark.slow
def test_two_nodes_on_localhost_match_one_process_resuming_its_checkpoint(tmp_path):
    # Two torchrun "nodes" (one rank each) meet at a c10d rendezvous on 127.0.0.1, and resume a 1-process
    # checkpoint on their 2 ranks x batch 6: the steps of 1 process x batch 12 (each launch costs four
    # torch interpreters, so this one checks both).
    endpoint = f"127.0.0.1:{free_port()}"
    single_process(3, tmp_path / "one")
    resume = ["--resume", str(tmp_path / "one" / "checkpoint.safetensors")]
    args = ["--batch-size", "6", "--steps", "6", *resume, *FLAGS]
    def node(host: bool) -> list[str]:
        # Both "nodes" live on 127.0.0.1: say which one hosts the rendezvous store, or both try to
        argv = torchrun_argv(1, args, nnodes=2, rdzv_endpoint=endpoint)
        at = argv.index(f"--rdzv-endpoint={endpoint}") + 1
        return [*argv[:at], f"--rdzv-conf=is_host={int(host)}", *argv[at:]]

    nodes = [subprocess.Popen(node(host), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for host in (True, False)]
    outputs = [node.communicate(timeout=120) for node in nodes]
    # torchrun's agent may exit 1 after its worker has finished, when the other node closed the rendezvous
    # store first ("failed to shutdown the rendezvous ... RendezvousConnectionError", seen once under load):
    # a race in torch's elastic agent at its exit, not in the training, which the losses below check.
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0 or "failed to shutdown the rendezvous" in err, err[-2000:]
    printed = [step_losses(out) for out, _ in outputs]
    assert sorted(len(p) for p in printed) == [0, 3]  # only the node that holds rank 0 prints
    reference = single_process(6)
    assert sorted(max(printed, key=len)) == [4, 5, 6]
    for step, loss in max(printed, key=len).items():
        assert abs(loss - reference[step]) < 1e-5, (step, loss, reference[step])


def test_flops_per_token_against_a_count_by_hand():
    from torch.utils.flop_counter import FlopCounterMode

    from explorer.core.gpt.model import GPT, GPTConfig, flops_per_token, mfu

    cfg = GPTConfig(vocab_size=10, context_length=4, emb_dim=8, hidden_dim=32, n_heads=2, n_layers=2,
                    drop_rate=0.0)
    # Per block: qkv 2*8*24 = 384, projection 2*8*8 = 128, MLP 2*(2*8*32) = 1024, attention 2*(2*4*8) = 128:
    # 1664; two blocks 3328, head 2*8*10 = 160; forward 3488 per token, training three times that.
    assert flops_per_token(cfg) == 3 * 3488 == 10464
    # torch's own counter agrees on the matrix multiplications (on the CPU it leaves attention out).
    import torch

    x = torch.zeros(3, 4, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        GPT(cfg).loss(x, x).backward()
    attention = 3 * 2 * (2 * 4 * 8 * 2)  # per token, training
    assert counter.get_total_flops() == 12 * (flops_per_token(cfg) - attention)
    assert mfu(1000.0, cfg, 10464 * 2000.0) == 0.5
    assert mfu(1000.0, cfg, None) is None


def _relay(tmp_path, steps: int, stop_after: int | None = None, batch: int = 6):
    """Run the Pretraining workspace's multi-GPU body (2 CPU ranks) and collect what the panel receives."""
    import queue
    import threading

    from explorer.core.gpt.child_process import train_on_ranks

    commands, records = queue.Queue(), queue.Queue()
    checkpoint = tmp_path / "run-1" / "checkpoint.safetensors"
    checkpoint.parent.mkdir()
    settings = {**{k: v for k, v in COMMON.items() if k != "threads"}, "steps": steps, "batch_size": batch}
    body = threading.Thread(target=train_on_ranks, args=(2, dict(MODEL), settings, None, str(checkpoint),
                                                         commands, records, 1))
    body.start()
    got: list[dict] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            batch_records = records.get(timeout=1)
        except queue.Empty:
            continue
        got += batch_records
        if stop_after is not None and any(r["type"] == "step" and r["step"] >= stop_after for r in got):
            commands.put("stop")
            stop_after = None
        if any(r["type"] == "exit" for r in got):
            break
    body.join(30)
    return got, checkpoint


@pytest.mark.slow
def test_the_workspace_relays_a_two_rank_run_as_one_run_and_stop_saves_and_ends_it(tmp_path, monkeypatch):
    """Issue 11 §3: the panel's training body on 2 ranks gives one stream: global tokens, one of each step;
    Stop reaches the ranks, rank 0 saves, the body ends. (One launch: each starts three torch
    interpreters. A 2-rank run to its end, from the panel: tests/ui/test_pretrain_panel.py.)"""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    got, checkpoint = _relay(tmp_path, steps=400, stop_after=1)
    steps = [r for r in got if r["type"] == "step"]
    last = steps[-1]["step"] if steps else 0
    assert [r["step"] for r in steps] == list(range(1, last + 1)) and 1 <= last < 400, got[-5:]
    assert steps[-1]["tokens"] == last * 2 * 6 * MODEL["context_length"]  # global: 2 ranks x batch 6
    losses = single_process(400, until=last)
    want = [losses[s] for s in range(1, last + 1)]
    assert [r["train_loss"] for r in steps] == pytest.approx(want, abs=1e-5)
    kinds = [r["type"] for r in got]
    assert "start" in kinds and "stopped" in kinds and "done" not in kinds, got[-5:]
    assert kinds.count("exit") == 1 and kinds[-1] == "exit"
    assert checkpoint.is_file()
    assert any(r["type"] == "checkpoint" and r["path"] == str(checkpoint) for r in got)
