"""Training on several processes with PyTorch's own engine: torchrun, process groups, the rank's batch.

    with process_group():          # nccl on CUDA, gloo on CPU; a no-op outside torchrun
        for record in Trainer(...).run(): ...

The launcher is torchrun (`torch.distributed.run`): it starts one process per rank, sets RANK,
LOCAL_RANK, WORLD_SIZE and the rendezvous, and ends every rank as soon as one fails (so an error on
one rank stops the run instead of leaving the others waiting in a collective). `torchrun_argv(n, ...)`
is the one way the product builds that command, for `train --nproc N` and for the UI.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import timedelta

import torch

# A collective that waits longer than this on a dead peer raises instead of hanging for gloo's default 30 min.
COLLECTIVE_TIMEOUT = timedelta(seconds=120)


def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun (or anything that sets its environment variables)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def gpu_count() -> int:
    """How many CUDA GPUs this machine has (0 without CUDA): the Pretraining form offers ranks above 1."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def backend_for(device: str = "auto") -> str:
    """nccl when the ranks train on CUDA GPUs, gloo otherwise (CPU runs and the tests)."""
    if device.startswith("cpu") or not torch.cuda.is_available() or not torch.distributed.is_nccl_available():
        return "gloo"
    return "nccl"


class Group:
    """What `process_group` yields: whether a process group is up, and how the body ended."""

    def __init__(self, active: bool) -> None:
        self.active = active
        # Set by the body when every rank finished the same work (a run that completed): only then do the
        # ranks meet at a barrier before tearing the group down. A rank that failed must not wait there.
        self.ended_together = False

    def __bool__(self) -> bool:
        return self.active


@contextlib.contextmanager
def process_group(device: str = "auto"):
    """Initialise the process group from torchrun's environment, and always destroy it on the way out
    (normal end, Ctrl-C, error). Outside torchrun, or with an already initialised group, it does nothing.

    Yields a `Group`; a body that set `group.ended_together` has every rank meet before the teardown, so
    that no rank's transport threads go away while a peer still talks to them (seen here as a rank
    aborting with "terminate called without an active exception" after "done")."""
    import torch.distributed as dist

    if not launched_by_torchrun() or dist.is_initialized():
        yield Group(False)
        return
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # each rank takes its own GPU
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    group = Group(True)
    try:
        yield group
    finally:
        if group.ended_together:
            with contextlib.suppress(Exception):
                dist.barrier()
        with contextlib.suppress(Exception):  # a peer that died already must not turn a clean end into a hang
            dist.destroy_process_group()


def rank_slice(batch_size: int, rank: int) -> slice:
    """Rows of the global batch (world_size x batch_size rows) that `rank` trains on.

    Every rank draws the same global batch from the same generator and keeps its own rows, so W ranks x
    batch B see exactly the examples of one process x batch W*B, in the same order.
    """
    return slice(rank * batch_size, (rank + 1) * batch_size)


def torchrun_argv(nproc: int, args: list[str], *, nnodes: int = 1, rdzv_endpoint: str | None = None,
                  python: str | None = None) -> list[str]:
    """The command that runs `python -m explorer train ARGS` on `nproc` ranks per node through torchrun.

    One node: a standalone rendezvous on a free local port. Several nodes: every node runs the same
    command, meeting at the c10d rendezvous `rdzv_endpoint` (host:port of one of them).
    """
    if nproc < 1 or nnodes < 1:
        raise ValueError(f"nproc and nnodes must be at least 1, got {nproc} and {nnodes}")
    launch = [python or sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        launch.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise ValueError("several nodes need rdzv_endpoint (host:port of node 0)")
        launch += [f"--nnodes={nnodes}", "--rdzv-backend=c10d",
                   f"--rdzv-endpoint={rdzv_endpoint}", "--rdzv-id=explorer-train"]
    # Poll the workers often: a rank that fails brings the others down within a fraction of a second.
    launch += ["--monitor-interval=0.2", "-m", "explorer", "train", *args]
    return launch


__all__ = ["COLLECTIVE_TIMEOUT", "backend_for", "gpu_count", "launched_by_torchrun", "process_group",
           "rank_slice", "torchrun_argv"]
