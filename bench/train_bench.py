"""Training throughput: our Trainer loop against bare PyTorch loops on the same model, batch and device.

    python bench/train_bench.py [--steps 60] [--repeats 5] [--device cpu] [--threads 1] [--compile]

Default model: nanoGPT's CPU "baby GPT" (4 layers, 4 heads, 128 wide, context 64, batch 12, dropout 0)
on the built-in character corpus. Variants run interleaved, repeat after repeat, so that a noisy shared
machine slows them alike; each figure is the median tokens/s over the repeats (after warm-up steps).

  bare            model + fused/foreach AdamW + clipping, nothing else: the baseline
  ours            Trainer.run(): warm-up/cosine lr, one sync per step for loss and grad norm, a record every
                  step, a 120-token sample every 100 steps (evaluation off: it is work, not overhead)
  bare-foreach    the bare loop with foreach AdamW (what nanoGPT uses off CUDA)
  nanogpt-style   a loop shaped like nanoGPT's train.py in its CPU baby-GPT command: numpy batches built
                  per step, AdamW with its decay groups and torch's default kernel (for-loop on a CPU:
                  nanoGPT asks for fused only on CUDA), clipping at 1.0, loss.item() every step
                  (log_interval=1); the stand-in for nanoGPT in the ratio
  *-compiled      with --compile: the same with torch.compile (compile time reported apart)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt.model import GPT, preset  # noqa: E402
from explorer.core.gpt.train import Trainer, TrainSettings  # noqa: E402

BABY_GPT = {"n_layers": 4, "n_heads": 4, "emb_dim": 128, "context_length": 64, "drop_rate": 0.0}
BATCH = 12


class BareLoop:
    """The minimum a training step needs, with the same model, batches and optimizer as ours."""

    def __init__(self, trainer: Trainer, impl: str, compiled: bool, numpy_batches: bool,
                 item_every_step: bool):
        torch.manual_seed(trainer.settings.seed)
        self.model = GPT(trainer.config).to(trainer.device)
        kwargs = {"fused": True} if impl == "fused" else {"foreach": True} if impl == "foreach" else {}
        params = list(self.model.parameters())
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), **kwargs)
        self.loss = torch.compile(self.model.loss) if compiled else self.model.loss
        self.data, self.device, self.T = trainer.data, trainer.device, trainer.config.context_length
        self.gen = torch.Generator().manual_seed(0)
        self.numpy_batches, self.item_every_step = numpy_batches, item_every_step
        self.np_train = trainer.data.train.numpy().astype(np.uint16)  # nanoGPT keeps uint16 token files

    def batch(self):
        if not self.numpy_batches:
            return self.data.batch("train", BATCH, self.T, self.gen, self.device)
        ix = torch.randint(len(self.np_train) - self.T, (BATCH,))
        x = torch.stack([torch.from_numpy(self.np_train[i:i + self.T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(self.np_train[i + 1:i + 1 + self.T].astype(np.int64)) for i in ix])
        return x.to(self.device), y.to(self.device)

    def steps(self, n: int) -> None:
        for _ in range(n):
            x, y = self.batch()
            loss = self.loss(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            if self.item_every_step:
                loss.item()
        if self.device.type == "cuda":
            torch.cuda.synchronize()


class OurLoop:
    """Trainer.run() consumed as the UI would: every record looked at."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.records = 0

    def steps(self, n: int) -> None:
        target = self.trainer.step + n
        for record in self.trainer.run(until=target):
            self.records += 1
            json.dumps(record)  # what a worker does to ship it


def make_trainer(args, compiled: bool = False) -> Trainer:
    cfg = preset("tiny", **BABY_GPT)
    settings = TrainSettings(steps=10**6, batch_size=BATCH, lr=1e-3, warmup_steps=100, eval_every=0,
                             sample_every=100, sample_tokens=120, device=args.device, compile=compiled,
                             seed=1337, optimizer_impl=args.optimizer, dtype=args.dtype)
    return Trainer(cfg, settings)


def main(argv=None) -> int:
    """Run the variants and print a table of median tokens/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before the first repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--optimizer", default="auto", help="AdamW kernel (ours, bare): auto, fused, foreach")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile variants")
    parser.add_argument("--dtype", default="auto", help="ours: auto (bf16 autocast on CUDA) or float32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    base = make_trainer(args)
    impl = "fused" if args.optimizer in ("auto", "fused") else "foreach"
    variants = {
        "bare": BareLoop(base, impl, False, False, False),
        "ours": OurLoop(base),
        "bare-foreach": BareLoop(base, "foreach", False, False, False),
        "nanogpt-style": BareLoop(base, "default", False, True, True),
    }
    compile_s = {}
    if args.compile:
        for name, build in (("bare-compiled", lambda: BareLoop(base, impl, True, False, False)),
                            ("ours-compiled", lambda: OurLoop(make_trainer(args, compiled=True)))):
            t0 = time.perf_counter()
            loop = build()
            loop.steps(2)  # compiles
            compile_s[name] = time.perf_counter() - t0
            variants[name] = loop
    for loop in variants.values():
        loop.steps(args.warmup)

    tokens = args.steps * BATCH * BABY_GPT["context_length"]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    # Tokens per CPU-second of this process: on a machine shared with other jobs, wall time mostly
    # measures the neighbours; with one torch thread, CPU time measures our own work.
    cpu_rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for rep in range(args.repeats):
        # Rotate the order so no variant always runs right after the same neighbour.
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            variants[name].steps(args.steps)
            rates[name].append(tokens / (time.perf_counter() - t0))
            cpu_rates[name].append(tokens / (time.process_time() - c0))

    # Paired ratios (same repeat) cancel the slow drifts of a shared machine better than ratios of medians.
    def paired(series: dict[str, list[float]], name: str) -> float:
        return statistics.median(a / b for a, b in zip(series[name], series["bare"], strict=True))

    summary = {name: {"median_tokens_per_s": statistics.median(r), "min": min(r), "max": max(r),
                      "vs_bare": paired(rates, name),
                      "median_tokens_per_cpu_s": statistics.median(cpu_rates[name]),
                      "cpu_vs_bare": paired(cpu_rates, name)}
               for name, r in rates.items()}
    result = {"device": str(base.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "autocast": str(base.autocast_dtype), "steps": args.steps, "repeats": args.repeats,
              "batch": BATCH, "config": BABY_GPT, "variants": summary, "compile_s": compile_s}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device {result['device']} (autocast {result['autocast']}), {result['threads']} torch thread(s), "
          f"torch {result['torch']}; baby GPT {BABY_GPT}, batch {BATCH}; "
          f"{args.repeats} repeats x {args.steps} steps, median tokens/s")
    print(f"{'variant':<16}{'tok/s':>9}{'vs bare*':>10}{'min':>9}{'max':>9}{'tok/CPU-s':>12}{'vs bare*':>10}")
    for name, v in result["variants"].items():
        print(f"{name:<16}{v['median_tokens_per_s']:>9,.0f}{v['vs_bare']:>9.3f}x{v['min']:>9,.0f}"
              f"{v['max']:>9,.0f}{v['median_tokens_per_cpu_s']:>12,.0f}{v['cpu_vs_bare']:>9.3f}x")
    print("* median over repeats of (variant / bare) within the same repeat")
    for label, key in (("wall", "vs_bare"), ("CPU", "cpu_vs_bare")):
        ratio = result["variants"]["ours"][key] / result["variants"]["nanogpt-style"][key]
        print(f"ours / nanogpt-style by {label} time: {ratio:.2f}x (goal: at least 1.2x)")
    for label, key in (("wall", "vs_bare"), ("CPU", "cpu_vs_bare")):
        overhead = 1 - result["variants"]["ours"][key]
        print(f"our loop's overhead by {label} time (a record every step, a sample every 100 steps): "
              f"{overhead:+.1%} ({'within' if overhead < 0.05 else 'OVER'} the 5% budget)")
    for name, secs in compile_s.items():
        print(f"{name}: compile + 2 steps took {secs:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
