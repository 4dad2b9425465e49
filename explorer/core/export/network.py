"""A network of the Network workspace as a plain PyTorch script: the module, the loss, the optimizer, the
training iteration the player shows (printing the loss, each `.grad` and each update), and, for 2-D
specs, the toy dataset and the training loop with the workspace's settings.

Everything is written from the workspace's spec (`explorer.core.mlp.network.NetSpec`); the numbers match
`NetSession`'s because the script seeds and builds in the same order.
"""

from __future__ import annotations

import inspect
import re

from explorer.core.export.notebook import Document, Section
from explorer.core.mlp import toydata
from explorer.core.mlp.network import (
    ACTIVATION_LABELS,
    LOSSES,
    OPTIMIZERS,
    NetSpec,
    NetSpecError,
    layer_names,
)

LOSS_CLASSES = {"bce": "BCELoss", "bce-logits": "BCEWithLogitsLoss", "mse": "MSELoss",
                "cross-entropy": "CrossEntropyLoss"}


def network_document(spec: NetSpec, *, iterations: int = 1, skip_zero_grad: bool = False,
                     dataset: dict | None = None, title: str = "Network") -> Document:
    """The spec as a Document. `iterations`: the iteration the player shows (the last runs without
    zero_grad when `skip_zero_grad`); `dataset`: toy data settings (name, noise, count, test_fraction,
    seed, steps) for the training part, which needs a spec with 2 inputs and 2 classes."""
    spec.validate()
    widths = [spec.input_size, *spec.hidden, spec.output_size]
    shape = " -> ".join(map(str, widths))
    doc = Document(
        f"{title}: exported from Autograd Explorer",
        f"The network of the Network workspace as plain PyTorch: {shape}, "
        f"{', '.join(ACTIVATION_LABELS[a] for a in spec.activations) or 'no hidden layer'}, "
        f"{LOSSES[spec.loss]} loss, {OPTIMIZERS[spec.optimizer]} with learning rate {spec.lr:g}. Run it "
        "with `python <this file>`: it runs the training iteration the app's player shows and prints the "
        "loss, every parameter's `.grad` and the update `optimizer.step()` made"
        + (", then trains on the toy dataset with the same settings." if _toy_ok(spec, dataset) else "."),
    )
    doc.sections.append(Section("Imports", "torch alone" + (", and numpy for the toy data."
                                                             if _toy_ok(spec, dataset) else "."),
                                ("import numpy as np\n" if _toy_ok(spec, dataset) else "")
                                + "import torch\nfrom torch import nn"))
    doc.sections.append(Section("The network", "An `nn.Module` with the app's layer names (`fc1`, "
                                "`relu1`, ...), so the parameters are called `fc1.weight`, `fc1.bias`, as "
                                "in the app. Seeding torch right before building it gives the app's "
                                "initial weights: each `nn.Linear` draws its own in order.",
                                _module_code(spec)))
    doc.sections.append(Section("Loss, optimizer and one batch",
                                "The loss and optimizer of the spec, and the batch the app's iteration "
                                "player uses: standard-normal inputs from their own generator.",
                                _setup_code(spec)))
    doc.sections.append(Section("One training iteration",
                                "`zero_grad()` clears every `.grad`, the forward pass and the loss follow, "
                                "`backward()` fills each `.grad` and `optimizer.step()` moves each "
                                "parameter. Skipping `zero_grad()` would add the new gradient to the old.",
                                _iteration_code(spec, iterations, skip_zero_grad)))
    if _toy_ok(spec, dataset):
        doc.sections.append(Section("The toy dataset", "Points of two classes in the plane, with Gaussian "
                                    "noise, shuffled and split into train and test parts, made with "
                                    "numpy's seeded generator as in the app.", _dataset_code(dataset)))
        doc.sections.append(Section("Training on it", "Mini-batches in a shuffled order (a new order each "
                                    "epoch), a fresh network from the same seed, the same optimizer "
                                    "settings; the loss and accuracy on both parts at the end.",
                                    _training_code(spec, dataset)))
    return doc


def _toy_ok(spec: NetSpec, dataset: dict | None) -> bool:
    if dataset is None:
        return False
    try:
        toydata.check_toy_spec(spec)
    except NetSpecError:
        return False
    return True


def _module_code(spec: NetSpec) -> str:
    widths = [spec.input_size, *spec.hidden, spec.output_size]
    names = layer_names(spec)
    init, lines = [], []
    linear = 0
    for name, kind in names:
        if kind == "Linear":
            init.append(f"        self.{name} = nn.Linear({widths[linear]}, {widths[linear + 1]})")
            linear += 1
        else:
            init.append(f"        self.{name} = nn.{kind}()")
    # forward: one line per layer, the activation wrapped around its Linear
    i = 0
    while i < len(names):
        call = f"self.{names[i][0]}(x)"
        if i + 1 < len(names) and names[i + 1][1] != "Linear":
            call = f"self.{names[i + 1][0]}({call})"
            i += 1
        i += 1
        lines.append(f"        x = {call}" if i < len(names) else f"        return {call}")
    shape = " -> ".join(map(str, widths))
    return "\n".join([
        "class Net(nn.Module):",
        f'    """{shape}: each Linear computes x @ W.T + b."""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
        *init,
        "",
        "    def forward(self, x):",
        f"        # x: (batch, {spec.input_size})",
        *lines,
        "",
        "",
        f"SEED = {spec.seed}",
        "",
        "",
        "def make_model():",
        '    """A network with the app\'s initial weights."""',
        "    torch.manual_seed(SEED)",
        *(["    return Net()"] if spec.init == "default" else [
            "    model = Net()",
            f"    # {INIT_COMMENTS[spec.init]}",
            "    with torch.no_grad():",
            "        for layer in model.modules():",
            "            if isinstance(layer, nn.Linear):",
            f"                {INIT_CALLS[spec.init]}",
            "                nn.init.zeros_(layer.bias)",
            "    return model",
        ]),
    ])


INIT_CALLS = {"xavier": "nn.init.xavier_uniform_(layer.weight)",
              "he": 'nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")',
              "zeros": "nn.init.zeros_(layer.weight)"}
INIT_COMMENTS = {"xavier": "Xavier (Glorot) initialisation: uniform, variance 2 / (fan_in + fan_out)",
                 "he": "He (Kaiming) initialisation for ReLU: normal, variance 2 / fan_in",
                 "zeros": "every weight 0: the units of a layer stay identical (the symmetry problem)"}


def _optimizer_code(spec: NetSpec) -> str:
    if spec.optimizer == "sgd":
        return (f"torch.optim.SGD(model.parameters(), lr={spec.lr!r}, momentum={spec.momentum!r}, "
                f"weight_decay={spec.weight_decay!r})")
    name = "Adam" if spec.optimizer == "adam" else "AdamW"
    decay = spec.weight_decay if spec.optimizer == "adam" else (spec.weight_decay or 0.01)
    note = "  # AdamW's own default decay when none is set" if spec.optimizer == "adamw" and \
        not spec.weight_decay else ""
    return f"torch.optim.{name}(model.parameters(), lr={spec.lr!r}, weight_decay={decay!r}){note}"


def _targets_code(spec: NetSpec, labels: str) -> str:
    """Labels (N,) as the loss takes them, as `targets_for` makes them."""
    if spec.loss == "cross-entropy":
        return f"{labels}.long()"
    return f"{labels}.float().reshape(-1, 1).expand(-1, {spec.output_size}).contiguous()"


def _setup_code(spec: NetSpec) -> str:
    b, n = spec.batch_size, spec.input_size
    if spec.loss == "cross-entropy":
        labels = f"labels = torch.randint(0, {spec.output_size}, ({b},), generator=gen)  # class indices"
    elif b == 1:
        labels = "labels = torch.ones(1)  # one example, labelled 1.0 as in the seed"
    else:
        labels = f"labels = torch.randint(0, 2, ({b},), generator=gen).float()  # 0 or 1"
    return "\n".join([
        "model = make_model()",
        f"loss_fn = nn.{LOSS_CLASSES[spec.loss]}()",
        f"optimizer = {_optimizer_code(spec)}",
        "",
        "gen = torch.Generator().manual_seed(SEED + 1)",
        f"x = torch.randn({b}, {n}, generator=gen)  # ({b}, {n})",
        labels,
        f"target = {_targets_code(spec, 'labels')}",
    ])


def _iteration_code(spec: NetSpec, iterations: int, skip_zero_grad: bool) -> str:
    iterations = max(1, int(iterations))
    return "\n".join([
        f"ITERATIONS = {iterations}  # the iteration the app's player shows is the last of these",
        f"SKIP_ZERO_GRAD = {bool(skip_zero_grad)}  # the last iteration keeps the old .grad when True",
        "",
        "for iteration in range(1, ITERATIONS + 1):",
        "    last = iteration == ITERATIONS",
        "    if not (last and SKIP_ZERO_GRAD):",
        "        optimizer.zero_grad(set_to_none=True)",
        "    output = model(x)",
        "    loss = loss_fn(output, target)",
        "    loss.backward()",
        "    before = {name: p.detach().clone() for name, p in model.named_parameters()}",
        "    optimizer.step()",
        '    print(f"iteration {iteration}: loss = {loss.item()!r}")',
        "",
        "for name, p in model.named_parameters():",
        '    print(f"grad {name} =", p.grad.tolist())',
        '    print(f"update {name} =", (p.detach() - before[name]).tolist())',
    ])


def _dataset_code(dataset: dict) -> str:
    name = dataset.get("name", "moons")
    generator = toydata._GENERATORS[name]
    source = inspect.getsource(generator)
    helpers = []
    if "_split_counts" in source:
        helper = inspect.getsource(toydata._split_counts)
        helpers.append(helper.replace("def _split_counts", "def split_counts"))
        source = source.replace("_split_counts", "split_counts")
    source = source.replace(f"def {generator.__name__}(", f"def {name}(")
    source = re.sub(r"rng: np\.random\.Generator, n: int\) -> tuple\[np\.ndarray, np\.ndarray\]",
                    "rng, n)", source)
    helpers = [re.sub(r"\(n: int\) -> tuple\[int, int\]", "(n)", h) for h in helpers]
    n, noise = int(dataset.get("count", 200)), float(dataset.get("noise", 0.1))
    test_fraction, seed = float(dataset.get("test_fraction", 0.25)), int(dataset.get("seed", 0))
    return "\n".join([
        *[h.rstrip() + "\n\n" for h in helpers],
        source.rstrip(),
        "",
        "",
        f"def make_dataset(n={n}, noise={noise!r}, test_fraction={test_fraction!r}, seed={seed}):",
        '    """Train and test inputs (N, 2) and 0/1 labels (N,), float32."""',
        "    rng = np.random.default_rng(seed)",
        f"    x, y = {name}(rng, n)",
        "    x = x + rng.normal(0.0, noise, size=x.shape)",
        "    order = rng.permutation(n)",
        "    x, y = x[order], y[order]",
        "    n_test = min(int(round(n * test_fraction)), n - 2)",
        "    x = torch.tensor(x, dtype=torch.float32)",
        "    y = torch.tensor(y, dtype=torch.float32)",
        "    split = n - n_test",
        "    return x[:split], y[:split], x[split:], y[split:]",
        "",
        "",
        "x_train, y_train, x_test, y_test = make_dataset()",
    ])


def _training_code(spec: NetSpec, dataset: dict) -> str:
    steps = int(dataset.get("steps", 1000))
    if spec.loss == "cross-entropy":
        predict = "out.argmax(dim=1)"
    elif spec.loss == "bce-logits":
        predict = "(torch.sigmoid(out[:, 0]) > 0.5).long()"
    else:
        predict = "(out[:, 0].clamp(0.0, 1.0) > 0.5).long()"
    return "\n".join([
        "def evaluate(model, x, labels):",
        '    """(mean loss, accuracy) on inputs x with 0/1 labels."""',
        "    with torch.no_grad():",
        "        out = model(x)",
        f"        loss = loss_fn(out, {_targets_code(spec, 'labels')}).item()",
        f"        accuracy = ({predict} == labels.long()).float().mean().item()",
        "    return loss, accuracy",
        "",
        "",
        f"STEPS = {steps}",
        "model = make_model()",
        f"optimizer = {_optimizer_code(spec)}",
        f"targets = {_targets_code(spec, 'y_train')}",
        "gen = torch.Generator().manual_seed(SEED)  # the order of the mini-batches",
        f"batch = min({spec.batch_size}, len(x_train))",
        "order = torch.randperm(len(x_train), generator=gen)",
        "cursor = 0",
        "for step in range(1, STEPS + 1):",
        "    if cursor + batch > len(x_train):  # a new epoch: reshuffle",
        "        order = torch.randperm(len(x_train), generator=gen)",
        "        cursor = 0",
        "    idx = order[cursor : cursor + batch]",
        "    cursor += batch",
        "    optimizer.zero_grad(set_to_none=True)",
        "    loss = loss_fn(model(x_train[idx]), targets[idx])",
        "    loss.backward()",
        "    optimizer.step()",
        "",
        "train_loss, train_acc = evaluate(model, x_train, y_train)",
        "test_loss, test_acc = evaluate(model, x_test, y_test)",
        'print(f"after {STEPS} steps: train loss {train_loss:.6f}, accuracy {train_acc:.3f}; "',
        '      f"test loss {test_loss:.6f}, accuracy {test_acc:.3f}")',
    ])


def workspace_document(ws) -> Document:
    """The network workspace's spec, iteration and toy settings as a Document."""
    state = ws.state
    title = f"Network ({state.preset})" if state.preset != "custom" else "Network"
    return network_document(ws.spec(), iterations=state.iterations, skip_zero_grad=state.skip_zero_grad,
                            dataset=state.dataset.model_dump(), title=title)
