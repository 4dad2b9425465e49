"""The pretraining loop as a generator of small records, knowing nothing about any UI.

    trainer = Trainer(GPTConfig(...), TrainSettings(...), corpus=None)
    for record in trainer.run():      # plain dicts of JSON-able values
        ...

Record types: "start" (effective config, device, parameter count), "step", "eval", "sample",
"checkpoint", "warning", "paused", "resumed", and one final "done" | "stopped" | "error".
`pause()`, `resume()` and `request_stop()` are thread-safe and meant to be called from another thread
(the generator blocks while paused). Everything the constructor takes is a plain dict or dataclass, so
a trainer can be built inside a spawned worker process.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import threading
import time
import traceback
import weakref
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import torch

from explorer.core import files
from explorer.core.gpt import checkpoint as ckpt_io
from explorer.core.gpt.checkpoint import CheckpointError
from explorer.core.gpt.data import (
    CorpusError,
    TokenData,
    default_corpus,
    fingerprint,
    load_corpus,
    tokenizer_from_dict,
    train_tokenizer,
)
from explorer.core.gpt.distributed import rank_slice
from explorer.core.gpt.health import BlockHealth
from explorer.core.gpt.histograms import FILE_NAME as HISTOGRAMS_FILE
from explorer.core.gpt.histograms import HistogramRecorder, from_record, thin, write_file
from explorer.core.gpt.model import (
    GPT,
    PRESETS,
    Block,
    ConfigError,
    GPTConfig,
    count_parameters,
    flops_per_token,
    lm_loss,
    mfu,
)
from explorer.core.gpt.part_process import PartProcess, keep_freed_memory, trainable
from explorer.core.gpt.spec import (  # noqa: F401 - the torch-free settings, re-exported for older imports
    BATCH_SPLITS,
    CPU_BF16_MIN_WIDTH,
    TRAIN_PRESETS,
    TrainSettings,
)
from explorer.core.speed import single_torch_thread

MAX_DEVICE_TOKENS = 200_000_000  # corpora up to this many tokens live on the GPU (1.6 GB of int64)

def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist (ConfigError)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError({"device": "CUDA was asked for but there is no CUDA GPU here; use --device cpu"})
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ConfigError({"device": "Apple MPS was asked for but is not available here; use --device cpu"})
    return device


def dist_rank() -> tuple[int, int]:
    """(rank, world size) under torch.distributed, (0, 1) in a plain single process."""
    if process_group_ready():
        import torch.distributed as dist

        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_group_ready() -> bool:
    """True when torch.distributed has an initialised process group (torchrun, or a test's own)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def distributed_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes its own GPU (LOCAL_RANK); other devices are unchanged."""
    if device.type != "cuda" or device.index is not None or not process_group_ready():
        return device
    local = int(os.environ.get("LOCAL_RANK", dist_rank()[0] % max(1, torch.cuda.device_count())))
    return torch.device("cuda", local)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over every rank (a no-op without a process group)."""
    if not process_group_ready():
        return values
    import torch.distributed as dist

    # NCCL reduces GPU tensors; gloo (CPU runs, tests) wants them on the host.
    host = dist.get_backend() != "nccl" and values.device.type != "cpu"
    reduced = values.cpu() if host else values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(values.device) if host else reduced


# dtype "auto" on a CPU: bf16 autocast only where a measurement at the trainer's start finds it at least
# this much faster than float32 (`probe_cpu_bf16`). The margin keeps a near tie (the probe's noise, the
# casts and parts of a step it leaves out) in float32, the precision the loss curve is compared with.
CPU_BF16_MIN_SPEEDUP = 1.1
# The probe's size: one block's forward and backward on as many of a part's rows as fit in about this
# many FLOPs (the baby GPT: 6 rows of 64 tokens, ~7 ms a pass in float32 on one core), and at least
# CPU_PROBE_MIN_TOKENS tokens, so a wide model's products keep a realistic shape.
CPU_PROBE_FLOPS = 500_000_000
CPU_PROBE_MIN_TOKENS = 64


class CpuBf16Probe:
    """What `probe_cpu_bf16` measured: the best seconds of a pass in each precision, and its shape."""

    def __init__(self, float32_s: float, bfloat16_s: float, rows: int, tokens: int, threads: int) -> None:
        self.float32_s, self.bfloat16_s = float32_s, bfloat16_s
        self.rows, self.tokens, self.threads = rows, tokens, threads

    @property
    def speedup(self) -> float:
        """float32's time over bf16's: above 1, bf16 autocast is the faster."""
        return self.float32_s / max(self.bfloat16_s, 1e-12)


def probe_cpu_bf16(config: GPTConfig, rows: int, threads: int, *, timer=time.perf_counter,
                   repeats: int = 3) -> CpuBf16Probe:
    """Time one of the model's transformer blocks, forward and backward, in float32 and under bf16 autocast.

    Whether bf16 pays on a CPU depends on more than its instruction set: AMX runs the baby GPT's products
    5-6x faster than float32, avx512_bf16 on an AMD EPYC (Zen 4) 2.3-2.5x faster, avx512_bf16 on a Xeon
    limited to it at half float32's speed, plain AVX-512 or AVX2 at a sixth; and around the products the
    casts, norms and attention (float32 on a CPU, `model.attend`) cost the same in both. So the trainer
    measures: a `Block` of the model's own width, heads and context on `rows` sequences (fewer, or a
    shorter context, past CPU_PROBE_FLOPS) with `threads` torch threads. One untimed pass in each
    precision (oneDNN builds its kernels at the first), then `repeats` interleaved pairs; each precision's
    best time counts (load only ever adds time). Tens of milliseconds for the baby GPT. The global RNG and
    the thread count are left as they were; `timer` is for tests."""
    E, H, T = config.emb_dim, config.hidden_dim, config.context_length
    per_token = 3 * (2 * E * 3 * E + 2 * E * E + 4 * E * H + 4 * T * E)
    budget = max(CPU_PROBE_MIN_TOKENS, CPU_PROBE_FLOPS // per_token)
    T = max(1, min(T, budget))
    rows = max(1, min(rows, budget // T))
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.set_num_threads(max(1, threads))
        try:
            torch.manual_seed(0)
            block = Block(config.replace(drop_rate=0.0))
            x = torch.randn(rows, T, E, requires_grad=True)

            def one(low: bool) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
                    out = block(x)
                out.sum().backward()
                block.zero_grad(set_to_none=True)
                x.grad = None

            times: dict[bool, list[float]] = {False: [], True: []}
            for low in (False, True):
                one(low)
            for i in range(max(1, repeats)):
                for low in ((False, True) if i % 2 == 0 else (True, False)):
                    t0 = timer()
                    one(low)
                    times[low].append(timer() - t0)
        finally:
            torch.set_num_threads(before)
    return CpuBf16Probe(min(times[False]), min(times[True]), rows, rows * T, max(1, threads))


# What `cpu_bf16_decision` measured, once per process for each model shape.
CPU_BF16_PROBES: dict[tuple, CpuBf16Probe] = {}


def cpu_bf16_decision(config: GPTConfig, rows: int, agree=None) -> tuple[bool, str]:
    """Whether dtype "auto" trains this model on this CPU in bf16 autocast, and why (the start line note).

    Not below CPU_BF16_MIN_WIDTH (there the casts cost about what faster products save); else from
    `probe_cpu_bf16` on `rows` sequences (one part of a split batch, or the whole batch) and one thread,
    measured once per process for each shape, and bf16 only when it is at least CPU_BF16_MIN_SPEEDUP times
    faster. One thread, also for a run that spreads its kernels over several: the question is the
    kernels' precision, and a probe on two threads of a loaded 2-core machine said anything from 0.35x to
    4.4x in five tries (load 6), where one thread said 1.53-1.59x (1.41-1.46x on two threads, quiet).
    `agree(speedup) -> speedup` lets ranks of a distributed run settle on one figure (their mean), so
    that they all train in one precision."""
    if config.emb_dim < CPU_BF16_MIN_WIDTH:
        return False, (f"float32: {config.emb_dim} wide, under the {CPU_BF16_MIN_WIDTH} from which bf16 "
                       f"products can pay on a CPU")
    key = (config.emb_dim, config.hidden_dim, config.n_heads, config.qkv_bias, config.context_length,
           rows, os.environ.get("ONEDNN_MAX_CPU_ISA", ""))
    probe = CPU_BF16_PROBES.get(key)
    if probe is None:
        probe = CPU_BF16_PROBES[key] = probe_cpu_bf16(config, rows, 1)
    speedup = agree(probe.speedup) if agree is not None else probe.speedup
    fast = speedup >= CPU_BF16_MIN_SPEEDUP
    measured = (f"a block's forward and backward ({probe.rows} x {probe.tokens // probe.rows} tokens, "
                f"{probe.threads} thread{'s' if probe.threads > 1 else ''}) took "
                f"{probe.bfloat16_s * 1e3:.1f} ms in bf16 against {probe.float32_s * 1e3:.1f} ms in float32")
    if fast:
        return True, f"bf16 autocast: {speedup:.2f}x float32's speed on this CPU ({measured})"
    return False, (f"float32: bf16 measured {speedup:.2f}x float32's speed on this CPU, under the "
                   f"{CPU_BF16_MIN_SPEEDUP:.2f}x it must reach ({measured})")


# Steps a run must have left for torch.compile to pay back on a CPU. Measured on the baby GPT (4 layers,
# 128 wide, batch 12) with one thread on a 2-core AMD EPYC (AVX2) under load: compiling took 108 s of wall
# time (gcc in subprocesses), and a compiled step took 0-20% less CPU time than an eager one (median ~5%,
# ~8 ms of ~150 ms): it pays back after some 10,000 steps. Matrix products, which inductor leaves to the
# same BLAS, are most of a CPU step; what it fuses (norms, GELU, adds) is the rest.
CPU_COMPILE_MIN_STEPS = 10_000


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile would build CPU kernels with, if one is on the PATH (else None)."""
    import shutil

    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def compile_decision(settings: TrainSettings, device: torch.device, step: int = 0) -> tuple[bool, str]:
    """Whether the trainer torch.compiles the loss, and the reason the start line gives ("" when not asked).

    Asked for (`compile`), it compiles unless it cannot pay back: on a CPU a run with fewer than
    CPU_COMPILE_MIN_STEPS steps left, or no C++ compiler to build the kernels with. GPUs compile always
    (not measured here: their steps are short, but so is what compiling saves; the user asked)."""
    if not settings.compile:
        return False, ""
    left = max(0, settings.steps - step)
    if device.type == "cpu":
        if cpp_compiler() is None:
            return False, ("torch.compile off: no C++ compiler on the PATH (g++, c++ or clang++) to build "
                           "its CPU kernels; training without it")
        if left < CPU_COMPILE_MIN_STEPS:
            return False, (f"torch.compile off: {left:,} steps do not pay back its compile on a CPU (a "
                           f"minute or more, for ~5% a step: at least {CPU_COMPILE_MIN_STEPS:,} steps)")
    return True, f"torch.compile on for {left:,} steps (the first steps compile)"


# "auto" splits a batch over processes when its training step is at least this many FLOPs (forward and
# backward, `flops_per_token` x tokens): below it, a step is over in a few milliseconds and starting a
# helper process (a second or two) and meeting it every step do not pay. nanoGPT's baby GPT at batch 12
# does 4 GFLOPs a step; the tests' micro models well under 0.1.
AUTO_SPLIT_MIN_FLOPS = 500_000_000
# ... and up to this many parameters: larger products split well over threads, and every helper process
# holds the weights and their gradients once more in shared memory. (Not measured above the baby GPT.)
AUTO_SPLIT_MAX_PARAMETERS = 5_000_000
# ... into at most this many parts: each helper process holds its own torch (about 260 MB resident for
# the baby GPT, measured), and parts of one or two rows gain little. (Measured only with 2 parts.)
AUTO_SPLIT_MAX_PARTS = 4


def usable_cores() -> int:
    """CPU cores this process may train on: its affinity where the system tells it (else all), at most
    the number `keep_cores_for_training` set (the app's training process leaves one to the window)."""
    if hasattr(os, "sched_getaffinity"):
        cores = max(1, len(os.sched_getaffinity(0)))
    else:
        cores = max(1, os.cpu_count() or 1)
    return min(cores, _CORE_LIMIT[0]) if _CORE_LIMIT[0] else cores


_CORE_LIMIT = [0]  # 0: no limit (keep_cores_for_training)


def keep_cores_for_training(cores: int | None) -> None:
    """Let a training run in this process use at most `cores` cores (None: all), helper processes of the
    batch split included: the app's training process keeps one core of the machine free for the window
    (on two cores its batches are then not split: two busy processes and the GUI would stall each other)."""
    _CORE_LIMIT[0] = max(1, int(cores)) if cores else 0


def cpu_batch_parts(settings: TrainSettings, config: GPTConfig, device: torch.device, *,
                    distributed: bool = False) -> int:
    """Into how many parts a training micro-batch is split on a CPU, one core each (1: no split).

    Each micro-batch of B sequences is cut into parts; each part's forward and backward run on one core
    with one-thread kernels (`cpu_batch_mode` says where), and their gradients are summed in part order
    (scaled so the sum is the whole batch's mean, and a seeded run repeats exactly). The arithmetic is
    the same as one pass over the batch, up to rounding. What changes is how the cores share the work:
    instead of every matrix product and every small element-wise kernel being cut between the threads,
    with a fork and a join each (hundreds a step), each core runs whole kernels on its own rows, and the
    cores meet once a step. Small products (the baby GPT's are 768 x 128 by 128 x 384) split poorly, and
    every join waits for the slowest thread, which on a busy machine may not be running at all.

    `batch_split`: "threads" cuts min(torch threads, B) parts; "processes" min(cores, B), or
    min(`threads`, B) when the settings name a thread count (the process's own torch thread count is
    not the measure: each part runs one thread, and the app's training process keeps its intra-op
    threads one fewer than the cores, for the window); "auto" is "processes" for a model of at most
    AUTO_SPLIT_MAX_PARAMETERS whose step does at least AUTO_SPLIT_MIN_FLOPS, in AUTO_SPLIT_MAX_PARTS parts
    at most, else no split.
    Never split: CUDA/MPS, torch.distributed ranks, torch.compile, activation checkpointing, and dropout
    (the parts would draw its masks from different generators: no longer the unsplit run's numbers).
    """
    split = settings.batch_split
    if split == "off" or device.type != "cpu" or distributed or settings.compile:
        return 1
    if settings.checkpoint_blocks or config.drop_rate > 0:
        return 1
    cores = torch.get_num_threads() if split == "threads" else settings.threads or usable_cores()
    if split == "auto":
        flops = flops_per_token(config) * settings.batch_size * config.context_length
        if flops < AUTO_SPLIT_MIN_FLOPS or count_parameters(config)["total"] > AUTO_SPLIT_MAX_PARAMETERS:
            return 1
        cores = min(cores, AUTO_SPLIT_MAX_PARTS)
    return max(1, min(cores, settings.batch_size))


def cpu_batch_mode(settings: TrainSettings, parts: int) -> str:
    """Where the parts of a split batch run: "processes" (the caller's part here, each other part in a
    helper process, `part_process`), "threads" (one thread of this process each), "off" (one part).

    "auto" means processes: two threads of one process still take turns at the interpreter lock for the
    Python side of every layer and meet at every part's end, where processes share only the weights'
    memory. Measured with bench/train_bench.py (README, "Precision and speed")."""
    if parts <= 1:
        return "off"
    return "threads" if settings.batch_split == "threads" else "processes"


@torch.no_grad()
def add_part_gradients(params: list, results: list) -> torch.Tensor:
    """Add each part's gradients (`results`: (loss share, gradients per parameter or None) per part, in part
    order) into the parameters' .grad in that order, and return the summed loss: the same sums every run,
    whichever part finished first. A part's gradients may be views of a helper's shared block (read here,
    never kept): the sum is always a new tensor."""
    for i, param in enumerate(params):
        found = [part[i] for _, part in results if part[i] is not None]
        if not found:
            continue
        # Added one part after the other, into one new tensor (stacking them first cost ~2 ms a step).
        total = torch.add(found[0], found[1]) if len(found) > 1 else found[0].clone()
        for more in found[2:]:
            total += more
        if param.grad is None:
            param.grad = total
        else:
            param.grad += total
    return torch.stack([loss for loss, _ in results]).sum()


def one_thread_pool(workers: int) -> ThreadPoolExecutor:
    """`workers` threads whose torch kernels each run on one thread; the caller's thread count is kept.

    torch.set_num_threads sets the calling thread's OpenMP count and also a process-wide default that
    threads not yet started take; so every worker first takes its own count, then sets 1, all of them
    before the caller puts the process-wide default back (a barrier makes sure none is left to start).
    """
    caller = torch.get_num_threads()
    ready = threading.Barrier(workers)

    def start() -> None:
        torch.get_num_threads()  # this thread's count is read now, not at its first kernel
        torch.set_num_threads(1)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="batch-part", initializer=start)
    for future in [pool.submit(ready.wait, 60) for _ in range(workers)]:
        future.result()
    torch.set_num_threads(caller)
    return pool


def close_part_processes(helpers: list) -> None:
    """End every helper process in `helpers` and empty the list (what `Trainer.close` does)."""
    while helpers:
        helpers.pop().close()


# Dense bf16 tensor-core peaks (FLOP/s) of common GPUs, matched against torch.cuda.get_device_name.
GPU_BF16_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
                  "A10": 125e12, "4090": 165e12, "3090": 71e12}


def peak_flops(device: torch.device, bf16: bool, cores: int | None = None) -> float | None:
    """An estimate of the device's peak FLOP/s for the MFU figure; None when unknown.

    CPU: cores in use (`cores`, else the torch threads) x clock (cpu MHz of /proc/cpuinfo, else 2.5 GHz)
    x FLOPs per cycle per core: fp32 with AVX-512 two FMA units x 16 lanes x 2 = 64 (AVX2: 32); bf16
    with avx512_bf16 twice that, with AMX 1024. GPUs: the dense bf16 figure of the table above, also for
    fp32 runs (the ceiling the GPU could reach). A rough estimate: MFU compares runs on one machine, not
    across machines.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in GPU_BF16_PEAKS.items() if key in name), None)
    if device.type != "cpu":
        return None
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        info = ""
    lines = info.splitlines()
    mhz = next((float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")), 2500.0)
    flags = set(next((line.split(":")[1].split() for line in lines if line.startswith("flags")), []))
    per_cycle = 64 if "avx512f" in flags else 32
    if bf16:
        per_cycle = 1024 if "amx_bf16" in flags else 2 * per_cycle if "avx512_bf16" in flags else per_cycle
    return (cores or torch.get_num_threads()) * mhz * 1e6 * per_cycle


class Trainer:
    """Owns tokenizer, data, model and optimizer, and trains them step by step through `run()`."""

    def __init__(self, config: GPTConfig | dict, settings: TrainSettings | dict | None = None,
                 corpus: str | None = None, *, tokenizer=None):
        """Build everything; ConfigError / CorpusError (both ValueError) explain bad input."""
        config = GPTConfig.from_dict(config) if isinstance(config, dict) else config
        settings = TrainSettings.from_dict(settings) if isinstance(settings, dict) else settings
        self.settings = (settings or TrainSettings()).validate()
        config.validate()
        self.rank, self.world_size = dist_rank()
        self.is_main = self.rank == 0  # only rank 0 yields step/sample records and writes files
        # With a process group (torchrun), gradients are averaged by DistributedDataParallel, losses by
        # all_reduce, and every rank agrees when to stop; without one, none of that code runs.
        self.distributed = process_group_ready()
        self.device = distributed_device(resolve_device(self.settings.device))
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        text, self.corpus_source = self._corpus_text(corpus)
        self.corpus_fingerprint = fingerprint(text)
        self.tokenizer = tokenizer or train_tokenizer(self.settings.tokenizer, text, config.vocab_size)
        # The tokenizer decides how many distinct tokens exist; the model's tables follow it.
        self.config = config.replace(vocab_size=self.tokenizer.vocab_size)
        self.data = TokenData.from_text(text, self.tokenizer, self.settings.val_fraction,
                                        config.context_length)
        if self.device.type != "cpu" and len(self.data.train) < MAX_DEVICE_TOKENS:
            self.data = self.data.to(self.device)
        torch.manual_seed(self.settings.seed)
        self.model = GPT(self.config).to(self.device)
        self.model.set_checkpointing(self.settings.checkpoint_blocks)
        self.optimizer = self._make_optimizer()
        self.health = BlockHealth(self.model.blocks, self.optimizer, self.settings, lambda: self.step)
        self.hist = HistogramRecorder(self.model.blocks, self.settings, enabled=self.is_main)
        self.histograms: list = []  # the run's StepHistograms (written beside metrics.csv)
        # Every rank draws the same global batch (world_size x batch_size) and trains on its own rows, so
        # W ranks x batch B see the examples of 1 process x batch W*B, and any rank's stream resumes all.
        self.batch_generator = torch.Generator().manual_seed(self.settings.seed)
        self.ddp_model = None
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids)
            torch.manual_seed(self.settings.seed + self.rank)  # different dropout masks per rank
        # From the run's steps (a resumed run decides from all of them: its step is not known yet).
        self.compiled, self.compile_note = compile_decision(self.settings, self.device)
        self.batch_parts = cpu_batch_parts(self.settings.replace(compile=self.compiled), self.config,
                                           self.device, distributed=self.distributed)
        self.batch_mode = cpu_batch_mode(self.settings, self.batch_parts)
        # After the split: on a CPU, "auto" measures bf16 against float32 as the step will run (per part).
        self.autocast_dtype, self.dtype_note = self._autocast_dtype()
        self._part_pool: ThreadPoolExecutor | None = None  # made at the first split step (threads)
        self._part_processes: list[PartProcess] = []  # started at the first split step (processes)
        # The helper processes end with the trainer (`close`), or when it is collected, or with this process.
        self._closer = weakref.finalize(self, close_part_processes, self._part_processes)
        # Per rank, an estimate; a batch split over processes trains on one core per part, whatever this
        # process's own thread count (the app's training process keeps it one below the cores).
        cores = self.batch_parts if self.batch_mode == "processes" else None
        self.peak_flops = peak_flops(self.device, self.autocast_dtype is not None, cores)
        self._loss_fn = self._eager_loss
        # torch.compile fails late (at the first call) when no compiler works; the loop then falls back.
        self._compile_pending = self.compiled
        if self.compiled:
            self._loss_fn = torch.compile(self._eager_loss)
        self.warnings: list[str] = []  # told once, right after the "start" record
        self._updating = False  # inside the optimizer update of a step (see write_outputs_after_interrupt)
        self._stop_agreed = False  # distributed: some rank asked to stop (every rank learns it together)
        self.step = 0
        self.tokens = 0
        self.history: list[dict] = []  # step and eval records, for CSV export and checkpoints
        # Where `checkpoint_every` rewrites the checkpoint: out_dir's, or one the caller sets (the GUI's
        # training process points it at the run's folder); None: nowhere.
        out = self.settings.out_dir
        self.checkpoint_target: Path | None = Path(out) / "checkpoint.safetensors" if out else None
        self._stop = threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()

    # -- control, callable from any thread ------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the current step; the generator then yields a "stopped" record."""
        self._stop.set()
        self._unpaused.set()

    def pause(self) -> None:
        """Block the loop before its next step until `resume()` or `request_stop()`."""
        self._unpaused.clear()

    def resume(self) -> None:
        """Continue a paused loop."""
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        """Whether a pause was requested and not yet lifted."""
        return not self._unpaused.is_set()

    @property
    def updating(self) -> bool:
        """True inside an optimizer update: an interrupt there leaves the weights half-changed."""
        return self._updating

    @property
    def part_process_ids(self) -> list[int]:
        """Process ids of the helper processes now running (batch split over processes), for measuring."""
        return [p.pid for p in self._part_processes if p.pid is not None]

    def close(self) -> None:
        """End the helper processes of a batch split over processes (a later step starts them again)."""
        close_part_processes(self._part_processes)

    # -- the loop ---------------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine to min_lr."""
        s = self.settings
        min_lr = s.lr / 10 if s.min_lr is None else s.min_lr
        if step < s.warmup_steps:
            return s.lr * (step + 1) / s.warmup_steps
        progress = min(1.0, (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps))
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (s.lr - min_lr)

    def run(self, until: int | None = None):
        """Train up to `settings.steps` (or stop after step `until`), yielding records as it goes."""
        s = self.settings
        yield self._start_record()
        for message in self.warnings:
            yield {"type": "warning", "step": self.step, "message": message}
        self.warnings = []
        try:
            if self.step == 0 and s.eval_every:
                yield self._eval_record()
            tick = time.perf_counter()
            window_tokens = 0
            while self.step < s.steps:
                # Ranks must leave the loop at the same step, or the others wait forever in a collective.
                stop = self._stop_agreed if self.distributed else self._stop.is_set()
                if stop or (until is not None and self.step >= until):
                    yield self._finish("stopped", f"stopped at step {self.step}")
                    return
                if not self._unpaused.is_set():
                    yield {"type": "paused", "step": self.step}
                    self._unpaused.wait()
                    yield {"type": "resumed", "step": self.step}
                    tick, window_tokens = time.perf_counter(), 0
                    continue
                step_started = time.perf_counter()
                try:
                    loss, grad_norm = self._train_step()
                except torch.OutOfMemoryError:
                    raise
                except Exception as exc:
                    if not self._compile_pending:
                        raise
                    self._compile_pending = False
                    self._loss_fn = self._eager_loss
                    self.optimizer.zero_grad(set_to_none=True)
                    yield {"type": "warning", "step": self.step,
                           "message": f"torch.compile failed ({type(exc).__name__}); training without it"}
                    continue
                self._compile_pending = False
                hist = self.hist.take()
                if hist is not None:
                    self._keep_histograms(hist)
                    yield hist
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    yield self._nonfinite_record(loss, grad_norm)
                    return
                window_tokens += self._step_tokens()
                if self.step % s.log_every == 0 or self.step == s.steps:
                    now = time.perf_counter()
                    speed = window_tokens / max(now - tick, 1e-9)  # tokens of every rank: global
                    ranks = self.world_size
                    record = {"type": "step", "step": self.step, "tokens": self.tokens, "train_loss": loss,
                              "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                              "tokens_per_s": speed,
                              "mfu": mfu(speed, self.config, self.peak_flops and self.peak_flops * ranks),
                              "step_s": now - step_started, **self._peak_memory(),
                              **self.health.fields(self.step, grad_norm)}
                    self.history.append(record)
                    if self.is_main:
                        yield record
                    tick, window_tokens = time.perf_counter(), 0
                extra = list(self._periodic_records())
                for record in extra:
                    yield record
                if extra:  # evaluation, sampling and saving are not training throughput
                    tick, window_tokens = time.perf_counter(), 0
            if s.eval_every and not (self.history and self.history[-1]["type"] == "eval"):
                yield self._eval_record()
            yield self._finish("done", f"finished {self.step} steps")
        except torch.OutOfMemoryError:
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            yield {"type": "error", "kind": "oom", "step": self.step,
                   "message": (f"The {self.device.type.upper()} ran out of memory at step {self.step + 1}. "
                               f"Try a smaller batch_size or context_length (or fewer layers / a narrower "
                               f"model), or use grad_accum_steps to keep the effective batch.")}
        except (CorpusError, ConfigError, CheckpointError, OSError) as exc:
            yield {"type": "error", "kind": "input", "step": self.step, "message": str(exc)}
        except Exception as exc:  # the loop must end with a record, never take a UI down with it
            yield {"type": "error", "kind": "exception", "step": self.step,
                   "message": f"training failed at step {self.step + 1}: {type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=8)}

    def _train_step(self) -> tuple[float, float]:
        if self.batch_mode == "processes":
            # This process computes one part of the batch on one core while the helpers compute theirs;
            # the clip and the optimizer update (a few dozen kernels) then run on that core too.
            with single_torch_thread():
                return self._train_step_here()
        return self._train_step_here()

    def _train_step_here(self) -> tuple[float, float]:
        s = self.settings
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.device)
        for micro in range(s.grad_accum_steps):
            x, y = self.data.batch("train", s.batch_size * self.world_size, self.config.context_length,
                                   self.batch_generator, self.device)
            if self.world_size > 1:
                rows = rank_slice(s.batch_size, self.rank)
                x, y = x[rows], y[rows]
            if micro == 0:
                self.hist.observe_batch(self.step + 1, self.model, x, self._autocast)
            # DDP averages gradients over ranks once per optimizer step: on the last micro-batch only.
            hold = self.ddp_model is not None and micro < s.grad_accum_steps - 1
            with self.ddp_model.no_sync() if hold else contextlib.nullcontext():
                total += self._forward_backward(x, y, s.grad_accum_steps)
        self.hist.observe_gradients(self.step + 1)
        clip = s.grad_clip if s.grad_clip > 0 else float("inf")
        # foreach on a CPU too (torch's default there is a Python loop of a norm and a multiply per tensor):
        # the same numbers, in fewer kernels.
        foreach = True if self.device.type == "cpu" else None
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip, foreach=foreach)
        stats = [total / s.grad_accum_steps, grad_norm.float()]
        if self.distributed:
            # Summed over ranks: the mean loss and norm, so that every rank takes the same decisions
            # below, and whether any rank was asked to stop, so that all stop after this same step.
            stats.append(torch.tensor(float(self._stop.is_set()), device=self.device))
        # One host-device sync per step, for the numbers the record and the NaN check need.
        stacked = torch.stack(stats)
        values = (all_reduce_sum(stacked) if self.distributed else stacked).tolist()
        ranks = self.world_size if self.distributed else 1
        loss_value, norm_value = values[0] / ranks, values[1] / ranks
        if self.distributed and values[2] > 0:
            self._stop_agreed = True
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            # A KeyboardInterrupt between these lines would leave weights and step counter disagreeing:
            # `write_outputs_after_interrupt` then refuses to save (not reset in a `finally` on purpose).
            self._updating = True
            self.optimizer.step()
            self.step += 1
            self.tokens += self._step_tokens()
            self._updating = False
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value, norm_value

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor, accum: int) -> torch.Tensor:
        """Add the gradient of the micro-batch's mean loss / `accum`; returns that loss (detached).

        Split into `batch_parts` parts on as many threads (cpu_batch_parts), else one pass here."""
        if self.batch_parts <= 1:
            with self._autocast():
                loss = self._loss_fn(x, y)
            (loss / accum).backward()
            return loss.detach()
        if self.batch_mode == "processes":
            return self._forward_backward_processes(x, y, accum)
        if self._part_pool is None:
            self._part_pool = one_thread_pool(self.batch_parts)
        parts = list(zip(x.tensor_split(self.batch_parts), y.tensor_split(self.batch_parts), strict=True))
        params = trainable(self.model)
        futures = [self._part_pool.submit(self._part_forward_backward, xp, yp, params,
                                          len(xp) / len(x) / accum, len(xp) / len(x)) for xp, yp in parts]
        wait(futures)  # every part done before an error of one is raised
        results = [f.result() for f in futures]
        # The parts' gradients are added here in part order, not as they finish: the same sum every run.
        return add_part_gradients(params, results)

    def _helpers(self) -> list[PartProcess]:
        """The helper processes, one per part after the first, started at the first split step."""
        if not self._part_processes:
            keep_freed_memory()  # as the helpers do (part_process.MALLOC_KEEP): no page faults every step
            rows = -(-self.settings.batch_size // self.batch_parts)  # the largest part's rows
            for _ in range(self.batch_parts - 1):
                self._part_processes.append(PartProcess(self.model, rows, self.autocast_dtype))
        return self._part_processes

    def _over_processes(self, x: torch.Tensor, y: torch.Tensor, params: list, start, here, finish) -> list:
        """Part 0 of the batch by `here(x part, y part, share)` in this process while part i is computed by
        helper i (`start(helper, x part, y part, share)`, started before part 0 so they all run at once,
        then `finish(helper)`); the results in part order. A helper that fails or ends, or an interruption
        while they compute (their answers would then come out of turn), closes them: the next step starts
        new ones."""
        helpers = self._helpers()
        parts = list(zip(x.tensor_split(self.batch_parts), y.tensor_split(self.batch_parts), strict=True))
        started = []
        try:
            for helper, (xp, yp) in zip(helpers, parts[1:], strict=True):
                helper.send_weights(params)
                start(helper, xp, yp, len(xp) / len(x))
                started.append(helper)
            results = [here(*parts[0], len(parts[0][0]) / len(x))]
            return results + [finish(helper) for helper in started]
        except BaseException:
            self.close()
            raise

    def _forward_backward_processes(self, x: torch.Tensor, y: torch.Tensor, accum: int) -> torch.Tensor:
        # The parts' gradients are added in part order, as with threads: the same sums, so the same run.
        params = trainable(self.model)
        results = self._over_processes(
            x, y, params,
            lambda helper, xp, yp, share: helper.start_grad(xp, yp, share / accum, share),
            lambda xp, yp, share: self._part_forward_backward(xp, yp, params, share / accum, share),
            lambda helper: helper.finish_grad(params))
        return add_part_gradients(params, results)

    def _part_forward_backward(self, x: torch.Tensor, y: torch.Tensor, params: list, scale: float,
                               weight: float) -> tuple[torch.Tensor, tuple]:
        # One part on a pool thread: the gradients of its loss x `scale`, and its loss x `weight` (its
        # share). Autocast is per thread, so it is entered here, in the thread that runs the forward.
        with self._autocast():
            loss = self._loss_fn(x, y)
        grads = torch.autograd.grad(loss * scale, params, allow_unused=True)
        return loss.detach() * weight, grads

    def _keep_histograms(self, record: dict) -> None:
        entry = from_record(record)
        if entry is not None:
            self.histograms = thin([*self.histograms, entry])

    def _peak_memory(self) -> dict:
        """The step record's peak memory: what the allocator held at most since the last record on
        CUDA (then reset), the process's peak resident size elsewhere (it never falls)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return {"peak_memory": int(peak), "peak_memory_kind": "allocated"}
        try:
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except (ImportError, OSError):  # no resource module on Windows
            return {"peak_memory": None, "peak_memory_kind": None}
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return {"peak_memory": int(rss) * scale, "peak_memory_kind": "rss"}

    def _step_tokens(self) -> int:
        s = self.settings
        return s.batch_size * self.config.context_length * s.grad_accum_steps * self.world_size

    def _periodic_records(self):
        s = self.settings
        if s.eval_every and self.step % s.eval_every == 0:
            yield self._eval_record()
        if s.sample_every and self.step % s.sample_every == 0 and self.is_main:
            yield {"type": "sample", "step": self.step, "text": self.sample()}
        if s.save_every and s.out_dir and self.step % s.save_every == 0 and self.step < s.steps:
            path = self.save_checkpoint(Path(s.out_dir) / f"step-{self.step}.safetensors")
            if path is not None:
                yield {"type": "checkpoint", "step": self.step, "path": str(path)}
        every, target = s.checkpoint_every, self.checkpoint_target
        if every and target is not None and self.step % every == 0 and self.step < s.steps:
            path = self.save_checkpoint(target)
            if path is not None:
                yield {"type": "checkpoint", "step": self.step, "path": str(path)}

    # -- evaluation and sampling ---------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over `eval_batches` fixed batches of each split: {"train_loss", "val_loss"}."""
        s = self.settings
        # A private generator re-seeded every time: the same batches each evaluation, so the curve
        # shows the model changing rather than batch noise, and training's RNG is untouched. Ranks
        # measure different batches and average them (every rank gets the same figures).
        gen = torch.Generator().manual_seed(s.seed + 10_007 + 7919 * self.rank)
        self.model.eval()
        try:
            out = {}
            for split in ("train", "val"):
                total = torch.zeros((), device=self.device)
                for _ in range(s.eval_batches):
                    x, y = self.data.batch(split, s.batch_size, self.config.context_length, gen, self.device)
                    total += self._eval_loss(x, y)
                out[f"{split}_loss"] = total / s.eval_batches
            losses = torch.stack([out["train_loss"], out["val_loss"]])
            if self.distributed:
                losses = all_reduce_sum(losses) / self.world_size
            train_loss, val_loss = losses.tolist()
            return {"train_loss": train_loss, "val_loss": val_loss}
        finally:
            self.model.train()

    def sample(self, prompt: str | None = None, max_new_tokens: int | None = None,
               seed: int | None = None) -> str:
        """Text generated from `prompt` (default: the settings' prompt), seeded so it is reproducible."""
        s = self.settings
        prompt = s.sample_prompt if prompt is None else prompt
        ids = self.tokenizer.encode(prompt or "\n") or [0]
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        gen = torch.Generator().manual_seed(s.seed + self.step if seed is None else seed)
        out = self.model.generate(idx, max_new_tokens or s.sample_tokens, temperature=s.temperature,
                                  top_k=s.top_k or None, generator=gen)
        return (prompt or "") + self.tokenizer.decode(out[0, len(ids):].tolist())

    def _eval_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss of one evaluation batch (float32), split over the part threads like training."""
        if self.batch_parts <= 1:
            with self._autocast():
                return self.model.loss(x, y).float()
        if self.batch_mode == "processes":
            with single_torch_thread():
                return self._eval_loss_processes(x, y)
        if self._part_pool is None:
            self._part_pool = one_thread_pool(self.batch_parts)
        parts = zip(x.tensor_split(self.batch_parts), y.tensor_split(self.batch_parts), strict=True)
        futures = [self._part_pool.submit(self._part_eval_loss, xp, yp, len(xp) / len(x)) for xp, yp in parts]
        wait(futures)
        return torch.stack([f.result() for f in futures]).sum()

    def _eval_loss_processes(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = trainable(self.model)
        losses = self._over_processes(
            x, y, params, lambda helper, xp, yp, share: helper.start_loss(xp, yp, share),
            self._part_eval_loss, lambda helper: helper.finish_loss())
        return torch.stack(losses).sum()

    @torch.no_grad()  # grad mode, like autocast, belongs to the thread
    def _part_eval_loss(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        with self._autocast():
            return self.model.loss(x, y).float() * weight

    def _eval_record(self) -> dict:
        record = {"type": "eval", "step": self.step, "tokens": self.tokens, **self.evaluate()}
        self.history.append(record)
        return record

    # -- checkpoints and metrics -----------------------------------------------------------------

    def save_checkpoint(self, path: str | Path) -> Path | None:
        """Write model, optimizer, step, RNG, tokenizer and history atomically; None on non-main ranks."""
        if not self.is_main:
            return None
        rng = {"torch": torch.get_rng_state(), "batch": self.batch_generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return ckpt_io.write_checkpoint(
            path, config=self.config, settings=self.settings.to_dict(), tokenizer=self.tokenizer.to_dict(),
            step=self.step, tokens=self.tokens, model=self.model, optimizer=self.optimizer, rng=rng,
            history=self.history,
            extra={"corpus": self.corpus_source, "corpus_fingerprint": self.corpus_fingerprint},
        )

    @classmethod
    def load_checkpoint(cls, path: str | Path, corpus: str | None = None,
                        settings: dict | None = None) -> Trainer:
        """A trainer continuing from a checkpoint; `settings` overrides saved settings (e.g. more steps).

        The corpus is the one the checkpoint names (built-in or its file) unless `corpus` is given.
        CheckpointError for a file that is missing, corrupt, truncated, mismatched or unsafe.
        """
        ck = ckpt_io.read_checkpoint(path)
        saved = dict(ck.settings)
        saved.update(settings or {})
        try:
            train_settings = TrainSettings.from_dict(saved).validate()
            tokenizer = tokenizer_from_dict(ck.tokenizer)
        except (ConfigError, CorpusError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        if corpus is None and ck.extra.get("corpus") == "text" and not train_settings.corpus_path:
            raise CheckpointError(f"{path} was trained on text that is not saved with it; pass the corpus")
        trainer = cls(ck.config, train_settings, corpus, tokenizer=tokenizer)
        trainer._apply(ck, path)
        if ck.extra.get("corpus_fingerprint") not in (None, trainer.corpus_fingerprint):
            trainer.warnings.append("the corpus is not the one this checkpoint was trained on: losses "
                                    "before and after the resume are not comparable")
        return trainer

    def load_state(self, path: str | Path) -> None:
        """Load a checkpoint of the same model into this trainer; on any error nothing changes."""
        ck = ckpt_io.read_checkpoint(path)
        if ck.config != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in ck.config.to_dict().items()
                    if getattr(self.config, k) != v}
            shown = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items())
            raise CheckpointError(f"{path} is for a different model ({shown})")
        self._apply(ck, path)

    def _apply(self, ck: ckpt_io.Checkpoint, path) -> None:
        # Everything is checked before anything is copied, so a bad checkpoint changes nothing.
        if ck.optimizer_state is not None:
            saved = [len(g["params"]) for g in ck.optimizer_state["param_groups"]]
            ours = [len(g["params"]) for g in self.optimizer.param_groups]
            if saved != ours:
                raise CheckpointError(f"{path}: its optimizer state ({saved} tensors per group) does not "
                                      f"match this model's parameters ({ours})")
        try:
            with torch.no_grad():
                ckpt_io.load_model_state(self.model, ck.model_state)
            if ck.optimizer_state is not None:
                self.optimizer.load_state_dict(ck.optimizer_state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path} does not fit this model: {exc}") from None
        if "torch" in ck.rng:
            torch.set_rng_state(ck.rng["torch"])
        if "batch" in ck.rng:
            self.batch_generator.set_state(ck.rng["batch"])
        if "cuda" in ck.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck.rng["cuda"], self.device)
        self.step, self.tokens, self.history = ck.step, ck.tokens, list(ck.history)

    def write_outputs_after_interrupt(self) -> dict:
        """After a KeyboardInterrupt escaped `run()`: write the final checkpoint and metrics as a stop would.

        Returns {"checkpoint_path", "metrics_path"} (empty without out_dir or on other ranks). Nothing is
        written when the interrupt hit an optimizer update, whose weights may be half-changed: then
        {"unsafe": True}, and the last periodic checkpoint stays the latest.
        """
        if self._updating:
            return {"unsafe": True}
        return self._write_outputs(final_checkpoint=True)

    def export_csv(self, path: str | Path) -> Path:
        """Write the metrics history (one row per logged step) to a CSV file; returns its path."""
        return write_metrics_csv(self.history, path)

    # -- helpers -------------------------------------------------------------------------------------

    def _corpus_text(self, corpus: str | None) -> tuple[str, str]:
        if corpus is not None:
            if not isinstance(corpus, str) or not corpus.strip():
                raise CorpusError("the corpus text is empty")
            return corpus, "text"
        if self.settings.corpus_path:
            return load_corpus(self.settings.corpus_path), "file"
        return default_corpus(), "default"

    def _eager_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.ddp_model is None:
            return self.model.loss(x, y)
        return lm_loss(self.ddp_model(x), y)  # through DDP's forward, so its gradient hooks run

    def _make_optimizer(self) -> torch.optim.AdamW:
        params = [p for p in self.model.parameters() if p.requires_grad]
        # Decay only matrices and embeddings: decaying biases and LayerNorm gains only hurts.
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.settings.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        s = self.settings
        impl = s.optimizer_impl
        if impl == "auto":
            impl = "fused" if self.device.type in ("cuda", "cpu") else "foreach"
        kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
        return torch.optim.AdamW(groups, lr=s.lr, betas=(s.beta1, s.beta2), **kwargs)

    def _autocast_dtype(self) -> tuple[torch.dtype | None, str]:
        """The autocast dtype (None: float32) and the start record's `dtype_note` (why, for "auto", CPU)."""
        want = self.settings.dtype
        if want == "float32":
            return None, ""
        if want == "bfloat16":
            return torch.bfloat16, ""
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16, ""
        if self.device.type != "cpu":
            return None, ""
        rows = -(-self.settings.batch_size // self.batch_parts)  # a part's rows (the batch: unsplit)
        agree = None
        if self.distributed:
            def agree(speedup: float) -> float:
                return all_reduce_sum(torch.tensor([speedup])).item() / self.world_size
        fast, note = cpu_bf16_decision(self.config, rows, agree)
        return (torch.bfloat16 if fast else None), note

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _start_record(self) -> dict:
        return {"type": "start", "step": self.step, "config": self.config.to_dict(),
                "settings": self.settings.to_dict(), "device": str(self.device),
                "dtype": "bfloat16" if self.autocast_dtype else "float32",
                "batch_parts": self.batch_parts, "batch_mode": self.batch_mode, "compiled": self.compiled,
                "compile_note": self.compile_note, "dtype_note": self.dtype_note,
                "parameters": count_parameters(self.config)["total"], "tokenizer": self.tokenizer.kind,
                "vocab_size": self.config.vocab_size, "train_tokens": len(self.data.train),
                "val_tokens": len(self.data.val), "rank": self.rank, "world_size": self.world_size}

    def _nonfinite_record(self, loss: float, grad_norm: float) -> dict:
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {grad_norm}"
        self._write_outputs(final_checkpoint=False)
        return {"type": "error", "kind": "nonfinite", "step": self.step,
                "message": (f"Training stopped at step {self.step + 1}: the {what} is not a number. "
                            f"The model keeps its last good state (step {self.step}). A lower learning rate, "
                            f"gradient clipping or a longer warm-up usually helps.")}

    def _finish(self, kind: str, message: str) -> dict:
        paths = self._write_outputs(final_checkpoint=True)
        last = {r["type"]: r for r in self.history}
        record = {"type": kind, "step": self.step, "tokens": self.tokens, "message": message}
        if "step" in last:
            record["train_loss"] = last["step"]["train_loss"]
        if "eval" in last:
            record["val_loss"] = last["eval"]["val_loss"]
        record.update(paths)
        return record

    def _write_outputs(self, final_checkpoint: bool) -> dict:
        out_dir = self.settings.out_dir
        if not out_dir or not self.is_main:
            return {}
        paths = {"metrics_path": str(self.export_csv(Path(out_dir) / "metrics.csv"))}
        if self.histograms:
            try:
                paths["histograms_path"] = str(write_file(Path(out_dir) / HISTOGRAMS_FILE, self.histograms))
            except files.FileProblem as exc:
                raise CheckpointError(str(exc)) from None
        if final_checkpoint:
            paths["checkpoint_path"] = str(self.save_checkpoint(Path(out_dir) / "checkpoint.safetensors"))
        return paths


CSV_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s")
# Per-block health (explorer/core/gpt/health.py), on the steps that measured it: each cell a JSON list,
# one number per transformer block in order, null where not finite, e.g. "[0.21,0.13]"; empty elsewhere.
HEALTH_COLUMNS = ("block_grad_norms", "update_ratios")


def write_metrics_csv(records, path: str | Path) -> Path:
    """One CSV row per step (eval records merge their val_loss into their step's row), written atomically."""
    rows: dict[int, dict] = {}
    for rec in records:
        if rec.get("type") == "step":
            row = rows.setdefault(rec["step"], {})
            row.update({k: rec[k] for k in CSV_COLUMNS if k in rec})
            row.update({k: json.dumps(rec[k], separators=(",", ":")) for k in HEALTH_COLUMNS if k in rec})
        elif rec.get("type") == "eval":
            row = rows.setdefault(rec["step"], {"step": rec["step"], "tokens": rec.get("tokens", "")})
            row["val_loss"] = rec["val_loss"]
            row.setdefault("train_loss", rec.get("train_loss", ""))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS + HEALTH_COLUMNS, restval="")
    writer.writeheader()
    for step in sorted(rows):
        writer.writerow(rows[step])
    try:
        path = files.write_atomic(path, buffer.getvalue())
    except files.FileProblem as exc:
        raise CheckpointError(str(exc)) from None
    return path


__all__ = ["TrainSettings", "Trainer", "TRAIN_PRESETS", "PRESETS", "resolve_device", "write_metrics_csv"]
