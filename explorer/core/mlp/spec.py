"""The torch-free description of a small feed-forward network: its spec, the presets, the names.

Everything a form, a session file or a saved run needs to know about a network before anything is built:
`NetSpec` and its check, the presets, the choices (activations, losses, optimizers, initialisations), the
toy datasets' names and the per-layer health figures' keys. Importing this module imports no torch, so the
network workspace's panel is built, and its settings edited, while torch loads (issue 20 item 10);
`explorer.core.mlp.network` builds the torch objects from a spec and re-exports these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

ACTIVATION_LABELS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "none": "none"}
LOSSES = {
    "bce": "BCE",
    "bce-logits": "BCE with logits",
    "mse": "MSE",
    "cross-entropy": "Cross-entropy",
}
OPTIMIZERS = {"sgd": "SGD (momentum)", "adam": "Adam", "adamw": "AdamW"}
# How the Linear layers' weights start (biases start at zero except with PyTorch's default).
INITS = {"default": "PyTorch default", "xavier": "Xavier (Glorot)", "he": "He (Kaiming)", "zeros": "zeros"}

# The toy 2-D datasets (explorer.core.mlp.toydata makes them) and the per-layer health figures a toy run
# records (explorer.core.mlp.health measures them), by the keys sessions save.
DATASET_LABELS = {
    "moons": "Two moons",
    "circles": "Circles",
    "xor": "XOR",
    "spiral": "Spiral",
    "linear": "Linearly separable",
}
HEALTH_KEYS = ("grad_norms", "update_ratios", "act_mean", "act_std", "saturated", "dead")


class NetSpecError(ValueError):
    """A spec that cannot be built or trained; the message says how to fix it."""


@dataclass
class NetSpec:
    """Everything needed to build a small MLP and its training step."""

    input_size: int = 2  # features per sample
    hidden: list[int] = field(default_factory=lambda: [16, 16])  # width of each hidden layer
    activations: list[str] = field(default_factory=lambda: ["tanh", "tanh"])  # one per hidden layer
    output_size: int = 1  # 1 for binary losses, the class count for cross-entropy
    output_activation: str = "none"  # applied after the last Linear
    loss: str = "bce-logits"  # a key of LOSSES
    optimizer: str = "adam"  # a key of OPTIMIZERS
    lr: float = 0.03  # learning rate
    momentum: float = 0.0  # SGD only
    weight_decay: float = 0.0  # L2 for SGD/Adam, decoupled for AdamW
    batch_size: int = 32  # samples per step
    seed: int = 0  # initial weights and example inputs
    init: str = "default"  # a key of INITS: how the Linear layers' weights start

    def validate(self) -> None:
        """Raise NetSpecError with a readable message if the spec does not make sense."""
        if self.input_size < 1 or self.output_size < 1:
            raise NetSpecError("input and output sizes must be at least 1")
        if len(self.hidden) != len(self.activations):
            raise NetSpecError("give one activation per hidden layer")
        if any(w < 1 for w in self.hidden):
            raise NetSpecError("every hidden layer needs at least one unit")
        for act in [*self.activations, self.output_activation]:
            if act not in ACTIVATION_LABELS:
                choices = ", ".join(ACTIVATION_LABELS)
                raise NetSpecError(f"unknown activation {act!r}; choose one of {choices}")
        if self.loss not in LOSSES:
            raise NetSpecError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise NetSpecError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise NetSpecError(f"unknown initialisation {self.init!r}; choose one of {', '.join(INITS)}")
        if not self.lr > 0:
            raise NetSpecError("the learning rate must be positive")
        if self.batch_size < 1:
            raise NetSpecError("the batch size must be at least 1")
        if self.loss == "bce" and self.output_activation != "sigmoid":
            raise NetSpecError(
                "BCE needs probabilities in [0, 1]: set the output activation to Sigmoid, "
                "or choose BCE with logits (which applies the sigmoid itself)"
            )
        if self.loss == "bce-logits" and self.output_activation != "none":
            raise NetSpecError(
                "BCE with logits applies the sigmoid itself: set the output activation to none"
            )
        if self.loss == "cross-entropy":
            if self.output_size < 2:
                raise NetSpecError("cross-entropy needs one output per class (output size at least 2)")
            if self.output_activation != "none":
                raise NetSpecError("cross-entropy applies softmax itself: set the output activation to none")

    def to_dict(self) -> dict:
        """A JSON-able copy of the spec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetSpec:
        """Build a spec from `to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("hidden", "activations"):
            if key in kwargs:
                kwargs[key] = list(kwargs[key])
        return cls(**kwargs)


@dataclass(frozen=True)
class Preset:
    """A named spec with a sentence that says what it shows."""

    name: str
    spec: NetSpec
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "seed",
            NetSpec(10, [5], ["relu"], 1, "sigmoid", "bce", "sgd", 0.01, 0.0, 0.0, 1, 123),
            "The seed's network: 10 inputs -> 5 ReLU units -> 1 sigmoid output, BCE loss, SGD lr 0.01, "
            "one random input with label 1.0.",
        ),
        Preset(
            "mlp-50-30-20-3",
            NetSpec(
                50, [30, 20], ["relu", "relu"], 3, "none", "cross-entropy", "adam", 0.001, 0.0, 0.0, 8, 0
            ),
            "A 50 -> 30 -> 20 -> 3 classifier (2,213 trainable parameters), cross-entropy, Adam.",
        ),
        Preset(
            "toy-2d",
            NetSpec(2, [16, 16], ["tanh", "tanh"], 1, "none", "bce-logits", "adam", 0.03, 0.0, 0.0, 32, 0),
            "A 2-D classifier for the toy datasets: 2 -> 16 -> 16 -> 1 with Tanh, BCE with logits, Adam.",
        ),
        Preset(
            "deep-sigmoid",
            NetSpec(2, [16] * 6, ["sigmoid"] * 6, 1, "none", "bce-logits", "sgd", 0.1, 0.0, 0.0, 32, 0),
            "Six Sigmoid layers on the toy data, SGD: each sigmoid passes back at most a quarter of the "
            "gradient, so the first layers' gradients vanish and the loss stays near ln 2 = 0.693.",
        ),
        Preset(
            "deep-relu-he",
            NetSpec(2, [16] * 6, ["relu"] * 6, 1, "none", "bce-logits", "sgd", 0.1, 0.0, 0.0, 32, 0, "he"),
            "The same six layers with ReLU and He initialisation: the gradient reaches the first layer "
            "undiminished and the network trains.",
        ),
        Preset(
            "lr-too-high",
            NetSpec(2, [16, 16], ["tanh", "tanh"], 1, "none", "bce-logits", "sgd", 3.0, 0.9, 0.0, 32, 0),
            "The toy network with SGD at learning rate 3 and momentum 0.9: each update is far larger than "
            "its weight, the Tanh units saturate and the loss climbs. Learning rate 0.3 trains it.",
        ),
    )
}


def preset_spec(name: str) -> NetSpec:
    """A fresh copy of the named preset's spec (mutable lists are not shared)."""
    if name not in PRESETS:
        raise NetSpecError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return NetSpec.from_dict(PRESETS[name].spec.to_dict())


def layer_names(spec: NetSpec) -> list[tuple[str, str]]:
    """(child name, kind) of every module the spec builds, in order, e.g. ("fc1", "Linear")."""
    names: list[tuple[str, str]] = []
    acts = [*spec.activations, spec.output_activation]
    for i, act in enumerate(acts, start=1):
        names.append((f"fc{i}", "Linear"))
        if act != "none":
            names.append((f"{act}{i}", ACTIVATION_LABELS[act]))
    return names


def parameter_count(spec_or_model) -> int:
    """Trainable parameters: of a spec, computed from the widths (weights plus biases); of a torch module,
    counted."""
    if not isinstance(spec_or_model, NetSpec):  # an nn.Module (its class is not imported here)
        return sum(p.numel() for p in spec_or_model.parameters() if p.requires_grad)
    widths = [spec_or_model.input_size, *spec_or_model.hidden, spec_or_model.output_size]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
