"""Benchmark of the graph pipeline: trace, layout, (optionally) scene build, against Graphviz dot.

Run: ``.venv/bin/python bench/graph_bench.py`` (``--repeat N`` for more samples, ``--no-dot`` to skip dot,
``--stress`` to add random DAGs).

The first table ("at every size") traces one training step of ``explorer.core.gpt.model.GPT`` as the
trace tab does, with every module expanded, at about 100 to 10,000 nodes (``--sizes``), and times each
stage of the path to the trace tab's canvas: ``trace``; ``display`` = the display model (collapse,
layout, wrapping, ports); ``items`` = the cards, edges and frames; ``paint`` = the first paint of a
1000x700 canvas fitted to the graph; ``all in`` = their sum. At the sizes of ``--dot-sizes``: ``dot`` =
``dot -Tsvg`` on our own DOT export (``python -m explorer graph --format dot``) of the same trace, run
once (a minute at 10,000 nodes), and ``file scene`` = ``render.build_scene``, the scene that
``graph --format png`` and File > Export draw (one row, no wrapping). Then the growth ratio (largest /
a quarter of its size) and, on the largest graph, the repaint per frame at several zoom levels, panning,
a player step, and expanding one module. ``--sizes-only`` stops after that table.

The second table compares layouts. Prints one row per graph: node/edge counts, median times in ms and edge
crossings, all counted by ``explorer.core.graph.layout.count_crossings`` on each method's own drawing
(dot's splines sampled at its ranks, ogdf's bends read back from GML). Columns: ``trace`` = ``trace(fn)``
(forward + backward recorded); ``layout`` = ``layered_layout(trace.graph)``; ``scene`` =
``explorer.ui.graph.render.build_scene(trace)`` with every module expanded, which runs its own collapse and
layout, so trace + scene is the whole path from a callable to a drawn canvas; ``dot`` = ``dot -Tplain``
as a subprocess; ``ogdf`` = ogdf-py's SugiyamaLayout call alone (no bend points).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.core.autograd.trace import trace  # noqa: E402
from explorer.core.graph.layout import count_crossings, layered_layout, ogdf_sugiyama  # noqa: E402

# ------------------------------------------------------------------------------------------ graphs


class Block(nn.Module):
    """Pre-norm transformer block with hand-written causal attention (more nodes than SDPA)."""

    def __init__(self, d, heads, ctx):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """A GPT small enough to trace in milliseconds; ``layers`` sets the graph size (~75 nodes each)."""

    def __init__(self, vocab=32, ctx=8, d=16, heads=2, layers=2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, ctx) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def chain_fn(n):
    """A chain of n alternating ops on one scalar parameter."""
    w = torch.tensor(0.5, requires_grad=True)

    def fn():
        h = w
        for i in range(n):
            h = torch.sin(h) if i % 2 else h * 1.01
        return h
    return fn


def mlp_fn(inputs, hidden, depth, classes):
    """An MLP (nn.Sequential of Linear/Tanh, ``depth`` hidden layers) and its cross-entropy loss."""
    torch.manual_seed(0)
    widths = [inputs] + [hidden] * depth + [classes]
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    X, y = torch.randn(16, inputs), torch.randint(0, classes, (16,))
    return lambda: F.cross_entropy(model(X), y)


def gpt_fn(layers):
    """One training step's loss of a TinyGPT with ``layers`` blocks."""
    torch.manual_seed(0)
    model = TinyGPT(layers=layers)
    idx = torch.randint(0, 32, (2, 8))
    return lambda: model(idx, torch.roll(idx, -1, 1))


def core_gpt_fn(layers):
    """One training step's loss of ``explorer.core.gpt.model.GPT`` (SDPA attention), or None."""
    try:
        from explorer.core.gpt.model import GPT, GPTConfig
    except ImportError:
        return None
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=32, context_length=8, emb_dim=16, n_heads=2, n_layers=layers, drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 32, (2, 8))
    return lambda: F.cross_entropy(model(idx).flatten(0, 1), torch.roll(idx, -1, 1).flatten())


def gpt_step_fn(layers: int, emb_dim: int = 16):
    """One training step (loss, then backward) of ``explorer.core.gpt.model.GPT``, traced as the trace tab
    traces it (one sequence of 8 tokens, snapshots of up to 2,048 numbers), or None without the module."""
    try:
        from explorer.core.gpt.model import GPT, GPTConfig
    except ImportError:
        return None
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=32, context_length=8, emb_dim=emb_dim, n_heads=2, n_layers=layers,
                    drop_rate=0.0)
    model = GPT(cfg)
    idx = torch.randint(0, 32, (1, 8))
    targets = torch.roll(idx, -1, 1)

    def step():
        loss = model.loss(idx, targets)
        return loss, {"loss": loss}
    return step


def cases():
    """(name, zero-argument callable) for graphs of about 10, 100, 400, 1,000 and 3,000 nodes."""
    rows = [
        ("chain", chain_fn(10)),
        ("mlp", mlp_fn(8, 16, 23, 4)),
        ("gpt-9", gpt_fn(9)),
        ("gpt-24", gpt_fn(24)),
        ("gpt-72", gpt_fn(72)),
        ("chain", chain_fn(3000)),
    ]
    core = core_gpt_fn(12)
    if core is not None:
        rows.insert(3, ("core.gpt-12", core))
    return rows


# ------------------------------------------------------------------------------------------ other layouts


def dot_layout(graph):
    """Graphviz dot (LR) on the same graph: (seconds, positions, bend samples), or None without dot."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    names = {n: f"v{i}" for i, n in enumerate(graph.nodes)}
    back = {v: k for k, v in names.items()}
    lines = ["digraph G {", "rankdir=LR;"]
    lines.append('node [shape=box, width=1.1, height=0.45, fixedsize=true, label=""];')
    lines += [f"{names[n]};" for n in graph.nodes]
    lines += [f"{names[u]} -> {names[v]};" for u, v in graph.edges]
    lines.append("}")
    t0 = time.perf_counter()
    out = subprocess.run([exe, "-Tplain"], input="\n".join(lines), capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    positions, bends = {}, {}
    for line in out.stdout.splitlines():
        tok = line.split()
        if tok and tok[0] == "node":
            positions[back[tok[1]]] = (float(tok[2]), float(tok[3]))
        elif tok and tok[0] == "edge":
            k = int(tok[3])
            ctrl = [(float(tok[4 + 2 * i]), float(tok[5 + 2 * i])) for i in range(k)]
            bends[(back[tok[1]], back[tok[2]])] = _bezier_samples(ctrl)
    return seconds, positions, bends


def _bezier_samples(ctrl, steps=8):
    """Points along a piecewise cubic Bezier (dot's spline), its two ends left out."""
    pts = []
    for i in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = ctrl[i:i + 4]
        for j in range(1 if i else 0, steps + 1):
            t = j / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            pts.append(tuple(a * p0[k] + b * p1[k] + c * p2[k] + d * p3[k] for k in (0, 1)))
    return pts[1:-1]


def ogdf_layout(graph):
    """ogdf-py's SugiyamaLayout: (seconds for the layout alone, positions, bends), or None without ogdf."""
    try:
        t0 = time.perf_counter()
        ogdf_sugiyama(graph, bends=False)
        seconds = time.perf_counter() - t0
    except ImportError:
        return None
    positions, bends = ogdf_sugiyama(graph, bends=True)  # bends come back through a GML file: untimed
    return seconds, positions, bends


def scene_builder():
    """``explorer.ui.graph.render.build_scene`` (offscreen Qt), or None when the UI module is missing."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from explorer.ui.graph.render import build_scene
    except ImportError:
        return None
    return build_scene


def all_expanded(tr):
    """Every module path (and roll-up key) expanded, so the scene draws every traced node."""
    from explorer.core.graph.layout import collapse

    expanded: set[str] = set()
    while True:
        g = collapse(tr, expanded)
        paths = {d["path"] for _, d in g.nodes(data=True) if d.get("kind") == "module"}
        if not paths - expanded:
            return expanded
        expanded |= paths


# ------------------------------------------------------------------------------------------ every size


def now() -> float:
    """The clock of the first table: CPU seconds of this process by default (``--clock cpu``: on a shared
    machine wall time swings with the load; the stages run on one thread), or wall seconds."""
    return CLOCK[0]()


CLOCK = [time.process_time]


def child_seconds() -> float:
    """CPU seconds of finished child processes (dot), or wall time with ``--clock wall``."""
    if CLOCK[0] is time.perf_counter:
        return time.perf_counter()
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def layers_for(nodes: int) -> int:
    """Blocks of the bench's GPT that give about ``nodes`` traced nodes (measured on 1 and 3 blocks)."""
    small, big = (len(trace(gpt_step_fn(k), max_snapshot_elems=16).nodes) for k in (1, 3))
    per_block = (big - small) / 2
    return max(1, round((nodes - (small - per_block)) / per_block))


def pipeline_row(layers: int, use_dot: bool, repeat: int, file_scene: bool = False) -> dict:
    """Median stage times (seconds) of one GPT step from a callable to the trace tab's first paint."""
    from PySide6.QtWidgets import QApplication

    from explorer.commands.graph import to_dot
    from explorer.ui.graph import items
    from explorer.ui.graph import view as view_module
    from explorer.ui.graph.render import build_scene
    from explorer.ui.graph.view import GraphView

    app = QApplication.instance()
    fn = gpt_step_fn(layers)
    trace(fn, max_snapshot_elems=64)  # warm-up
    spent: dict[str, list[float]] = {"trace": [], "display": [], "items": [], "paint": []}
    real_build = view_module.build_display

    def timed_build(*args, **kwargs):
        t0 = now()
        out = real_build(*args, **kwargs)
        spent["display"].append(now() - t0)
        return out

    view_module.build_display = timed_build  # the display model's share of set_trace
    try:
        for _ in range(repeat):
            t0 = now()
            tr = trace(fn, max_snapshot_elems=2048)
            spent["trace"].append(now() - t0)
            expanded = all_expanded(tr)
            view = GraphView()
            view.resize(1000, 700)
            view.show()
            app.processEvents()
            view.graph_scene.expanded = set(expanded)
            counter = getattr(items, "METRIC_CALLS", [0])  # (older checkouts have no counter)
            calls = counter[0]
            t0 = now()
            view.set_trace(tr)
            spent["items"].append(now() - t0 - spent["display"][-1])
            calls = counter[0] - calls
            t0 = now()
            view.viewport().repaint()
            spent["paint"].append(now() - t0)
            view.close()
            if file_scene:  # the path of `graph --format png` and File > Export: one row, no wrapping
                t0 = now()
                build_scene(tr, expanded=expanded)
                spent.setdefault("file scene", []).append(now() - t0)
    finally:
        view_module.build_display = real_build
    row = {k: statistics.median(v) for k, v in spent.items()}
    row["all in"] = sum(v for k, v in row.items() if k != "file scene")
    row["nodes"], row["cards"], row["frames"] = len(tr.nodes), len(view.graph_scene.cards), \
        len(view.graph_scene.frames)
    row["metric calls"] = calls
    row["dot"] = None
    if use_dot:
        text = to_dot(tr)
        t0 = child_seconds()
        subprocess.run([shutil.which("dot"), "-Tsvg"], input=text, capture_output=True, text=True, check=True)
        row["dot"] = child_seconds() - t0
    row["trace_obj"], row["expanded"] = tr, expanded
    return row


def idle_turns(app, seconds: float = 0.5) -> list[float]:
    """Milliseconds (of the first table's clock) of each turn of the event loop that did work (over 1 ms)
    in the next `seconds`: what a paint left for later (tiles and cards drawn ahead, timers). A turn is
    one handler: a long one delays the next frame as much as a slow paint does."""
    from PySide6.QtCore import QEventLoop

    turns, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = now()
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 1)
        spent = now() - t0
        if spent > 0.001:
            turns.append(1000 * spent)
        time.sleep(0.002)
    return turns


def turns_text(turns: list[float]) -> str:
    """`idle_turns` in words."""
    return f"{len(turns)} turns of work, longest {max(turns, default=0.0):.0f} ms (goal <= 16)"


def interaction(tr, expanded, app) -> None:
    """Repaint per frame of the largest graph's canvas at several zooms, panning and stepping; then the
    collapsed graph and one module expanded."""
    import gc

    from explorer.ui.graph import view as view_module
    from explorer.ui.graph.view import GraphView

    # the first table's scenes go now, not in the event-loop turns measured below (a dropped GraphScene
    # lives on in reference cycles until the collector runs; at an event-loop turn before that, Qt indexes
    # its items: ~150 ms for the file scene of 10,000 cards)
    gc.collect()
    app.processEvents()
    view = GraphView()
    view.resize(1000, 700)
    view.show()
    app.processEvents()
    view.graph_scene.expanded = set(expanded)
    view.set_trace(tr)
    view.fit()
    fit_scale = view.transform().m11()
    view.viewport().repaint()
    print(f"\nafter the fitted first paint, the next 0.5 s: {turns_text(idle_turns(app))}")

    def frame_ms(action, frames=7) -> float:
        samples = []
        for i in range(frames):
            action(i)
            t0 = now()
            view.viewport().repaint()
            samples.append(now() - t0)
        return 1000 * statistics.median(samples)

    print(f"\nrepaint per frame, {len(view.graph_scene.cards):,} cards, 1000x700 canvas "
          f"(median of 7 frames, ms of the same clock; goal <= 16):")
    center = view.graph_scene.sceneRect().center()
    for scale in (fit_scale, 0.05, 0.15, 0.3, 0.6, 1.0, 2.0):
        view.resetTransform()
        view.zoom_by(scale)
        view.centerOn(center)
        app.processEvents()
        still = frame_ms(lambda i: view.viewport().update())
        pan = frame_ms(lambda i: view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 40))
        zoom = frame_ms(lambda i: view.zoom_by(1.1 if i % 2 else 1 / 1.1))
        view.resetTransform()
        view.zoom_by(scale)
        view.centerOn(center)
        shown = view.transform().m11()
        steps = [(i * 7919) % (view.step_count + 1) for i in range(7)]
        step = frame_ms(lambda i: view.set_step(steps[i]))  # noqa: B023 - used at once
        label = "fit" if scale == fit_scale else f"{scale:g}"
        print(f"  zoom {label:>5} ({shown:.3f}): still {still:6.1f} | pan {pan:6.1f} | "
              f"zoom {zoom:6.1f} | player step {step:6.1f}", flush=True)
    view.close()
    # collapsed first (as the trace tab opens), then one module expanded; then the other way round: every
    # module expanded but one block, which is then expanded too
    view = GraphView()
    view.resize(1000, 700)
    view.show()
    app.processEvents()
    t0 = now()
    view.set_trace(tr)
    collapsed = now() - t0
    info = view.graph_scene.model.info
    biggest = max((d for d in info if info[d]["kind"] == "module"), key=lambda d: len(info[d]["members"]))
    t0 = now()
    view.graph_scene.toggle_module(biggest)
    expand = now() - t0
    print(f"\ncollapsed, as the trace tab opens: {len(info)} cards in {1000 * collapsed:.0f} ms; expanding "
          f"its largest module ({info[biggest]['title']}): {1000 * expand:.0f} ms -> "
          f"{len(view.graph_scene.cards)} cards")
    blocks = sorted(p for p in expanded if p.count(".") == 1 and p.startswith("blocks."))
    if blocks:
        last = blocks[len(blocks) // 2]
        view.graph_scene.expanded = {p for p in expanded if p != last and not p.startswith(last + ".")}
        view.set_trace(tr)
        card = next(d for d, i in view.graph_scene.model.info.items() if i.get("path") == last)
        members = len(view.graph_scene.model.info[card]["members"])
        made = getattr(view_module, "CARDS_MADE", [0])  # (older checkouts have no counter)
        before = made[0]
        t0 = now()
        view.graph_scene.toggle_module(card)
        expand = now() - t0
        print(f"every module expanded but {last}: expanding it takes {1000 * expand:.0f} ms "
              f"({len(view.graph_scene.cards):,} cards, {made[0] - before:,} of them made anew for its "
              f"{members} nodes; goal <= 100 ms)")
        # as a user expands it: zoomed in to 100 % on its card (double-clicked), the first paint included
        view.graph_scene.expanded.discard(last)
        view.set_trace(tr)
        card = next(d for d, i in view.graph_scene.model.info.items() if i.get("path") == last)
        view.resetTransform()
        view.zoom_by(1.0)  # (as a zoom does: the far-out overview is put away at 100 %)
        view.centerOn(*view.graph_scene.model.positions[card])
        view.viewport().repaint()
        t0 = now()
        view.graph_scene.toggle_module(card)
        view.viewport().repaint()
        expand = now() - t0
        print(f"  the same, zoomed in to 100 % on its card, first paint included: {1000 * expand:.0f} ms; "
              f"then, the next 0.5 s: {turns_text(idle_turns(app))}")
        scene = view.graph_scene
        if hasattr(scene, "display_job"):  # (a view builds a big graph's model on a Worker: GraphView.expand)
            scene.expanded.discard(last)
            view.set_trace(tr)
            card = next(d for d, i in scene.model.info.items() if i.get("path") == last)
            view.resetTransform()
            view.zoom_by(1.0)
            view.centerOn(*scene.model.positions[card])
            view.viewport().repaint()
            opened = frozenset({*scene.expanded, last})
            t0 = now()
            model = scene.display_job(opened)(None)  # what the Worker runs (timed here, on this thread)
            built = now() - t0
            t0 = now()
            scene.show_display(model, opened)
            view.viewport().repaint()
            shown = now() - t0
            print(f"  through the view (double-click, Enter): the model on a Worker {1000 * built:.0f} ms, "
                  f"then on the GUI thread {1000 * shown:.0f} ms, first paint included (goal <= 100 ms)")
    view.close()


def every_size(sizes: list[int], dot_sizes: list[int], use_dot: bool, repeat: int,
               with_interaction: bool = True) -> None:
    """The table of stage times at every size, the growth ratio and the ratio to dot."""
    from explorer.ui.graph.render import ensure_app

    app = ensure_app()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nat every size: one GPT training step, every module expanded, to the trace tab's first paint "
          f"(median of {repeat}, ms of {'CPU' if CLOCK[0] is time.process_time else 'wall'} time; dot once; "
          f"load average {load:.1f} on {os.cpu_count()} cpus)")
    cols = ["nodes", "blocks", "frames", "trace", "display", "items", "paint", "all in", "dot -Tsvg",
            "/ dot", "metric calls/node", "file scene"]
    print(" | ".join(f"{c:>9}" for c in cols))
    rows = []
    for target in sizes:
        layers = layers_for(target)
        with_dot = any(abs(target - d) <= d * 0.05 for d in dot_sizes)
        row = pipeline_row(layers, use_dot and with_dot, repeat, file_scene=with_dot)
        row["blocks"] = layers
        rows.append(row)
        ms = {k: f"{1000 * row[k]:.0f}" for k in ("trace", "display", "items", "paint", "all in")}
        dot = f"{1000 * row['dot']:.0f}" if row["dot"] else "-"
        ratio = f"{row['all in'] / row['dot']:.2f}x" if row["dot"] else "-"
        file_scene = f"{1000 * row['file scene']:.0f}" if "file scene" in row else "-"
        cells = [f"{row['nodes']:,}", layers, row["frames"], *ms.values(), dot, ratio,
                 f"{row['metric calls'] / row['nodes']:.2f}", file_scene]
        print(" | ".join(f"{c!s:>9}" for c in cells), flush=True)
    if len(rows) >= 2:
        big = rows[-1]
        quarter = min(rows, key=lambda r: abs(r["nodes"] - big["nodes"] / 4))
        print(f"growth: {big['nodes']:,} nodes take {big['all in'] / quarter['all in']:.1f}x the time of "
              f"{quarter['nodes']:,} ({big['nodes'] / quarter['nodes']:.1f}x the nodes; goal <= 5x)")
    if rows and with_interaction:
        interaction(rows[-1]["trace_obj"], rows[-1]["expanded"], app)


# ------------------------------------------------------------------------------------------ main


def measure(name, fn, repeat, use_dot, use_ogdf, build_scene):
    """Median timings (ms) and crossing counts for one graph."""
    trace(fn, max_snapshot_elems=64)  # warm-up: first calls pay for lazy initialisation in torch
    t_trace, t_layout, t_scene = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        tr = trace(fn)
        t_trace.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lay = layered_layout(tr.graph)
        t_layout.append(time.perf_counter() - t0)
        if build_scene is not None:
            expanded = all_expanded(tr)
            t0 = time.perf_counter()
            build_scene(tr, expanded=expanded)
            t_scene.append(time.perf_counter() - t0)
    g = tr.graph
    row = {
        "graph": name, "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
        "trace": _ms(t_trace), "layout": _ms(t_layout),
        "crossings": count_crossings(g, lay.positions, lay.edge_points),
        "scene": _ms(t_scene) if t_scene else "-",
    }
    others = (("dot", dot_layout, "LR", use_dot), ("ogdf", ogdf_layout, "TB", use_ogdf))
    for key, runner, direction, on in others:
        res = [runner(g) for _ in range(repeat)] if on else [None]
        if res[0] is None:
            row[key], row[key + " cr"] = "-", "-"
            continue
        row[key] = _ms([r[0] for r in res])
        row[key + " cr"] = count_crossings(g, res[0][1], res[0][2], direction=direction)
    return row


def random_dag(n, m, seed=1):
    """A random DAG with short-range edges: much harder to draw without crossings than a trace."""
    import random

    import networkx as nx

    rng = random.Random(seed)
    g = nx.DiGraph()
    g.add_nodes_from(f"v{i}" for i in range(n))
    while g.number_of_edges() < m:
        a, b = sorted(rng.sample(range(n), 2))
        if b - a <= n // 8:
            g.add_edge(f"v{a}", f"v{b}")
    return g


def stress(use_dot, use_ogdf):
    """Crossings and times on random DAGs (one run each; ogdf and dot skipped where they take minutes)."""
    print("\nstress: random DAGs (not traces), one run each, ms [crossings]")
    print(" | ".join(f"{c:>15}" for c in ("nodes/edges", "ours", "dot", "ogdf")))
    for n, m in ((50, 80), (200, 320), (1000, 1500)):
        g = random_dag(n, m)
        t0 = time.perf_counter()
        lay = layered_layout(g)
        cells = [f"{n}/{m}", f"{1000 * (time.perf_counter() - t0):.0f} [{lay.crossings}]"]
        others = ((dot_layout, "LR", use_dot), (ogdf_layout, "TB", use_ogdf and n <= 1000))
        for runner, direction, on in others:
            res = runner(g) if on else None
            if res is None:
                cells.append("-")
                continue
            cells.append(f"{1000 * res[0]:.0f} [{count_crossings(g, res[1], res[2], direction)}]")
        print(" | ".join(f"{c:>15}" for c in cells), flush=True)


def _ms(samples):
    return f"{1000 * statistics.median(samples):.1f}"


def main(argv=None):
    """Print the table (medians of ``--repeat`` runs, milliseconds; crossings counted one way for all)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-dot", action="store_true")
    ap.add_argument("--no-ogdf", action="store_true")
    ap.add_argument("--no-scene", action="store_true")
    ap.add_argument("--stress", action="store_true", help="also compare on random DAGs (slow: ~10 s)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: these tensors are tiny, and spare threads "
                         "only wait on a busy machine)")
    ap.add_argument("--sizes", default="100,500,1000,2500,5000,10000",
                    help="node counts of the GPT steps in the first table (comma-separated; empty: skip it)")
    ap.add_argument("--dot-sizes", default="2500,10000", help="sizes at which dot -Tsvg runs once")
    ap.add_argument("--sizes-only", action="store_true", help="only the first table")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="first table: CPU time of this process and of dot (default), or wall time")
    ap.add_argument("--no-interaction", action="store_true",
                    help="skip the repaint and expand figures on the largest graph")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    build_scene = None if args.no_scene else scene_builder()
    use_dot = not args.no_dot and shutil.which("dot") is not None
    print(f"torch {torch.__version__}, {os.cpu_count()} cpus, {args.threads} torch thread(s); "
          f"dot: {'yes' if use_dot else 'not found'}; "
          f"scene: {'ui.graph.render.build_scene' if build_scene else 'n/a'}; median of {args.repeat}, ms")
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.sizes.strip():
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        dot_sizes = [int(x) for x in args.dot_sizes.split(",") if x.strip()]
        every_size(sizes, dot_sizes, use_dot and build_scene is not None, min(args.repeat, 3),
                   not args.no_interaction)
        if args.sizes_only:
            return 0
        print()
    cols = ["graph", "nodes", "edges", "trace", "layout", "crossings", "scene"]
    cols += ["dot", "dot cr", "ogdf", "ogdf cr"]
    print(" | ".join(f"{c:>11}" for c in cols))
    for name, fn in cases():
        row = measure(name, fn, args.repeat, use_dot, not args.no_ogdf, build_scene)
        print(" | ".join(f"{row[c]!s:>11}" for c in cols), flush=True)
    if args.stress:
        stress(use_dot, not args.no_ogdf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
