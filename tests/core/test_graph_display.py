"""The display model of a card: titles, subtitles and tensor facts, as the canvas will draw them."""

from explorer.commands.graph import trace_program
from explorer.core.autograd.explain import describe_event
from explorer.core.autograd.timeline import Timeline
from explorer.core.graph.display import build_display
from explorer.core.lang.examples import load_example
from explorer.core.lang.program import parse


def _tensor_basics():
    tr = trace_program(parse(load_example("tensors_basics")))
    return tr, build_display(tr)


def test_no_grad_ops_show_their_op_and_tensor_facts_never_const():
    tr, model = _tensor_basics()
    ops = {did: info for did, info in model.info.items() if tr.nodes[did].inputs}
    assert {tr.nodes[d].op for d in ops} >= {"to", "reshape", "view", "T", "matmul"}
    for info in ops.values():
        assert "no grad" in info["subtitle"] and "const" not in info["subtitle"], info
        assert info["no_grad"] and info["facts"], info
    named_t = next(i for d, i in ops.items() if tr.nodes[d].name == "T")
    assert named_t["subtitle"] == "transpose · no grad"
    assert "stride 1,3" in named_t["facts"] and "non-contiguous" in named_t["facts"]
    assert named_t["facts"].startswith("3×2 · int64")
    assert named_t["layout"] == "stride 1,3 · non-contig."
    assert "float32" in next(i for d, i in ops.items() if tr.nodes[d].name == "F")["facts"]


def test_an_unnamed_op_is_labelled_by_its_op_not_by_a_variable_name():
    tr, model = _tensor_basics()
    titles = [info["title"] for info in model.info.values()]
    assert len(titles) == len(set(titles)), titles  # the bug: two cards both named "T"
    unnamed = [did for did in model.info if tr.nodes[did].inputs and not tr.nodes[did].name]
    assert unnamed and all(model.info[d]["title"] == ".T" for d in unnamed)
    assert all(model.info[d]["subtitle"] == "transpose · no grad" for d in unnamed)


def test_the_status_line_names_the_op_of_a_no_grad_value():
    tr, _model = _tensor_basics()
    timeline = Timeline(tr)
    texts = [describe_event(timeline, k) for k in range(1, timeline.length + 1)]
    assert not any("constant" in t for t in texts[1:]), texts
    assert any(t.endswith("(no grad: autograd records no backward)") and "G = matmul(A, Aᵀ)" in t
               for t in texts), texts


def test_a_wrapped_graph_reads_row_by_row_and_spreads_each_cards_edges_in_the_order_of_their_ends():
    """`set_bands` takes the keyboard order from the rows it wraps the layers into, and works the edge
    ports out per edge: both must say what `row_of` and the cards' positions say."""
    import torch

    from explorer.core.autograd.trace import trace
    from explorer.core.gpt.model import GPT, GPTConfig
    from explorer.core.graph.display import CARD_H, set_bands

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, context_length=4, emb_dim=8, n_heads=2, n_layers=3, drop_rate=0.0)
    gpt = GPT(cfg)
    idx = torch.randint(0, 16, (1, 4))
    tr = trace(lambda: gpt.loss(idx, torch.roll(idx, -1, 1)), max_snapshot_elems=16)
    expanded = {"blocks", "blocks.0", "blocks.1", "blocks.2"}
    model = build_display(tr, frozenset(expanded), aspect=1.0)
    for bands in (1, 2, 5):
        set_bands(model, bands)
        pos = model.positions
        assert model.order == sorted(model.info, key=lambda d: (model.row_of(d), pos[d][0], pos[d][1]))
        if bands > 1:
            rows = {model.row_of(d) for d in model.info}
            assert rows == set(range(bands)), rows
        sides: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for (u, v), (dy_out, dy_in) in model.ports.items():
            sides.setdefault((u, 0), []).append((pos[v][1], dy_out))
            sides.setdefault((v, 1), []).append((pos[u][1], dy_in))
        assert set(model.ports) == set(model.edges)
        spread = 0
        for ends in sides.values():
            dys = [dy for _y, dy in sorted(ends, key=lambda e: e[0])]
            if len(dys) == 1:
                assert dys == [0.0]
                continue
            spread += 1
            assert dys == sorted(dys) and dys[0] < 0 < dys[-1]  # top to bottom, around the side's middle
            assert abs(dys[0] + dys[-1]) < 1e-9 and dys[-1] - dys[0] <= CARD_H - 30 + 1e-9
        assert spread > 0  # the test looked at cards with several edges on one side


def test_a_rebuild_leaves_no_cyclic_garbage_for_the_collector():
    """The collapsed graph a build makes is freed as soon as the build ends: left to the cyclic collector,
    a 10,000-card graph's ~27k dicts cost 50-240 ms in the first collection after each expand."""
    import gc

    from tests.graphs import gpt_step_trace

    tr = gpt_step_trace(3)
    model = None
    for expanded in (set(), {"blocks"}, {"blocks", "blocks.1"}, {"blocks", "blocks.1", "blocks.1.att"}):
        gc.collect()
        was = gc.isenabled()
        gc.disable()
        try:
            model = build_display(tr, frozenset(expanded), aspect=1.4, reuse=model)
            assert gc.collect() == 0, expanded
        finally:
            if was:
                gc.enable()
        assert any(info["kind"] == "module" for info in model.info.values())


def test_an_expand_leaves_few_objects_per_card_for_the_collector_to_scan():
    """Every container a rebuild leaves behind is scanned by the collector's next pass (at 10,000 cards
    ~0.5-1 µs each: tens of ms in every expand), so the display model keeps per-card data in few objects
    (today ~7 a card: position tuples before and after wrapping, port offsets, edge tuples; a dict or
    list per card more would show here). Counted at two sizes (both laid out piece by piece): the count
    per card does not grow."""
    import gc

    from tests.graphs import all_expanded, gpt_step_trace

    per_card, kept = [], []  # (the models stay alive: one freed while counting would hide its objects)
    for blocks in (12, 30):
        tr = gpt_step_trace(blocks)
        everything = all_expanded(tr)
        but_one = {p for p in everything if p != "blocks.7" and not p.startswith("blocks.7.")}
        earlier = build_display(tr, frozenset(but_one), aspect=1.4)
        gc.collect()
        was = gc.isenabled()
        gc.disable()
        try:
            before = len(gc.get_objects())
            model = build_display(tr, frozenset(everything), aspect=1.4, reuse=earlier)
            made = len(gc.get_objects()) - before
        finally:
            if was:
                gc.enable()
        assert len(model.info) > len(earlier.info)
        kept.append(model)
        per_card.append(made / len(model.info))
    assert all(n <= 9 for n in per_card), per_card
    assert per_card[1] <= per_card[0] * 1.1, per_card


def test_wrapping_moves_each_bend_with_its_layer_and_turns_edges_back_between_rows():
    """`_wrap` moves the bends of the edges within one row in one array pass: each point must land where
    its layer's column and row put it (worked out here point by point), and an edge between rows turns
    back through the gap under the row it leaves (four points per row change)."""
    from explorer.core.graph.display import CARD_W, GAP_X, _band_spans, _row_bases, _shape, set_bands
    from tests.graphs import all_expanded, gpt_step_trace

    tr = gpt_step_trace(6)
    model = build_display(tr, all_expanded(tr))
    positions, bends = model.flat
    n_layers = _shape(positions)[0]
    sx = CARD_W + GAP_X
    checked = turned = 0
    for bands in (2, 3, 7):
        set_bands(model, bands)
        per_band = -(-n_layers // bands)
        _sx, spans = _band_spans(positions, bands, bends)
        bases = _row_bases(spans)

        def place(x, y, _per=per_band, _bands=bands, _spans=spans, _bases=bases):
            layer = round(x / sx)
            row = min(_bands - 1, layer // _per)
            return (layer - row * _per) * sx, y - _spans[row][0] + _bases[row], row

        for did, (x, y) in positions.items():
            assert model.positions[did] == place(x, y)[:2]
        for (u, v) in model.edges:
            rows = {place(*p)[2] for p in [positions[u], *bends.get((u, v), ()), positions[v]]}
            if len(rows) == 1:  # within one row: its bends moved as its row (none when it had none)
                assert model.bends.get((u, v), []) == [place(*p)[:2] for p in bends.get((u, v), ())]
                checked += (u, v) in bends
            else:  # from one row into another: turns back, four points a row change
                assert len(model.bends[(u, v)]) >= len(bends.get((u, v), ())) + 4
                turned += 1
    assert checked > 20 and turned > 5, (checked, turned)


def test_each_frame_holds_the_cards_of_its_module_in_the_models_order():
    """`_frames` files cards in frames in array passes: each expanded module's frame holds exactly the
    cards (ops by their module, module cards by their path) inside it, rolled-up runs included, in the
    model's card order (checked card by card here)."""
    from explorer.core.graph.display import _in_module
    from tests.graphs import all_expanded, gpt_step_trace

    tr = gpt_step_trace(5)
    every = all_expanded(tr)
    rolled = {p for p in every if "-" in p.rpartition(".")[2]}
    cases = [every, every - {"blocks.2"} - {p for p in every if p.startswith("blocks.2.")},
             {"blocks", *rolled}, set()]
    for expanded in cases:
        model = build_display(tr, expanded)
        frames = {path: members for path, _label, members in model.frames}
        for path in expanded:
            inside = []
            for did, info in model.info.items():
                where = info.get("path") if info["kind"] == "module" else tr.nodes[did].module
                if where and (where == path or where.startswith(path + ".") or
                              (_in_module(where, path) and not where.startswith(path))):
                    inside.append(did)
            assert frames.get(path, inside if len(inside) <= 1 else None) == inside, (path, expanded)
        assert not expanded or len(frames) > 1


def test_cards_of_one_shape_but_another_stride_or_dtype_say_their_own_facts():
    """A card's facts and layout line are worked out once per (shape, dtype, stride, contiguity, size):
    every card must still say what `tensor_facts` and `tensor_layout` say of its own value."""
    from explorer.core.graph.display import tensor_facts, tensor_layout

    tr, model = _tensor_basics()
    shapes = {}
    for did, info in model.info.items():
        value = tr.nodes[did].value
        assert (info["facts"], info["layout"]) == (tensor_facts(value), tensor_layout(value)), did
        if value is not None:
            shapes.setdefault(tuple(value.shape), set()).add((str(value.dtype), tuple(value.stride)))
    assert any(len(kinds) > 1 for kinds in shapes.values())  # one shape seen with two strides or dtypes
