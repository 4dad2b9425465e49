"""Small feed-forward networks: the torch objects of a spec, and the parts of one training step.

`NetSpec` (torch-free, with the presets, in explorer/core/mlp/spec.py; re-exported here) describes a
multilayer perceptron (layer widths, activations, loss, optimizer); `build_model` builds an ordinary
`nn.Sequential` whose children are named `fc1`, `relu1`, `fc2`, `sigmoid2`, ... so that parameter names
(`fc1.weight`) and module paths read well in the graph. `NetSession.run_iteration` runs one training
iteration and returns it as data: a list of `Phase`s (zero_grad, forward layer by layer, loss, backward
node by node in the order autograd's engine ran, optimizer.step parameter by parameter), each carrying the
state of every parameter at that moment.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.core.autograd.timeline import Timeline
from explorer.core.autograd.trace import trace
from explorer.core.mlp.spec import (  # noqa: F401 - the torch-free names, re-exported (their old home)
    ACTIVATION_LABELS,
    INITS,
    LOSSES,
    OPTIMIZERS,
    PRESETS,
    NetSpec,
    NetSpecError,
    Preset,
    layer_names,
    parameter_count,
    preset_spec,
)
from explorer.core.numbers import fmt_array, fmt_fixed, fmt_number

# the module class of each activation of ACTIVATION_LABELS (the same keys)
ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "none": None,
}


class IterationError(RuntimeError):
    """The tracer could not record a training iteration (the parameters are left as they were)."""


def build_model(spec: NetSpec) -> nn.Sequential:
    """The spec as an nn.Sequential, with weights drawn from torch's default init under `spec.seed`."""
    spec.validate()
    widths = [spec.input_size, *spec.hidden, spec.output_size]
    acts = [*spec.activations, spec.output_activation]
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, act in enumerate(acts, start=1):
            layers[f"fc{i}"] = nn.Linear(widths[i - 1], widths[i])
            cls = ACTIVATIONS[act]
            if cls is not None:
                layers[f"{act}{i}"] = cls()
        model = nn.Sequential(layers)
        initialise(model, spec.init)
        return model
    finally:
        # Building a model should not disturb the caller's random stream.
        torch.random.set_rng_state(gen_state)


def initialise(model: nn.Module, init: str) -> None:
    """Re-draw every Linear layer's weights by `init` (a key of INITS), in module order, from torch's
    global generator; "default" keeps what nn.Linear drew (uniform in ±1/sqrt(fan_in), biases too).

    xavier: uniform with variance 2 / (fan_in + fan_out) (Glorot and Bengio 2010); he: normal with
    variance 2 / fan_in, for ReLU (He et al. 2015); zeros: every weight 0, so every unit of a layer
    computes the same thing and gets the same gradient: they never become different (the symmetry
    problem). Biases start at 0 with all three.
    """
    if init == "default":
        return
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                if init == "xavier":
                    nn.init.xavier_uniform_(module.weight)
                elif init == "he":
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                else:
                    nn.init.zeros_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


def make_loss(spec: NetSpec) -> nn.Module:
    """The loss module named by the spec (mean reduction, as torch defaults)."""
    return {
        "bce": nn.BCELoss,
        "bce-logits": nn.BCEWithLogitsLoss,
        "mse": nn.MSELoss,
        "cross-entropy": nn.CrossEntropyLoss,
    }[spec.loss]()


def make_optimizer(spec: NetSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by the spec over the model's parameters."""
    params = model.parameters()
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay or 0.01)


def targets_for(spec: NetSpec, labels: torch.Tensor) -> torch.Tensor:
    """Class labels (N,) as the loss expects them: int64 for cross-entropy, float (N, 1) otherwise."""
    if spec.loss == "cross-entropy":
        return labels.long()
    return labels.float().reshape(-1, 1).expand(-1, spec.output_size).contiguous()


def class1_probability(spec: NetSpec, output: torch.Tensor) -> torch.Tensor:
    """The model's estimate that each sample is class 1, shape (N,), from its raw output."""
    if spec.loss == "cross-entropy":
        return torch.softmax(output, dim=1)[:, 1]
    out = output[:, 0]
    if spec.loss == "bce-logits":
        return torch.sigmoid(out)
    return out.clamp(0.0, 1.0)


def predict_classes(spec: NetSpec, output: torch.Tensor) -> torch.Tensor:
    """Predicted class per sample (N,), int64."""
    if spec.loss == "cross-entropy":
        return output.argmax(dim=1)
    return (class1_probability(spec, output) > 0.5).long()


def example_batch(spec: NetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """A reproducible batch for one iteration: standard-normal inputs and targets the loss accepts.

    With batch size 1 and a binary loss the label is 1.0, as in the seed's example; otherwise labels are
    drawn at random (classes for cross-entropy, 0/1 for the others).
    """
    gen = torch.Generator().manual_seed(spec.seed + 1)
    x = torch.randn(spec.batch_size, spec.input_size, generator=gen)
    if spec.loss == "cross-entropy":
        labels = torch.randint(0, spec.output_size, (spec.batch_size,), generator=gen)
    elif spec.batch_size == 1:
        labels = torch.ones(1)
    else:
        labels = torch.randint(0, 2, (spec.batch_size,), generator=gen).float()
    return x, targets_for(spec, labels)


# ---------------------------------------------------------------------------------------------------
# One training iteration as data
# ---------------------------------------------------------------------------------------------------

PHASE_KINDS = ("zero_grad", "forward", "loss", "backward", "step")
_ACT_FORMULAS = {
    "ReLU": "max(0, x) elementwise",
    "Tanh": "tanh(x) elementwise",
    "Sigmoid": "1 / (1 + e^(−x)) elementwise",
    "GELU": "x·Φ(x) elementwise",
}


@dataclass
class ParamState:
    """One parameter at one moment: its value, its .grad (None while unset) and its last update."""

    value: np.ndarray
    grad: np.ndarray | None
    delta: np.ndarray | None = None


@dataclass
class Phase:
    """One step of the iteration player, with every parameter's state after it."""

    kind: str  # one of PHASE_KINDS
    title: str  # short label for a list
    text: str  # what happened, in words and numbers
    params: dict[str, ParamState]
    module: str | None = None  # module path the phase is about (fc1, relu1, ...)
    node_id: str | None = None  # trace node id when the tracer recorded the iteration
    param: str | None = None  # parameter name for AccumulateGrad and optimizer.step phases
    tensor: np.ndarray | None = None  # the activation or gradient this phase produced


@dataclass
class Iteration:
    """A recorded training iteration."""

    index: int  # 1 for the first iteration of a session
    skip_zero_grad: bool
    phases: list[Phase]
    loss: float
    grads: dict[str, np.ndarray]  # every .grad right after backward()
    trace: Any = None  # explorer.core.autograd.trace.Trace: the tracer records every iteration
    # for each player step (0 = before the first phase), the step of the trace's Timeline showing the
    # same moment: zero_grad -> 0, a layer -> its last forward event, loss -> end of the forward pass,
    # a backward phase -> its event, optimizer.step -> the end
    graph_steps: list[int] = field(default_factory=list)


class NetSession:
    """A model, its optimizer and loss, and one fixed batch: runs iterations and records their phases."""

    def __init__(self, spec: NetSpec, batch: tuple[torch.Tensor, torch.Tensor] | None = None):
        spec.validate()
        self.spec = spec
        self.model = build_model(spec)
        self.optimizer = make_optimizer(spec, self.model)
        self.loss_fn = make_loss(spec)
        self.x, self.y = batch if batch is not None else example_batch(spec)
        self.iterations = 0
        self._last_delta: dict[str, np.ndarray] = {}

    def param_states(self) -> dict[str, ParamState]:
        """Every named parameter as it stands now."""
        return {name: self._state_of(name, p) for name, p in self.model.named_parameters()}

    def grads(self) -> dict[str, np.ndarray | None]:
        """Every parameter's current .grad as a numpy copy (None while unset)."""
        return {n: None if p.grad is None else _np(p.grad) for n, p in self.model.named_parameters()}

    def run_iteration(self, skip_zero_grad: bool = False, optimizer_step: bool = True) -> Iteration:
        """Run zero_grad (unless skipped), forward, loss, backward and (optionally) optimizer.step."""
        params = dict(self.model.named_parameters())
        states = self.param_states()
        phases: list[Phase] = [self._zero_grad_phase(skip_zero_grad, states)]
        states = dict(phases[0].params)

        captured: dict[str, torch.Tensor] = {}

        def forward_and_loss():
            out = self.model(self.x)
            loss = self.loss_fn(out, self.y)
            captured["out"], captured["loss"] = out, loss
            return loss, {"x": self.x, "output": out, "loss": loss}

        grads_before = {n: None if p.grad is None else p.grad.clone() for n, p in params.items()}
        try:
            tr = trace(forward_and_loss, max_snapshot_elems=self._largest_activation())
        except Exception as exc:  # noqa: BLE001 - whatever stopped the tracer, the user gets one message
            for n, p in params.items():  # it may have run backward part-way: undo what it accumulated
                p.grad = grads_before[n]
            raise IterationError(f"could not record this training iteration: {type(exc).__name__}: {exc}") \
                from exc
        loss_value = float(captured["loss"].detach())

        phases += self._forward_phases(tr, states)
        phases.append(self._loss_phase(captured, states))
        phases += self._backward_phases(tr, states)
        final = states  # the backward phases updated `states` in place as grads arrived
        for name, p in params.items():
            if p.grad is not None and (final[name].grad is None or not _same(final[name].grad, p.grad)):
                final[name] = ParamState(final[name].value, _np(p.grad), final[name].delta)
        grads = {n: _np(p.grad) for n, p in params.items() if p.grad is not None}
        if optimizer_step:
            phases += self._step_phases(params, states)
        self.iterations += 1
        iteration = Iteration(self.iterations, skip_zero_grad, phases, loss_value, grads, tr)
        iteration.graph_steps = graph_steps(iteration)
        return iteration

    def _largest_activation(self) -> int:
        """Elements of the largest tensor one iteration makes, so that the trace keeps all of them."""
        spec = self.spec
        widths = [spec.input_size, *spec.hidden, spec.output_size]
        return max(4096, spec.batch_size * max(widths))

    # -- phases ------------------------------------------------------------------------------------

    def _state_of(self, name: str, p: torch.Tensor) -> ParamState:
        grad = None if p.grad is None else _np(p.grad)
        return ParamState(_np(p), grad, self._last_delta.get(name))

    def _zero_grad_phase(self, skip: bool, states: dict[str, ParamState]) -> Phase:
        name, first = next(iter(states.items()))
        if not skip:
            self.optimizer.zero_grad(set_to_none=True)
            text = (
                "optimizer.zero_grad(): every parameter's .grad is cleared (set to None), so the coming "
                "backward() starts from zero instead of adding to the previous gradient."
            )
            new = {n: ParamState(s.value, None, s.delta) for n, s in states.items()}
            return Phase("zero_grad", "optimizer.zero_grad()", text, new)
        if first.grad is None:
            text = "zero_grad() skipped, but there is nothing to keep yet: every .grad is still empty."
        else:
            text = (
                f"zero_grad() skipped: .grad still holds the last gradient ({name}.grad[0] = "
                f"{fmt_number(first.grad.reshape(-1)[0])}). backward() will add the new gradient to it: "
                "for the "
                "same batch the gradient doubles, and optimizer.step() then uses the stale sum."
            )
        return Phase("zero_grad", "zero_grad() skipped", text, dict(states))

    def _forward_phases(self, tr: Any, states: dict[str, ParamState]) -> list[Phase]:
        """One phase per layer: the value of its last op in the trace is the layer's output."""
        last_op: dict[str, Any] = {}
        for nid in tr.forward_order:
            node = tr.nodes[nid]
            if node.kind == "op" and node.module:
                last_op[node.module.split(".", 1)[0]] = node
        phases = []
        for name, module in self.model.named_children():
            node = last_op.get(name)
            if node is None:
                continue  # a layer that ran no op (none in the presets)
            kind = type(module).__name__
            if isinstance(module, nn.Linear):
                what = (
                    f"x·Wᵀ + b with W {tuple(module.weight.shape)} and b {tuple(module.bias.shape)}"
                    if module.bias is not None
                    else f"x·Wᵀ with W {tuple(module.weight.shape)}"
                )
            else:
                what = _ACT_FORMULAS.get(kind, kind)
            out = _snap_data(node.value).reshape(node.value.shape)
            text = f"{name} = {kind}: {what}; output {tuple(out.shape)} = {fmt_array(out)}"
            phases.append(Phase("forward", f"forward: {name} ({kind})", text, dict(states), name, tensor=out))
        return phases

    def _loss_phase(self, captured: dict[str, torch.Tensor], states: dict[str, ParamState]) -> Phase:
        loss = float(captured["loss"].detach())
        out = _np(captured["out"])
        target = _np(self.y)
        n = out.shape[0]
        text = (
            f"loss = {type(self.loss_fn).__name__}(output {fmt_array(out)}, target {fmt_array(target)}) = "
            f"{fmt_fixed(loss)}"
            f" (mean over {n} sample{'s' if n != 1 else ''})"
        )
        return Phase("loss", f"loss = {fmt_fixed(loss)}", text, dict(states), tensor=np.array(loss))

    def _backward_phases(self, tr: Any, states: dict[str, ParamState]) -> list[Phase]:
        params = dict(self.model.named_parameters())
        phases = []
        for event in tr.backward_events:
            node = tr.nodes[event.node_id]
            pname = _param_name(getattr(node, "name", None), params)
            incoming = _snap_data(event.grad_outputs[0] if event.grad_outputs else None)
            torch_name = getattr(event, "torch_name", None) or getattr(node, "torch_name", "") or ""
            if pname is not None:
                phases.append(self._accumulate_phase(pname, incoming, states, node_id=event.node_id))
                continue
            label = getattr(node, "label", event.node_id)
            where = f" in {node.module}" if getattr(node, "module", None) else ""
            sent = [_snap_data(g) for g in (event.grad_inputs or [])]
            sent_text = ", ".join(fmt_array(g) for g in sent if g is not None) or "nothing"
            text = (
                f"{torch_name} for {label}{where}: receives dL/d{label} = {fmt_array(incoming)} and sends "
                f"{sent_text} to its inputs"
            )
            phases.append(
                Phase(
                    "backward",
                    f"backward: {torch_name}",
                    text,
                    dict(states),
                    getattr(node, "module", None),
                    event.node_id,
                    tensor=incoming,
                )
            )
        return phases

    def _accumulate_phase(
        self,
        pname: str,
        incoming: np.ndarray | None,
        states: dict[str, ParamState],
        node_id: str | None = None,
    ) -> Phase:
        p = dict(self.model.named_parameters())[pname]
        old = states[pname].grad
        final = _np(p.grad) if p.grad is not None else incoming
        states[pname] = ParamState(states[pname].value, final, states[pname].delta)
        if old is None:
            text = f"AccumulateGrad: {pname}.grad = {fmt_array(final)} (it was empty)"
        else:
            # Show the sum on the element with the largest gradient: leading elements may be dead units.
            i = int(np.abs(final).reshape(-1).argmax())
            at = _index_text(i, final.shape)
            was, now = old.reshape(-1)[i], final.reshape(-1)[i]
            text = (
                f"AccumulateGrad: .grad was not cleared, so the new gradient is added to the old one: "
                f"{pname}.grad{at} = old {fmt_number(was)} + new {fmt_number(now - was)} = {fmt_number(now)}"
            )
        module = pname.rsplit(".", 1)[0]
        return Phase(
            "backward", f"AccumulateGrad: {pname}", text, dict(states), module, node_id, pname, final
        )

    def _step_phases(self, params: dict[str, torch.Tensor], states: dict[str, ParamState]) -> list[Phase]:
        before = {n: _np(p) for n, p in params.items()}
        self.optimizer.step()
        phases = []
        for name, p in params.items():
            after = _np(p)
            delta = after - before[name]
            self._last_delta[name] = delta
            grad = states[name].grad
            states[name] = ParamState(after, grad, delta)
            text = _update_text(self.optimizer, p, name, before[name], grad, after)
            module = name.rsplit(".", 1)[0]
            phases.append(
                Phase(
                    "step", f"optimizer.step(): {name}", text, dict(states), module, param=name, tensor=delta
                )
            )
        return phases


def graph_steps(iteration: Iteration) -> list[int]:
    """For each player step of an iteration, the step of its trace's Timeline showing the same moment."""
    tr = iteration.trace
    if tr is None:
        return []
    timeline = Timeline(tr)
    steps = [0]
    for phase in iteration.phases:
        if phase.kind == "zero_grad":
            steps.append(0)
        elif phase.kind == "forward":
            own = [k for nid, k in timeline.value_at.items() if _inside(tr.nodes[nid].module, phase.module)]
            steps.append(max(own) if own else steps[-1])
        elif phase.kind == "loss":
            steps.append(timeline.forward_length)
        elif phase.kind == "backward":
            k = timeline.step_of("backward", phase.node_id) if phase.node_id else None
            steps.append(k if k is not None else steps[-1])
        else:
            steps.append(timeline.length)
    return steps


def _inside(module: str | None, path: str | None) -> bool:
    """Whether module path `module` is `path` or inside it."""
    return bool(module) and bool(path) and (module == path or module.startswith(path + "."))


def _update_text(opt: torch.optim.Optimizer, p: torch.Tensor, name: str, before, grad, after) -> str:
    """The update rule with the numbers of element 0 filled in."""
    group = opt.param_groups[0]
    lr = group["lr"]
    # Work the example on the element that moved most: element 0 is often a dead ReLU unit's zero.
    i = int(np.abs(after - before).reshape(-1).argmax())
    w0, w1 = before.reshape(-1)[i], after.reshape(-1)[i]
    g0 = 0.0 if grad is None else grad.reshape(-1)[i]
    at = _index_text(i, before.shape)
    biggest = f"largest |Δ| = {fmt_number(np.abs(after - before).max())}"
    state = opt.state.get(p, {})
    if isinstance(opt, torch.optim.SGD):
        buf = state.get("momentum_buffer")
        if buf is None or group.get("momentum", 0) == 0:
            return (
                f"{name} ← {name} − lr·grad with lr = {lr:g}. Element {name}{at}: "
                f"{w0:.5f} − {lr:g} × ({g0:.5f}) = {w1:.5f}; {biggest}"
            )
        v0 = float(buf.reshape(-1)[i])
        return (
            f"v ← {group['momentum']:g}·v + grad, {name} ← {name} − lr·v with lr = {lr:g}. "
            f"Element {name}{at}: v = {v0:.5f}, {w0:.5f} − {lr:g} × {v0:.5f} = {w1:.5f}; {biggest}"
        )
    b1, b2 = group["betas"]
    t = int(float(state.get("step", 1)))
    m0 = float(state["exp_avg"].reshape(-1)[i]) if "exp_avg" in state else 0.0
    v0 = float(state["exp_avg_sq"].reshape(-1)[i]) if "exp_avg_sq" in state else 0.0
    mhat, vhat = m0 / (1 - b1**t), v0 / (1 - b2**t)
    decay = ""
    if isinstance(opt, torch.optim.AdamW) and group["weight_decay"]:
        decay = f"first {name} ← {name} − lr·λ·{name} (λ = {group['weight_decay']:g}), then "
    return (
        f"Adam (t = {t}): m ← {b1:g}·m + {fmt_number(1 - b1)}·g, v ← {b2:g}·v + {fmt_number(1 - b2)}·g², "
        f"{decay}{name} ← {name} − lr·m̂/(√v̂ + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), lr = {lr:g}. "
        f"Element {name}{at}: g = {g0:.5f}, m = {m0:.5f}, v = {fmt_number(v0)}, m̂ = {mhat:.5f}, "
        f"v̂ = {fmt_number(vhat)}, "
        f"{w0:.5f} → {w1:.5f}; {biggest}"
    )


def _index_text(flat_index: int, shape: tuple) -> str:
    """`[r, c]` for a flat index into an array of the shape ("" for a scalar)."""
    if not shape:
        return ""
    return "[" + ", ".join(str(int(k)) for k in np.unravel_index(flat_index, shape)) + "]"


def _param_name(name: str | None, params: dict[str, torch.Tensor]) -> str | None:
    if not name:
        return None
    if name in params:
        return name
    matches = [p for p in params if name.endswith("." + p) or p.endswith("." + name)]
    return matches[0] if len(matches) == 1 else None


def _snap_data(snapshot: Any) -> np.ndarray | None:
    if snapshot is None:
        return None
    data = getattr(snapshot, "data", snapshot)
    return np.asarray(data, dtype=np.float64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _same(a: np.ndarray, b: torch.Tensor) -> bool:
    return a.shape == tuple(b.shape) and np.array_equal(a, _np(b))
