"""The facts an exercise asks for, computed from the workspace state with the computation spelled out.

`compute(answer, workspaces)` returns an Expected: the value (a float, an int, a shape tuple, a word or a
bool for "do" exercises), how it reads, and the worked answer. Nothing here is typed in a lesson file:
every number comes from the trace, the network iteration, the GPT parameter count or a run's records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from explorer.core.lessons.model import Answer, Expected, Figure, LessonError
from explorer.core.numbers import fmt_number


def compute(answer: Answer, workspaces) -> Expected:
    """The fact `answer` names, from the current state (LessonError when the state lacks it)."""
    handler = _HANDLERS.get(answer.fact)
    if handler is None:
        raise LessonError(f"unknown fact {answer.fact!r}")
    try:
        return handler(answer, workspaces)
    except LessonError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:  # a teacher's lesson asks for
        # something this state does not have (an index out of range, a file gone): one line, no traceback
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LessonError(f"{answer.fact}: {text}") from None


# ------------------------------------------------------------------------------------ expression


def _expression(workspaces):
    ws = workspaces.expression
    if ws.result is None or ws.result.source != ws.state.source:
        ws.compute_now()
    if ws.result is None:
        raise LessonError("the expression workspace has no program that runs")
    return ws


def node_id(ws, name: str) -> str:
    """The trace node of a program variable (its latest value), LessonError when there is none."""
    by_name = ws.result.trace.by_name() if ws.result is not None else {}
    if name in by_name:
        return by_name[name].id
    if ws.result is not None and name in ws.result.trace.nodes:
        return name
    raise LessonError(f"the program has no variable {name!r}")


def _node(answer: Answer, workspaces):
    ws = _expression(workspaces)
    return ws, ws.result.trace, ws.result.trace.nodes[node_id(ws, answer.node)]


def _element(snap, index: list[int], what: str) -> float:
    if snap is None or snap.data is None:
        raise LessonError(f"{what} is not known")
    data = np.asarray(snap.data, dtype=np.float64)
    if index:
        try:
            return float(data.reshape(snap.shape)[tuple(index)])
        except (IndexError, ValueError):
            raise LessonError(f"{what} has shape {snap.shape}: no element {index}") from None
    if snap.numel != 1:
        raise LessonError(f"{what} has shape {snap.shape}: the exercise needs an `index`")
    return float(data.reshape(-1)[0])


def _number(value: float, dtype: str) -> float | int:
    return int(round(value)) if dtype.startswith("int") else value


def _fact_value(answer, workspaces) -> Expected:
    _ws, tr, node = _node(answer, workspaces)
    value = _number(_element(node.value, answer.index, answer.node), node.value.dtype)
    where = f"{answer.node}{answer.index}" if answer.index else answer.node
    worked = f"{where} = {fmt_number(value)}"
    if node.op is not None:
        from explorer.core.autograd.gradcheck import node_text

        inputs = ", ".join(node_text(tr, i) for i in node.inputs)
        worked = f"{where} = {node.op}({inputs}) = {fmt_number(value)}"
        if node.op == "matmul" and answer.index and len(answer.index) == 2:
            worked += _matmul_element(tr, node, answer.index)
    return Expected(value, fmt_number(value), worked)


def _matmul_element(tr, node, index) -> str:
    a, b = (tr.nodes[i].value for i in node.inputs[:2])
    if a.data is None or b.data is None or len(a.shape) != 2 or len(b.shape) != 2:
        return ""
    left = np.asarray(a.data, dtype=np.float64).reshape(a.shape)[index[0]]
    right = np.asarray(b.data, dtype=np.float64).reshape(b.shape)[:, index[1]]
    terms = " + ".join(f"{fmt_number(x)}×{fmt_number(y)}" for x, y in zip(left, right, strict=True))
    return f": row {index[0]} of the left times column {index[1]} of the right, {terms}"


def _fact_grad(answer, workspaces) -> Expected:
    from explorer.core.autograd.gradcheck import chain_rule

    _ws, tr, node = _node(answer, workspaces)
    if node.grad is None:
        raise LessonError(f"no gradient reaches {answer.node}")
    value = _element(node.grad, answer.index, f"the gradient of {answer.node}")
    output = tr.nodes[tr.output_id].name or "L"
    worked = f"d{output}/d{answer.node} = {fmt_number(value)}"
    rules = _rules_into(tr, node.id)
    if len(rules) == 1:
        worked = f"{rules[0].text}\n{rules[0].numbers}".strip()
    elif rules:
        shares = "\n".join(r.numbers or r.text for r in rules)
        worked = (f"{answer.node} is used {len(rules)} times: its gradient is the sum of the shares\n"
                  f"{shares}\nsum: {fmt_number(value)}")
    else:
        leaf = chain_rule(tr, node.id)
        worked = f"{leaf.text}\n{leaf.numbers}".strip()
    return Expected(value, fmt_number(value), worked)


def _rules_into(tr, nid: str) -> list:
    """The chain rules of the ops that sent `nid` a share of its gradient, one per use."""
    from explorer.core.autograd.gradcheck import chain_rules

    rules = []
    for consumer in (n for n in tr.nodes.values() if nid in n.inputs):
        for k, rule in enumerate(chain_rules(tr, consumer.id)):
            if consumer.inputs[k] == nid and rule.result is not None:
                rules.append(rule)
    return rules


def _fact_local(answer, workspaces) -> Expected:
    """The local derivative d(node)/d(its first input that got a gradient), from the chain rule."""
    from explorer.core.autograd.gradcheck import chain_rule

    _ws, tr, node = _node(answer, workspaces)
    rule = chain_rule(tr, node.id)
    if not isinstance(rule.local, int | float):
        raise LessonError(f"the local derivative at {answer.node} is not one number")
    value = float(rule.local)
    worked = f"local derivative: {rule.local_formula} = {fmt_number(value)}\n{rule.numbers}".strip()
    return Expected(value, fmt_number(value), worked)


def _fact_rank(answer, workspaces) -> Expected:
    _ws, _tr, node = _node(answer, workspaces)
    rank = len(node.value.shape)
    return Expected(rank, str(rank), f"{answer.node} has shape {_shape_text(node.value.shape)}: "
                                      f"{rank} dimension{'s' if rank != 1 else ''}, so rank {rank}")


def _shape_text(shape) -> str:
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


def _fact_shape(answer, workspaces) -> Expected:
    _ws, tr, node = _node(answer, workspaces)
    shape = tuple(node.value.shape)
    worked = f"{answer.node} has shape {_shape_text(shape)}"
    if node.op == "matmul" and len(node.inputs) == 2:
        a, b = (tuple(tr.nodes[i].value.shape) for i in node.inputs)
        worked = (f"{_shape_text(a)} @ {_shape_text(b)}: the inner sizes ({a[-1]} and {b[0] if b else ''}) "
                  f"must agree and vanish; the rows of the left and the columns of the right remain: "
                  f"{_shape_text(shape)}")
    return Expected(shape, _shape_text(shape), worked)


def _fact_grad_shape(answer, workspaces) -> Expected:
    _ws, _tr, node = _node(answer, workspaces)
    if node.grad is None:
        raise LessonError(f"no gradient reaches {answer.node}")
    shape = tuple(node.grad.shape)
    return Expected(shape, _shape_text(shape), f"a gradient has the shape of its value: {_shape_text(shape)}")


def _fact_stride(answer, workspaces) -> Expected:
    _ws, _tr, node = _node(answer, workspaces)
    stride = tuple(node.value.stride)
    worked = (f"{answer.node} has shape {_shape_text(node.value.shape)} and stride {_shape_text(stride)}: "
              f"one step along dimension d moves stride[d] elements in memory")
    return Expected(stride, _shape_text(stride), worked)


def _fact_dtype(answer, workspaces) -> Expected:
    _ws, _tr, node = _node(answer, workspaces)
    dtype = node.value.dtype
    return Expected(dtype, dtype, f"{answer.node}.dtype is torch.{dtype}")


def _fact_contiguous(answer, workspaces) -> Expected:
    _ws, _tr, node = _node(answer, workspaces)
    snap = node.value
    row_major = _row_major_strides(snap.shape)
    worked = (f"{answer.node} has stride {_shape_text(snap.stride)}; a contiguous tensor of shape "
              f"{_shape_text(snap.shape)} has stride {_shape_text(row_major)}")
    word = "contiguous" if snap.is_contiguous else "not contiguous"
    return Expected(bool(snap.is_contiguous), word, worked)


def _row_major_strides(shape) -> tuple[int, ...]:
    strides, size = [], 1
    for n in reversed(tuple(shape)):
        strides.append(size)
        size *= max(n, 1)
    return tuple(reversed(strides))


def _fact_program_ok(answer, workspaces) -> Expected:
    ws = workspaces.expression
    last = ws.last if ws.last is not None and ws.last.source == ws.state.source else ws.compute_now()
    if last.ok:
        return Expected(True, "it runs", "the program runs to its end")
    return Expected(False, "it fails", f"the program stops: {last.error}")


def _fact_selected(answer, workspaces) -> Expected:
    ws = _expression(workspaces)
    wanted = node_id(ws, answer.node) if answer.node else None
    done = ws.state.selected is not None and (wanted is None or ws.state.selected == wanted)
    what = f"node {answer.node}" if answer.node else "a node"
    return Expected(done, f"{what} is selected" if done else f"select {what} in the graph", "")


def _fact_player_at(answer, workspaces) -> Expected:
    ws = _expression(workspaces)
    timeline = ws.timeline
    if answer.event in (None, "end"):
        target, what = timeline.length, "the end of the backward pass"
    else:
        target = timeline.step_of(answer.event, node_id(ws, answer.node))
        what = f"the {answer.event} step of {answer.node}"
        if target is None:
            raise LessonError(f"the program has no {answer.event} event at {answer.node!r}")
    done = ws.step >= target
    return Expected(done, f"the player reached {what}" if done else f"step the player to {what}", "")


# ------------------------------------------------------------------------------------ finite differences

FD_STEPS = [10.0 ** -k for k in np.arange(0, 8.25, 0.25)]  # h from 1 down to 1e-8, four per decade


def fd_errors(workspaces, param: str | None = None) -> tuple[str, list[float], list[float], float]:
    """|central difference − exact| of dL/d(param) for each h of FD_STEPS, the program run in float32.

    The exact value is autograd in float64. Returns (param, hs, errors, exact).
    """
    import torch

    from explorer.core.autograd.gradcheck import differentiated, finite_difference_grads

    ws = _expression(workspaces)
    program = ws.result.program
    names = list(program.param_names)
    if not names:
        raise LessonError("the program has no param to differentiate")
    param = param or names[0]
    exact_run = program.run(overrides=_overrides(ws, torch.float64), dtype=torch.float64)
    if exact_run.backward_count:  # the program ran its own backward(): .grad holds the gradient
        exact = float(exact_run.params[param].grad.reshape(-1)[0])
    else:
        output = exact_run.require_scalar()
        exact = float(torch.autograd.grad(output, exact_run.params[param])[0].reshape(-1)[0])
    base = program.param_values(_overrides(ws, torch.float64), dtype=torch.float64)

    def in_float32(values):
        return differentiated(program.run(overrides={k: v.to(torch.float32) for k, v in values.items()},
                                          dtype=torch.float32))

    errors = []
    for h in FD_STEPS:
        estimate = finite_difference_grads(in_float32, {param: base[param]}, eps=h)[param]
        errors.append(max(abs(float(estimate.reshape(-1)[0]) - exact), 1e-12))  # log axes: no zero
    return param, list(FD_STEPS), errors, exact


def _overrides(ws, dtype) -> dict:
    import torch

    known = set(ws.result.program.param_names)
    out = {}
    for k, v in ws.state.overrides.items():
        if k in known:
            out[k] = torch.tensor(v, dtype=dtype)
    return out


def figure(name: str, workspaces) -> Figure:
    """The data of a named figure."""
    if name != "fd_error":
        raise LessonError(f"unknown figure {name!r}")
    param, hs, errors, exact = fd_errors(workspaces)
    note = (f"Central difference (L(p + h) − L(p − h)) / 2h for dL/d{param}, the program run in float32, "
            f"against autograd's exact {fmt_number(exact)} (float64). Large h: truncation error, about "
            f"h² × L‴/6, falls as h shrinks. Small h: float32 rounds L to about 7 digits, and that rounding "
            f"divided by 2h grows as h shrinks; once h is below about 1e-7 × |p|, p ± h rounds back to p "
            f"itself and the estimate is 0.")  # where the error is smallest is the step's question
    return Figure(f"Error of the estimate of dL/d{param}", hs, errors, "step h",
                  "|estimate − exact|", logx=True, logy=True, note=note)


def _fact_fd_best_h(answer, workspaces) -> Expected:
    _param, hs, errors, _exact = fd_errors(workspaces, answer.param)
    i = int(np.argmin(errors))
    best = hs[i]
    worked = (f"the error is {errors[0]:.1e} at h = 1, {errors[i]:.1e} at h = {best:.0e} and "
              f"{errors[-1]:.1e} at h = {hs[-1]:.0e}: smallest at h = {best:.0e}")
    return Expected(best, f"{best:.0e}", worked)


# ------------------------------------------------------------------------------------ network


def _network(workspaces):
    ws = workspaces.network
    if ws.iteration is None:
        ws.show(ws.record())
    return ws


def _fact_net_grad(answer, workspaces) -> Expected:
    ws = _network(workspaces)
    grads = ws.iteration.grads
    if answer.param not in grads:
        raise LessonError(f"the network has no parameter {answer.param!r} with a gradient; "
                          f"it has {', '.join(grads)}")
    g = np.asarray(grads[answer.param], dtype=np.float64)
    value = float(g[tuple(answer.index)] if answer.index else g.reshape(-1)[0])
    worked = f"{answer.param}.grad = {fmt_number(value)} after loss.backward()"
    out = [p for p in ws.iteration.phases if p.kind == "loss"]
    spec = ws.spec()
    one_example = spec.batch_size == 1 and spec.loss == "bce" and spec.output_activation == "sigmoid"
    if one_example and answer.param == _last_bias(ws) and _network_output(ws) is not None:
        from explorer.core.mlp.network import example_batch

        a, y = _network_output(ws), float(example_batch(spec)[1].reshape(-1)[0])
        worked = (f"for a sigmoid output a with BCE, dL/dz = a − y; the last bias adds straight into z, "
                  f"so its gradient is a − y = {fmt_number(a)} − {fmt_number(y)} = {fmt_number(value)}")
    elif out:
        worked += f" ({out[0].title})"
    return Expected(value, fmt_number(value), worked)


def _last_bias(ws) -> str | None:
    biases = [n for n in ws.iteration.grads if n.endswith("bias")]
    return biases[-1] if biases else None


def _network_output(ws) -> float | None:
    tr = ws.iteration.trace
    if tr is None:
        return None
    node = tr.by_name().get("output")
    if node is None or node.value.numel != 1:
        return None
    return float(node.value.item())


def _fact_net_value(answer, workspaces) -> Expected:
    """A parameter's value after optimizer.step(), with the update written out."""
    ws = _network(workspaces)
    phases = ws.iteration.phases
    if answer.param not in phases[0].params:
        names = ", ".join(phases[0].params)
        raise LessonError(f"the network has no parameter {answer.param!r}; it has {names}")
    before = phases[0].params[answer.param]
    after = phases[-1].params[answer.param]
    pick = (lambda a: float(np.asarray(a)[tuple(answer.index)])) if answer.index else \
        (lambda a: float(np.asarray(a).reshape(-1)[0]))
    old, new = pick(before.value), pick(after.value)
    grad = pick(ws.iteration.grads[answer.param])
    spec = ws.spec()
    worked = f"{answer.param}: {fmt_number(old)} → {fmt_number(new)}"
    if spec.optimizer == "sgd" and spec.momentum == 0 and spec.weight_decay == 0:
        worked = (f"SGD: p − lr × grad = {fmt_number(old)} − {spec.lr:g} × {fmt_number(grad)} = "
                  f"{fmt_number(new)}")
    return Expected(new, fmt_number(new), worked)


def _fact_net_loss(answer, workspaces) -> Expected:
    ws = _network(workspaces)
    value = float(ws.iteration.loss)
    loss = [p for p in ws.iteration.phases if p.kind == "loss"]
    return Expected(value, fmt_number(value), loss[0].text if loss else f"loss = {fmt_number(value)}")


def _fact_net_parameters(answer, workspaces) -> Expected:
    from explorer.core.mlp.network import parameter_count

    ws = workspaces.network
    spec = ws.spec()
    sizes = [spec.input_size, *spec.hidden, spec.output_size]
    terms = [f"{a}×{b} + {b}" for a, b in zip(sizes, sizes[1:], strict=False)]
    value = parameter_count(spec)
    return Expected(value, f"{value:,}", f"{' + '.join(terms)} = {value:,} (weights plus biases per layer)")


def _fact_grad_accumulated(answer, workspaces) -> Expected:
    ws = workspaces.network
    it = ws.iteration
    if it is None or not it.skip_zero_grad or it.index < 2:
        return Expected(False, "turn on “skip zero_grad” and record a second iteration", "")
    name = _last_bias(ws) or next(iter(it.grads))
    left = it.phases[0].params[name].grad
    total = np.asarray(it.grads[name], dtype=np.float64).reshape(-1)
    if left is None:
        return Expected(False, "the previous .grad was already cleared", "")
    left = np.asarray(left, dtype=np.float64).reshape(-1)
    new = total - left
    worked = (f"{name}.grad after backward = left over {fmt_number(left[0])} + new {fmt_number(new[0])} = "
              f"{fmt_number(total[0])}: backward adds into .grad, so without zero_grad the previous "
              f"iteration's gradient stays in")
    return Expected(True, f".grad of {name} accumulated across two iterations", worked)


# ------------------------------------------------------------------------------------ network health


def _toy_data(ws):
    from explorer.core.mlp.toydata import make_dataset

    d = ws.state.dataset
    return make_dataset(d.name, d.count, d.noise, d.test_fraction, d.seed)


def start_grad_norms(ws) -> tuple[list[str], list[float]]:
    """(layer names, gradient norms) of one backward from the spec's starting weights on the first
    mini-batch of the workspace's toy data: what the Layer health plot shows at step 1."""
    import torch

    from explorer.core.mlp.health import LayerProbe
    from explorer.core.mlp.network import build_model, make_loss, targets_for
    from explorer.core.mlp.toydata import check_toy_spec

    spec = ws.spec()
    check_toy_spec(spec)
    data = _toy_data(ws)
    model = build_model(spec)
    probe = LayerProbe(model)
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(spec.seed))
    idx = order[: min(spec.batch_size, len(order))]
    make_loss(spec)(model(data.x_train[idx]), targets_for(spec, data.y_train[idx])).backward()
    probe.before_update(True)
    probe.after_update(True)
    return probe.layer_names, probe.fields()["grad_norms"]


def _fact_smallest_grad_layer(answer, workspaces) -> Expected:
    names, norms = start_grad_norms(workspaces.network)
    values = [np.inf if v is None else v for v in norms]
    k = int(np.argmin(values))
    listed = ", ".join(f"{n} {fmt_number(v)}" for n, v in zip(names, values, strict=True))
    return Expected(k + 1, f"{names[k]} (layer {k + 1} of {len(names)})",
                    f"gradient norms at the first step: {listed}. The smallest is {names[k]}'s.")


def _fact_grad_spread(answer, workspaces) -> Expected:
    names, norms = start_grad_norms(workspaces.network)
    pairs = [(n, v) for n, v in zip(names, norms, strict=True) if v is not None and v > 0]
    if len(pairs) < 2:
        raise LessonError("the layers' gradients are zero: no ratio to read")
    (low_name, low), (high_name, high) = min(pairs, key=lambda p: p[1]), max(pairs, key=lambda p: p[1])
    value = high / low
    return Expected(value, f"{value:,.3g}×",
                    f"largest {high_name} {fmt_number(high)} / smallest {low_name} {fmt_number(low)} = "
                    f"{value:,.3g}")


def _fact_lr_suggested(answer, workspaces) -> Expected:
    from explorer.core.mlp.health import toy_lr_test
    from explorer.core.mlp.toydata import check_toy_spec

    ws = workspaces.network
    spec = ws.spec()
    check_toy_spec(spec)
    result = toy_lr_test(spec, _toy_data(ws))
    if result is None or result.suggested is None:
        raise LessonError("the range test found no learning rate where the loss falls steadily")
    value = result.suggested
    return Expected(value, fmt_number(value),
                    f"the smoothed loss falls fastest at lr {fmt_number(value)} (of {len(result.lrs)} rates "
                    f"from {fmt_number(result.lrs[0])} up to {fmt_number(result.lrs[-1])})")


def _newest_toy_run(ws):
    runs = [r for r in ws.state.runs if r.steps]
    if not runs:
        raise LessonError("no training run yet: press Train in the Train on toy data tab")
    return runs[-1]


def _fact_dead_share(answer, workspaces) -> Expected:
    from explorer.core.mlp.health import health_names

    run = _newest_toy_run(workspaces.network)
    if not run.dead:
        raise LessonError("this run has no layer health records: train it again")
    _linears, acts = health_names(run.spec.spec())
    row = run.dead[-1]
    pairs = [(name, v) for name, v in zip(acts, row, strict=False) if v is not None]
    if not pairs:
        raise LessonError("this network has no ReLU layer, so no unit can die: use ReLU activations")
    name, value = max(pairs, key=lambda p: p[1])
    listed = ", ".join(f"{n} {v:.0%}" for n, v in pairs)
    return Expected(float(value), f"{value:.0%} ({name})",
                    f"at step {run.steps[-1]}, the share of units that were 0 for the whole batch: {listed}")


def _fact_run_trains(answer, workspaces) -> Expected:
    from explorer.core.mlp.network import preset_spec

    run = _newest_toy_run(workspaces.network)
    spec = run.spec.spec().to_dict()
    base = preset_spec(answer.base or "toy-2d").to_dict()
    changed = [k for k in spec if spec[k] != base.get(k)]
    acc = run.train_acc[-1]
    if run.status != "done":
        return Expected(False, "train the run to its last step", "")
    if len(changed) != 1:
        what = ", ".join(changed) if changed else "nothing"
        return Expected(False, f"change exactly one setting of {answer.base} (you changed {what})", "")
    if acc < 0.9:
        return Expected(False, f"the run reached {acc:.0%} accuracy: it needs 90 %", "")
    return Expected(True, f"changing {changed[0]} to {spec[changed[0]]} trained it to {acc:.0%} accuracy",
                    f"{changed[0]}: {base[changed[0]]} -> {spec[changed[0]]}; final train accuracy {acc:.0%}")


# ------------------------------------------------------------------------------------ GPT configuration


def _config(config: dict):
    from explorer.core.gpt import budget

    return budget.make_config(config)


def _count(cfg, tied: bool | None) -> dict[str, int]:
    from explorer.core.gpt.model import count_parameters

    if tied is not None:
        cfg = cfg.replace(tie_weights=tied)
    return count_parameters(cfg)


def count_text(cfg, counts: dict[str, int]) -> str:
    """The parameter count of a config, part by part, with the products written out."""
    E, H, L, V, T = cfg.emb_dim, cfg.hidden_dim, cfg.n_layers, cfg.vocab_size, cfg.context_length
    qkv_bias = " + 3E" if cfg.qkv_bias else ""
    lines = [
        f"embeddings: V×E + T×E = {V:,}×{E} + {T:,}×{E} = {counts['embeddings']:,}",
        f"attention: L × (E×3E{qkv_bias} + E×E + E) = {L} × {counts['attention'] // L:,} = "
        f"{counts['attention']:,}",
        f"MLP: L × (E×H + H + H×E + E) with H = {H} = {counts['mlp']:,}",
        f"LayerNorms: (2L + 1) × 2E = {counts['norms']:,}",
        "head: tied to the token embedding, 0 new" if cfg.tie_weights or counts["head"] == 0
        else f"head: V×E = {V:,}×{E} = {counts['head']:,}",
        f"total: {counts['total']:,}",
    ]
    return "\n".join(lines)


def _fact_parameters(answer, workspaces) -> Expected:
    cfg = _config(workspaces.pretrain.state.config)
    if answer.tied is not None:
        cfg = cfg.replace(tie_weights=answer.tied)
    counts = _count(cfg, None)
    value = counts[answer.part]
    return Expected(value, f"{value:,}", count_text(cfg, counts))


def _change(answer, workspaces) -> tuple[int, str]:
    from explorer.core.gpt import budget

    if answer.base not in budget.preset_names():
        raise LessonError(f"unknown preset {answer.base!r}")
    now_cfg = _config(workspaces.pretrain.state.config)
    base_cfg = _config(budget.preset_config(answer.base))
    now, base = _count(now_cfg, answer.tied)[answer.part], _count(base_cfg, answer.tied)[answer.part]
    changed = [f"{k} {getattr(base_cfg, k)} → {getattr(now_cfg, k)}" for k in _fields(base_cfg)
               if getattr(base_cfg, k) != getattr(now_cfg, k)]
    worked = (f"{', '.join(changed) or 'nothing changed'}: {now:,} − {base:,} = {now - base:+,}\n"
              f"{count_text(now_cfg, _count(now_cfg, None))}")
    return now - base, worked


def _fields(cfg) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(cfg)]


def _fact_parameters_change(answer, workspaces) -> Expected:
    delta, worked = _change(answer, workspaces)
    return Expected(delta, f"{delta:+,}", worked)


def _fact_parameters_trend(answer, workspaces) -> Expected:
    delta, worked = _change(answer, workspaces)
    word = "more" if delta > 0 else "fewer" if delta < 0 else "same"
    return Expected(word, word, worked)


# ------------------------------------------------------------------------------------ pretraining runs


def _done_runs(workspaces) -> list:
    ws = workspaces.pretrain
    return [r for r in ws.runs.values()
            if r.status == "done" and r.checkpoint and Path(r.checkpoint).exists()]


def _latest_run(workspaces):
    runs = _done_runs(workspaces)
    if not runs:
        raise LessonError("train a run first: no finished run with a checkpoint yet")
    selected = workspaces.pretrain.state.selected
    for run in runs:
        if run.run_id == selected:
            return run
    return runs[-1]


def _fact_run_done(answer, workspaces) -> Expected:
    runs = _done_runs(workspaces)
    if not runs:
        return Expected(False, "press Train and let the run finish", "")
    run = runs[-1]
    train, val = run.final_losses()
    losses = f"train loss {fmt_number(train)}" if train is not None else "no loss recorded"
    if val is not None:
        losses += f", validation loss {fmt_number(val)}"
    return Expected(True, f"run {run.run_id} finished after {run.steps_done()} steps ({losses})", "")


def _fact_samples_seen(answer, workspaces) -> Expected:
    runs = [r for r in _done_runs(workspaces) if r.samples]
    if not runs:
        return Expected(False, "train a run with samples on (sample every > 0) and let it finish", "")
    run = runs[-1]
    return Expected(True, f"run {run.run_id} wrote {len(run.samples)} samples, the last at step "
                          f"{run.samples[-1][0]}", "")


def _fact_lower_loss(answer, workspaces) -> Expected:
    run = _latest_run(workspaces)
    train, val = run.final_losses()
    if train is None or val is None:
        raise LessonError(f"run {run.run_id} has no train and validation loss to compare")
    word = "train" if train < val else "validation"
    return Expected(word, word, f"run {run.run_id} ends with train loss {fmt_number(train)} and "
                                f"validation loss {fmt_number(val)}")


def _fact_val_trend(answer, workspaces) -> Expected:
    run = _latest_run(workspaces)
    val = [v for v in run.evals["val_loss"].view().tolist() if v == v]
    if len(val) < 2:
        raise LessonError(f"run {run.run_id} measured the validation loss fewer than two times")
    best = min(val)
    word = "rising" if val[-1] > best + 1e-9 else "falling"
    return Expected(word, word, f"validation losses of run {run.run_id}: "
                                f"{', '.join(fmt_number(v) for v in val)}; lowest {fmt_number(best)}, "
                                f"last {fmt_number(val[-1])}")


def attention_maps(workspaces, prompt: str = "the model"):
    """The attention weights (layers, heads, T, T) of the latest finished run on `prompt`: the maps the
    Attention tab shows (explorer.core.workspaces.pretrain.compute_attention)."""
    from explorer.core.workspaces.pretrain import compute_attention

    run = _latest_run(workspaces)
    try:
        return run, compute_attention(run.checkpoint, prompt, run.name).maps
    except ValueError as exc:  # none of the prompt's characters are in the run's corpus
        raise LessonError(str(exc)) from None


def _fact_attention_zero(answer, workspaces) -> Expected:
    run, maps = attention_maps(workspaces)
    T = maps.shape[-1]
    upper = np.triu(np.ones((T, T), dtype=bool), 1)
    above = float(np.abs(maps[..., upper]).max()) if upper.any() else 0.0
    below = float(np.abs(maps[..., ~upper]).min())
    word = "above" if above == 0.0 and below > 0 else "none"
    return Expected(word, word, f"in every map of run {run.run_id}, the entries above the diagonal (a token "
                                f"looking at later tokens) are at most {above:g}: the causal mask")


def _fact_attention_row_sum(answer, workspaces) -> Expected:
    run, maps = attention_maps(workspaces)
    sums = maps.sum(axis=-1)
    value = float(sums.reshape(-1)[-1])
    return Expected(value, fmt_number(value), f"row sums of run {run.run_id}'s maps run from "
                                              f"{sums.min():.6f} to {sums.max():.6f}: each row is a softmax")


def _finetuned(workspaces):
    ws = workspaces.pretrain
    for run in reversed(_done_runs(workspaces)):
        source = ws.runs.get(getattr(run, "continues", None) or -1)
        if source is not None and (source.corpus or None) != (run.corpus or None):
            return run, source
    return None, None


def _fact_finetune_done(answer, workspaces) -> Expected:
    run, source = _finetuned(workspaces)
    if run is None:
        return Expected(False, "choose a text of your own as the corpus, select the finished run and "
                               "press Continue", "")
    return Expected(True, f"run {run.run_id} continued run {source.run_id} on another text", "")


def corpus_loss(checkpoint: str, corpus_path: str | None) -> float:
    """The validation loss of a run's checkpoint on a corpus (a text file; None: the built-in corpus)."""
    from explorer.core.gpt.train import Trainer

    settings = {"corpus_path": corpus_path or None, "device": "cpu", "compile": False, "dtype": "float32"}
    try:
        return float(Trainer.load_checkpoint(checkpoint, settings=settings).evaluate()["val_loss"])
    except (OSError, ValueError) as exc:  # CorpusError, CheckpointError: a file moved or changed
        raise LessonError(f"cannot measure the loss: {str(exc).splitlines()[0]}") from None


def _fact_finetune_compare(answer, workspaces) -> Expected:
    run, source = _finetuned(workspaces)
    if run is None:
        raise LessonError("fine-tune first: continue a finished run on a text of your own")
    own = corpus_loss(run.checkpoint, run.corpus)
    original = corpus_loss(run.checkpoint, source.corpus)
    before = corpus_loss(source.checkpoint, source.corpus)
    word = "lower" if own < original else "higher"
    from explorer.core.workspaces.pretrain import corpus_label

    worked = (f"validation loss of the fine-tuned run {run.run_id}: {fmt_number(own)} on your text "
              f"({corpus_label(run.corpus)}), {fmt_number(original)} on the pretraining corpus "
              f"({corpus_label(source.corpus)}); the pretrained run {source.run_id} had {fmt_number(before)} "
              f"there")
    return Expected(word, word, worked)


_HANDLERS = {
    "value": _fact_value, "grad": _fact_grad, "local": _fact_local, "rank": _fact_rank,
    "shape": _fact_shape, "stride": _fact_stride, "grad_shape": _fact_grad_shape, "dtype": _fact_dtype,
    "contiguous": _fact_contiguous, "program_ok": _fact_program_ok, "selected": _fact_selected,
    "player_at": _fact_player_at, "fd_best_h": _fact_fd_best_h,
    "net_grad": _fact_net_grad, "net_value": _fact_net_value, "net_loss": _fact_net_loss,
    "net_parameters": _fact_net_parameters, "grad_accumulated": _fact_grad_accumulated,
    "parameters": _fact_parameters, "parameters_change": _fact_parameters_change,
    "parameters_trend": _fact_parameters_trend,
    "run_done": _fact_run_done, "samples_seen": _fact_samples_seen, "lower_loss": _fact_lower_loss,
    "val_trend": _fact_val_trend, "attention_zero": _fact_attention_zero,
    "attention_row_sum": _fact_attention_row_sum, "finetune_done": _fact_finetune_done,
    "finetune_compare": _fact_finetune_compare, "smallest_grad_layer": _fact_smallest_grad_layer,
    "lr_suggested": _fact_lr_suggested, "grad_spread": _fact_grad_spread, "dead_share": _fact_dead_share,
    "run_trains": _fact_run_trains,
}
