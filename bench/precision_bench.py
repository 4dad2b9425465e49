"""bf16 autocast against float32 on the same run: the loss curves side by side, and the speed of each.

    python bench/precision_bench.py [--steps 1500] [--eval-every 250] [--threads 1] [--device cpu]
    python bench/precision_bench.py --kernels      (CPU: why "auto" picks what it picks; no training)
    python bench/precision_bench.py --split        (float32 on one thread against the defaults on all cores)

Both runs start from the same seed, weights and batches (nanoGPT's CPU baby GPT on the built-in corpus,
batch 12), so the only difference is the precision of the matrix products. Printed: train loss (mean
of the last 50 steps) and validation loss at each evaluation, their differences, and tokens/s.

--split compares float32 in one pass on one thread with what a user gets on every core: dtype auto, and
each batch split into one part per core (TrainSettings.batch_split: auto, helper processes for the baby GPT).

--kernels prints the measurements behind the CPU rule of dtype "auto" (train.cpu_bf16_decision, its
probe train.probe_cpu_bf16 and train.CPU_BF16_MIN_WIDTH): what the trainer's probe decides for the baby
GPT here, bf16 against float32 matrix products at the baby GPT's shapes, and one training step of models
of growing width in both precisions. Run it again with oneDNN held to an older instruction set to see
another CPU: ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (avx512_bf16 without AMX) or ONEDNN_MAX_CPU_ISA=AVX512_CORE
(no bf16 instructions).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt.model import preset  # noqa: E402
from explorer.core.gpt.train import Trainer, TrainSettings  # noqa: E402

BABY_GPT = {"n_layers": 4, "n_heads": 4, "emb_dim": 128, "context_length": 64, "drop_rate": 0.0}


def train(dtype: str, args, split: str = "off", threads: int | None = None) -> dict:
    """One run: its eval records, a smoothed train loss at each eval, and its median tokens/s."""
    settings = TrainSettings(steps=args.steps, batch_size=12, lr=1e-3, warmup_steps=100,
                             eval_every=args.eval_every, eval_batches=20, sample_every=0,
                             device=args.device, dtype=dtype, seed=1337,
                             threads=args.threads if threads is None else threads, batch_split=split)
    trainer = Trainer(preset("tiny", **BABY_GPT), settings)
    losses: list[float] = []
    speeds: list[float] = []
    evals: dict[int, dict] = {}
    started = time.perf_counter()
    for record in trainer.run():
        if record["type"] == "step":
            losses.append(record["train_loss"])
            speeds.append(record["tokens_per_s"])
        elif record["type"] == "eval":
            evals[record["step"]] = {"val_loss": record["val_loss"],
                                     "train_loss": statistics.fmean(losses[-50:]) if losses else None}
    trainer.close()  # helper processes of a batch split over processes
    return {"dtype": str(trainer.autocast_dtype or "float32"), "batch_parts": trainer.batch_parts,
            "batch_mode": trainer.batch_mode,
            "threads": torch.get_num_threads(), "evals": evals,
            "tokens_per_s": statistics.median(speeds), "wall_s": time.perf_counter() - started}


def _median_s(fn, repeats: int = 5, number: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def kernels() -> None:
    """bf16 against float32: matrix products at the baby GPT's shapes, then a training step per width."""
    from explorer.core.gpt.model import GPT
    from explorer.core.gpt.train import CPU_BF16_MIN_WIDTH, cpu_bf16_decision

    baby = preset("tiny", **BABY_GPT)
    for rows, label in ((6, "one part of a batch split in 2"), (12, "the whole batch")):
        t0 = time.perf_counter()
        _, note = cpu_bf16_decision(baby, rows)
        print(f"dtype auto, baby GPT, {label}: {note} [probe {time.perf_counter() - t0:.3f} s]")
    print(f"{torch.get_num_threads()} thread(s) below; auto measures bf16 from width {CPU_BF16_MIN_WIDTH} "
          f"on a CPU")
    print(f"{'matrix product':<24}{'fp32 GF/s':>11}{'bf16 GF/s':>11}{'bf16/fp32':>11}")
    for m, k, n in ((768, 128, 384), (768, 128, 512), (768, 512, 128)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a16, b16 = a.bfloat16(), b.bfloat16()
        t32, t16 = _median_s(lambda: a @ b), _median_s(lambda: a16 @ b16)  # noqa: B023
        flops = 2 * m * k * n
        print(f"{f'{m}x{k} @ {k}x{n}':<24}{flops / t32 / 1e9:>11.1f}{flops / t16 / 1e9:>11.1f}"
              f"{t32 / t16:>10.2f}x")
    print(f"{'training step (batch 12)':<32}{'fp32 ms':>9}{'bf16 ms':>9}{'speed-up':>10}")
    for width, layers, context, heads in ((16, 1, 16, 2), (32, 2, 32, 2), (64, 2, 64, 4), (128, 4, 64, 4),
                                          (256, 4, 64, 4)):
        cfg = preset("tiny", vocab_size=100, emb_dim=width, n_layers=layers, context_length=context,
                     n_heads=heads)
        x = torch.randint(0, 100, (12, context))
        step_s = {}
        for low in (False, True):
            torch.manual_seed(0)
            model = GPT(cfg)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

            def step(model=model, opt=opt, low=low, x=x):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
                    loss = model.loss(x, x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            step_s[low] = _median_s(step, number=5)
        label = f"width {width}, {layers} layer(s), context {context}"
        print(f"{label:<32}{step_s[False] * 1e3:>9.2f}{step_s[True] * 1e3:>9.2f}"
              f"{step_s[False] / step_s[True]:>9.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kernels", action="store_true", help="the CPU measurements behind dtype auto")
    parser.add_argument("--split", action="store_true",
                        help="compare float32 in one pass on one thread with the trainer's defaults on every "
                             "core (dtype auto, each batch split across the threads)")
    args = parser.parse_args(argv)
    cores = torch.get_num_threads()  # torch's own choice, before a run sets its count
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.kernels:
        kernels()
        return 0
    if args.split:
        runs = {"float32": train("float32", args, split="off", threads=1),
                "default": train("auto", args, split="auto", threads=cores)}
        other = "default"
    else:
        runs = {name: train(name, args) for name in ("float32", "bfloat16")}
        other = "bfloat16"
    if args.json:
        print(json.dumps(runs))
        return 0
    ref, low = runs["float32"], runs[other]
    label = (f"{low['dtype'].replace('torch.', '')} in {low['batch_parts']} part(s) ({low['batch_mode']}) "
             f"on {low['threads']} thread(s)") if args.split else "bf16"
    print(f"baby GPT {BABY_GPT}, batch 12, {args.steps} steps, {torch.get_num_threads()} thread(s), "
          f"device {args.device}, torch {torch.__version__}")
    if args.split:
        print(f"fp32: float32, one pass, {ref['threads']} thread(s); new: {label}")
    new = "new" if args.split else "bf16"
    print(f"{'step':>6}{'fp32 val':>10}{new + ' val':>10}{'diff':>9}"
          f"{'fp32 train':>12}{new + ' train':>12}{'diff':>9}")
    worst = 0.0
    for step, r in ref["evals"].items():
        b = low["evals"][step]
        dv = b["val_loss"] - r["val_loss"]
        dt = (b["train_loss"] - r["train_loss"]) if r["train_loss"] is not None else 0.0
        if step:
            worst = max(worst, abs(dv) / r["val_loss"])
        tr = f"{r['train_loss']:>12.4f}{b['train_loss']:>12.4f}{dt:>+9.4f}" if r["train_loss"] else ""
        print(f"{step:>6}{r['val_loss']:>10.4f}{b['val_loss']:>10.4f}{dv:>+9.4f}{tr}")
    print(f"largest relative difference of the validation loss after step 0: {worst:.2%}")
    print(f"tokens/s (median of the step records): float32 {ref['tokens_per_s']:,.0f}, "
          f"{label} {low['tokens_per_s']:,.0f} ({low['tokens_per_s'] / ref['tokens_per_s']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
