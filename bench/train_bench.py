"""Training throughput: our Trainer against a loop shaped like nanoGPT's train.py, one idea at a time.

    python bench/train_bench.py [--steps 60] [--repeats 5] [--device cpu] [--threads 1] [--compile]

Default model: nanoGPT's CPU "baby GPT" (4 layers, 4 heads, 128 wide, context 64, batch 12, dropout 0)
on the built-in character corpus. Every variant trains the same model from the same seed; they run
interleaved, repeat after repeat, in a rotating order, so that a noisy shared machine slows them alike.
Each figure is the median over the repeats of (variant / nanogpt-style) within the same repeat.

The ladder, each rung adding one idea to the one before:

  nanogpt-style   the stand-in for nanoGPT's train.py in its CPU baby-GPT command: float32 (nanoGPT
                  autocasts only on CUDA), numpy batches built per step from a uint16 token array,
                  AdamW with its decay groups and torch's default kernel (nanoGPT asks for fused only
                  on CUDA), clipping at 1.0, loss.item() every step (log_interval=1). On CUDA, as
                  nanoGPT there: bf16 autocast, fused AdamW, batches through pinned memory
  +tensor-batches the batches drawn from the corpus kept as one int64 tensor (no numpy, no per-row
                  copies; on CUDA the trainer keeps the whole corpus on the GPU)
  +fused-adamw    AdamW's fused CPU kernel (CPU only: nanoGPT's CUDA loop has it already)
  +bf16-autocast  bf16 autocast with PyTorch's own bf16 attention kernel (only when ours autocasts)
  bare            + the attention run in float32 inside bf16 autocast (model.attend): our step, no loop
  ours            Trainer.run() consumed as the UI would: warm-up/cosine lr, one sync per step for loss
                  and grad norm, a JSON record every step, a 120-token sample every 100 steps; with
                  several threads on a CPU each batch is split into one part per thread (--split, by
                  default auto: every part but the first in a helper process, batch_split=processes)
  ours-threads    (several threads on a CPU) ours with batch_split=threads: each part on a thread of
                  the training process
  ours-no-split   (several threads on a CPU) ours with batch_split=off: every kernel spread over all
                  threads, as the loops above do
  ours-N-threads  ours with every core (--threads 1 only, on a machine with more than one)
  *-compiled      with --compile: torch.compile of the loss (compile time reported apart)

Then, unless --sample-repeats 0, the samples ours takes every 100 steps (120 tokens, nanoGPT's baby GPT):
Trainer.sample() as the trainer runs it (one torch thread for a model this small: model.generation_threads)
against the same generation on every thread, alternated, and what each costs per 100 training steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt import model as model_module  # noqa: E402
from explorer.core.gpt.model import GPT, preset  # noqa: E402
from explorer.core.gpt.train import Trainer, TrainSettings  # noqa: E402

BABY_GPT = {"n_layers": 4, "n_heads": 4, "emb_dim": 128, "context_length": 64, "drop_rate": 0.0}
BATCH = 12


def pytorch_attention(q, k, v, dropout_p=0.0):
    """PyTorch's fused attention in whatever dtype it gets (what model.attend avoids for bf16 on a CPU)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)


class BareLoop:
    """A training step with nothing around it, and each idea of the ladder as a switch."""

    def __init__(self, trainer: Trainer, *, numpy_batches=False, adamw="fused", item_every_step=False,
                 autocast: torch.dtype | None = None, pytorch_bf16_attention=False, compiled=False):
        torch.manual_seed(trainer.settings.seed)
        self.model = GPT(trainer.config).to(trainer.device)
        kwargs = {"fused": True} if adamw == "fused" else {"foreach": True} if adamw == "foreach" else {}
        params = list(self.model.parameters())
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), **kwargs)
        self.loss = torch.compile(self.model.loss) if compiled else self.model.loss
        self.data, self.device, self.T = trainer.data, trainer.device, trainer.config.context_length
        self.gen = torch.Generator().manual_seed(0)
        self.numpy_batches, self.item_every_step = numpy_batches, item_every_step
        self.autocast, self.pytorch_bf16_attention = autocast, pytorch_bf16_attention
        self.np_train = trainer.data.train.numpy().astype(np.uint16)  # nanoGPT keeps uint16 token files

    def batch(self):
        if not self.numpy_batches:
            return self.data.batch("train", BATCH, self.T, self.gen, self.device)
        ix = torch.randint(len(self.np_train) - self.T, (BATCH,))
        x = torch.stack([torch.from_numpy(self.np_train[i:i + self.T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(self.np_train[i + 1:i + 1 + self.T].astype(np.int64)) for i in ix])
        if self.device.type == "cuda":  # as nanoGPT does: pinned host memory, copied asynchronously
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device,
                                                                                     non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def steps(self, n: int) -> None:
        ctx = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast
               else contextlib.nullcontext())
        attend = model_module.attend
        if self.pytorch_bf16_attention:
            model_module.attend = pytorch_attention
        try:
            for _ in range(n):
                x, y = self.batch()
                with ctx:
                    loss = self.loss(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                if self.item_every_step:
                    loss.item()
        finally:
            model_module.attend = attend
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used (Linux /proc; 0 where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class OurLoop:
    """Trainer.run() consumed as the UI would: every record looked at (optionally on more threads)."""

    def __init__(self, trainer: Trainer, threads: int = 0):
        self.trainer, self.threads = trainer, threads
        self.records = 0

    def helper_cpu_s(self) -> float:
        """CPU seconds of the trainer's helper processes so far (batch split over processes)."""
        return sum(process_cpu_seconds(pid) for pid in self.trainer.part_process_ids)

    def steps(self, n: int) -> None:
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            target = self.trainer.step + n
            for record in self.trainer.run(until=target):
                self.records += 1
                json.dumps(record)  # what a worker does to ship it
        finally:
            torch.set_num_threads(before)


def make_trainer(args, compiled: bool = False, split: str | None = None,
                 threads: int | None = None) -> Trainer:
    cfg = preset("tiny", **BABY_GPT)
    settings = TrainSettings(steps=10**6, batch_size=BATCH, lr=1e-3, warmup_steps=100, eval_every=0,
                             sample_every=100, sample_tokens=120, device=args.device, compile=compiled,
                             seed=1337, optimizer_impl=args.optimizer, dtype=args.dtype,
                             batch_split=args.split if split is None else split,
                             threads=args.threads if threads is None else threads)
    return Trainer(cfg, settings)


def sample_timings(trainer: Trainer, repeats: int) -> dict:
    """Median seconds of trainer.sample() as it runs (its own thread choice) and forced onto every thread,
    alternated within each repeat; speedup is the median of the paired ratios."""
    threads = torch.get_num_threads()
    ours_threads = model_module.generation_threads(trainer.config) or threads
    times: dict[str, list[float]] = {"ours": [], "all": []}
    choose = model_module.generation_threads
    for rep in range(repeats):
        for name in (("ours", "all") if rep % 2 == 0 else ("all", "ours")):
            if name == "all":  # the same generation with the thread count left as it is
                model_module.generation_threads = lambda config, batch=1: 0
            try:
                t0 = time.perf_counter()
                trainer.sample(seed=rep)
                times[name].append(time.perf_counter() - t0)
            finally:
                model_module.generation_threads = choose
    return {"ours_s": statistics.median(times["ours"]), "all_threads_s": statistics.median(times["all"]),
            "ours_threads": ours_threads, "all_threads": threads,
            "speedup": statistics.median(b / a for a, b in zip(times["ours"], times["all"], strict=True))}


def main(argv=None) -> int:
    """Run the variants and print a table of median tokens/s and ratios to the nanoGPT-style loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before the first repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--optimizer", default="auto", help="AdamW kernel of ours: auto, fused, foreach")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile variants")
    parser.add_argument("--dtype", default="auto",
                        help="ours: auto (the trainer's choice), float32 or bfloat16")
    parser.add_argument("--sample-repeats", type=int, default=3,
                        help="paired timings of a 120-token sample, one thread against all (0: skip)")
    parser.add_argument("--split", default="auto", choices=["auto", "processes", "threads", "off"],
                        help="ours' batch_split (default auto; ours-threads and ours-no-split are also run)")
    parser.add_argument("--only", default="",
                        help="comma-separated variants to run (default all); nanogpt-style always runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    base = make_trainer(args)
    low = base.autocast_dtype  # what our trainer autocasts to here (None: float32)
    fused = "fused" if base.device.type in ("cpu", "cuda") else "foreach"
    # nanoGPT's train.py on CUDA autocasts to bf16 (where supported) and asks for fused AdamW; on a CPU
    # it does neither. The first rungs follow it on the device at hand.
    cuda = base.device.type == "cuda"
    nano_autocast = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    nano_adamw = "fused" if cuda else "default"
    variants: dict[str, object] = {
        "nanogpt-style": BareLoop(base, numpy_batches=True, adamw=nano_adamw, item_every_step=True,
                                  autocast=nano_autocast),
        "+tensor-batches": BareLoop(base, adamw=nano_adamw, item_every_step=True, autocast=nano_autocast),
    }
    if not cuda:
        variants["+fused-adamw"] = BareLoop(base, adamw=fused, item_every_step=True)
    if low is not None and base.device.type == "cpu":
        variants["+bf16-autocast"] = BareLoop(base, adamw=fused, item_every_step=True, autocast=low,
                                              pytorch_bf16_attention=True)
    variants["bare"] = BareLoop(base, adamw=fused, item_every_step=True, autocast=low)
    variants["ours"] = OurLoop(base)
    if base.batch_parts > 1:
        if base.batch_mode != "threads":
            variants["ours-threads"] = OurLoop(make_trainer(args, split="threads"))
        variants["ours-no-split"] = OurLoop(make_trainer(args, split="off"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.threads == 1 and cores > 1 and base.device.type == "cpu":
        torch.set_num_threads(cores)  # the trainer decides its batch split from the count it is built with
        variants[f"ours-{cores}-threads"] = OurLoop(make_trainer(args, threads=cores), threads=cores)
        torch.set_num_threads(args.threads)
    compile_s = {}
    if args.compile:
        for name, build in (("bare-compiled", lambda: BareLoop(base, adamw=fused, item_every_step=True,
                                                               autocast=low, compiled=True)),
                            ("ours-compiled", lambda: OurLoop(make_trainer(args, compiled=True)))):
            t0 = time.perf_counter()
            loop = build()
            loop.steps(2)  # compiles
            compile_s[name] = time.perf_counter() - t0
            variants[name] = loop
    if args.only:
        keep = {"nanogpt-style", *args.only.split(",")}
        variants = {name: loop for name, loop in variants.items() if name in keep}
    for loop in variants.values():
        loop.steps(max(1, args.warmup))  # at least one step: a batch split starts its helpers there

    tokens = args.steps * BATCH * BABY_GPT["context_length"]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    # Tokens per CPU-second of this process: on a machine shared with other jobs, wall time partly
    # measures the neighbours; with one torch thread, CPU time measures our own work.
    cpu_rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for rep in range(args.repeats):
        # Rotate the order so no variant always runs right after the same neighbour.
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            loop = variants[name]
            helpers = loop.helper_cpu_s if isinstance(loop, OurLoop) else (lambda: 0.0)
            t0, c0, h0 = time.perf_counter(), time.process_time(), helpers()
            loop.steps(args.steps)
            rates[name].append(tokens / (time.perf_counter() - t0))
            cpu_rates[name].append(tokens / (time.process_time() - c0 + helpers() - h0))

    # Paired ratios (same repeat) cancel the slow drifts of a shared machine better than ratios of medians.
    def paired(series: dict[str, list[float]], name: str, to: str = "nanogpt-style") -> float:
        return statistics.median(a / b for a, b in zip(series[name], series[to], strict=True))

    summary = {name: {"median_tokens_per_s": statistics.median(r), "min": min(r), "max": max(r),
                      "vs_nanogpt": paired(rates, name),
                      "median_tokens_per_cpu_s": statistics.median(cpu_rates[name]),
                      "cpu_vs_nanogpt": paired(cpu_rates, name)}
               for name, r in rates.items()}
    samples = sample_timings(base, args.sample_repeats) if args.sample_repeats else None
    # The loop's own cost: ours against the bare step with the same kernels (unsplit when ours splits).
    same = "ours-no-split" if "ours-no-split" in rates else "ours"
    overhead = ({"wall": 1 - paired(rates, same, "bare"), "cpu": 1 - paired(cpu_rates, same, "bare")}
                if same in rates and "bare" in rates else None)
    for loop in variants.values():
        if isinstance(loop, OurLoop):
            loop.trainer.close()
    result = {"device": str(base.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "autocast": str(low), "batch_parts": base.batch_parts, "batch_mode": base.batch_mode,
              "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None, "steps": args.steps,
              "repeats": args.repeats, "batch": BATCH,
              "config": BABY_GPT, "variants": summary, "loop_overhead": overhead, "compile_s": compile_s,
              "samples": samples}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device {result['device']} (ours autocasts to {result['autocast']}), {result['threads']} torch "
          f"thread(s), ours splits each batch in {base.batch_parts} ({base.batch_mode}), "
          f"torch {result['torch']}; "
          f"baby GPT "
          f"{BABY_GPT}, batch {BATCH}; {args.repeats} repeats x {args.steps} steps")
    if base.batch_parts > 1:
        print(f"(ours runs batch_split={args.split}; the default is {TrainSettings().batch_split})")
    if result["load_average"] is not None:
        # Other jobs on the machine: with more runnable threads than cores, every fork/join of a
        # multi-threaded kernel may wait a scheduler slice for a descheduled thread.
        load = ", ".join(f"{x:.1f}" for x in result["load_average"])
        print(f"load average at the end (1, 5, 15 min): {load} on {cores} core(s)")
    print(f"{'variant':<18}{'tok/s':>9}{'vs nanoGPT*':>13}{'min':>9}{'max':>9}{'tok/CPU-s':>12}"
          f"{'vs nanoGPT*':>13}")
    for name, v in result["variants"].items():
        print(f"{name:<18}{v['median_tokens_per_s']:>9,.0f}{v['vs_nanogpt']:>12.3f}x{v['min']:>9,.0f}"
              f"{v['max']:>9,.0f}{v['median_tokens_per_cpu_s']:>12,.0f}{v['cpu_vs_nanogpt']:>12.3f}x")
    print("* median over repeats of (variant / nanogpt-style) within the same repeat; CPU time counts all "
          "threads, and ours' helper processes")
    for label, key in (("wall", "vs_nanogpt"), ("CPU", "cpu_vs_nanogpt")):
        if "ours" in result["variants"]:
            print(f"ours / nanogpt-style by {label} time: {result['variants']['ours'][key]:.2f}x "
                  f"(goal: at least 1.5x)")
    for label, key in (("wall", "wall"), ("CPU", "cpu")) if overhead else ():
        print(f"our loop's overhead over bare by {label} time (a record every step, a sample every 100 "
              f"steps; {same}): {overhead[key]:+.1%} "
              f"({'within' if overhead[key] < 0.05 else 'OVER'} the 5% budget)")
    if samples and "ours" in result["variants"]:
        step_s = tokens / result["variants"]["ours"]["median_tokens_per_s"] / args.steps
        print(f"a {base.settings.sample_tokens}-token sample (ours takes one every 100 steps), paired over "
              f"{args.sample_repeats} repeats: {samples['ours_s']:.2f} s as ours runs it "
              f"({samples['ours_threads']} thread(s)) against {samples['all_threads_s']:.2f} s on "
              f"{samples['all_threads']} threads: {samples['speedup']:.1f}x faster; "
              f"{samples['ours_s'] / (100 * step_s):.1%} of 100 of ours' steps (was "
              f"{samples['all_threads_s'] / (100 * step_s):.1%})")
    for name, secs in compile_s.items():
        print(f"{name}: compile + 2 steps took {secs:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
