"""What the logit lens and the per-token loss cost, against a plain forward pass measured beside them.

    python bench/lens_bench.py [--repeats 7] [--preset tiny] [--threads 1]

Model: a preset's GPT with fresh weights (the cost does not depend on training), in eval mode on the CPU.
Each repeat times, in alternating order so a noisy shared machine slows all alike:
- `forward`: one `model(idx)` on a full context of tokens (the baseline);
- `lens`: `logit_lens` on the same tokens (every layer read through the final norm and head, top-5);
- `losses`: `token_losses` on 4 contexts' worth of tokens.
Printed: the median of each in ms and the medians of the per-repeat ratios to the forward. Then the
GUI-thread cost of showing results (the tabs' `_on_done` plus one paint, offscreen), medians in ms,
for a few sizes: these are what the 100 ms rule for the GUI thread is about.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.gpt.lens import logit_lens, token_losses  # noqa: E402
from explorer.core.gpt.model import GPT, PRESETS  # noqa: E402


def compute_figures(preset: str, repeats: int) -> None:
    torch.manual_seed(0)
    model = GPT(PRESETS[preset]).eval()
    ctx, vocab = model.config.context_length, model.config.vocab_size
    ids = torch.randint(0, vocab, (ctx,)).tolist()
    passage = torch.randint(0, vocab, (4 * ctx + 1,)).tolist()

    def forward():
        with torch.no_grad():
            model(torch.tensor([ids]))

    jobs = {"forward": forward, "lens": lambda: logit_lens(model, ids),
            "losses": lambda: token_losses(model, passage)}
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():  # warm-up
        job()
    for r in range(repeats):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for name in order:
            start = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - start)
    print(f"{preset}: {model.config.n_layers} layers, context {ctx}, vocabulary {vocab}; {repeats} repeats")
    for name in jobs:
        line = f"  {name:8s} median {statistics.median(times[name]) * 1000:8.1f} ms"
        if name != "forward":
            ratios = [t / f for t, f in zip(times[name], times["forward"], strict=True)]
            line += f"   x{statistics.median(ratios):.2f} the forward"
        print(line)


def gui_figures(repeats: int) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from explorer.core.gpt.lens import LensResult, TokenLosses
    from explorer.ui.pretrain.lens import LogitLensTab, TokenLossTab

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    names = {i: chr(97 + i % 26) for i in range(65)}

    def lens(layers: int, T: int) -> LensResult:
        ids = rng.integers(0, 65, T).tolist()
        probs = np.sort(rng.random((layers, T, 5)).astype(np.float32))[..., ::-1]
        return LensResult(ids=ids, top_ids=rng.integers(0, 65, (layers, T, 5)), top_probs=probs,
                          tokens=[names[i] for i in ids], names=names, vocab_size=65)

    def losses(n: int) -> TokenLosses:
        ids = rng.integers(0, 65, n).tolist()
        return TokenLosses(ids=ids, losses=(rng.random(n - 1) * 4).astype(np.float32),
                           top_ids=rng.integers(0, 65, (n - 1, 5)),
                           top_probs=rng.random((n - 1, 5)).astype(np.float32),
                           window_starts=list(range(0, n - 1, 256)), tokens=[names[i] for i in ids],
                           names=names, vocab_size=65)

    class Panel:  # the tabs only call the panel when asked to compute
        pass

    lens_tab, loss_tab = LogitLensTab(Panel()), TokenLossTab(Panel())
    for tab in (lens_tab, loss_tab):
        tab.resize(1000, 700)
        tab.show()
    print("GUI thread, showing a result (offscreen, 1000x700):")
    for label, tab, make in ((f"lens {n}x{T}", lens_tab, lambda n=n, T=T: lens(n, T))
                             for n, T in ((5, 64), (7, 256), (13, 1024))):
        print(f"  {label:18s} median {shown_ms(app, tab, make, repeats):6.1f} ms")
    for n in (512, 2048, 8192):
        label = f"loss {n} tokens"
        print(f"  {label:18s} median {shown_ms(app, loss_tab, lambda n=n: losses(n), repeats):6.1f} ms")
    lens_tab.shutdown()
    loss_tab.shutdown()


def shown_ms(app, tab, make, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        result = make()
        start = time.perf_counter()
        tab.show_result(result)
        tab.repaint()
        app.processEvents()
        out.append(time.perf_counter() - start)
    return statistics.median(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--preset", default="tiny", choices=list(PRESETS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    compute_figures(args.preset, args.repeats)
    gui_figures(args.repeats)


if __name__ == "__main__":
    main()
