"""The torch-free description of a GPT and of its training: configs, presets, counts and estimates.

Everything the pretraining form, a session file or a saved run needs before a model is built: `GPTConfig`
and `TrainSettings` with their checks, the presets (`PRESETS`, `TRAIN_PRESETS`), the exact parameter count,
the FLOPs per token and the memory estimate of a training step. Importing this module imports neither torch
nor numpy, so the Pretraining workspace's form is built, restored and edited while torch loads (issue 20
item 10). `explorer.core.gpt.model` (the nn.Modules) and `explorer.core.gpt.train` (the loop) re-export
these names, so every older import path keeps working.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from explorer.core.gpt.config import ConfigError, ConfigMixin


@dataclass
class GPTConfig(ConfigMixin):
    """The shape of a GPT: every number the parameter count and memory estimate depend on."""

    unknown_field_noun = "GPT config field"

    # Number of distinct tokens the model can read and predict (rows of the embedding table).
    # With the character tokenizer the trainer sets it from the corpus.
    vocab_size: int = 50257
    # Longest sequence the model sees at once (rows of the position embedding table).
    context_length: int = 1024
    # Width of every token's vector as it flows through the model (the residual stream).
    emb_dim: int = 768
    # Width of the MLP's hidden layer in each block; None means the usual 4 x emb_dim.
    hidden_dim: int | None = None
    # Attention heads per block; each head works on emb_dim / n_heads dimensions.
    n_heads: int = 12
    # Number of transformer blocks stacked on top of each other.
    n_layers: int = 12
    # Probability of zeroing an activation during training (dropout); 0 turns it off.
    drop_rate: float = 0.1
    # Whether the query/key/value projections have a bias (GPT-2 has none).
    qkv_bias: bool = False
    # Whether the output head reuses the token embedding matrix instead of having its own weights.
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if self.hidden_dim is None and isinstance(self.emb_dim, int):
            self.hidden_dim = 4 * self.emb_dim

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head."""
        return self.emb_dim // self.n_heads

    def problems(self) -> dict[str, str]:
        """Field name -> a message a student can act on, for every invalid field (empty when valid)."""
        out: dict[str, str] = {}
        sizes = ("vocab_size", "context_length", "emb_dim", "hidden_dim", "n_heads", "n_layers")
        for name in sizes:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                out[name] = f"{name} must be a whole number, got {value!r}"
            elif value < 1:
                out[name] = f"{name} must be at least 1, got {value}"
        if "emb_dim" not in out and "n_heads" not in out and self.emb_dim % self.n_heads:
            out["n_heads"] = (
                f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}): "
                f"each head gets emb_dim / n_heads dimensions"
            )
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate < 1.0:
            out["drop_rate"] = f"drop_rate must be a number from 0 up to (not including) 1, got {rate!r}"
        for name in ("qkv_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                out[name] = f"{name} must be true or false, got {getattr(self, name)!r}"
        return out

    def replace(self, **changes) -> GPTConfig:
        """A copy with some fields changed; hidden_dim follows emb_dim unless it was set apart from it."""
        if "emb_dim" in changes and "hidden_dim" not in changes and self.hidden_dim == 4 * self.emb_dim:
            changes["hidden_dim"] = None
        return super().replace(**changes)


PRESETS: dict[str, GPTConfig] = {
    # nanoGPT's CPU "baby GPT" on characters: about 0.8M parameters, learns visibly in a minute.
    "tiny": GPTConfig(vocab_size=128, context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.0),
    # nanoGPT's Shakespeare-char model: about 10.7M parameters, meant for a GPU.
    "small": GPTConfig(vocab_size=128, context_length=256, emb_dim=384, n_heads=6, n_layers=6, drop_rate=0.2),
    # The seed's GPT-2 configuration (124M with a tied head, 163M untied).
    "gpt2-124m": GPTConfig(
        vocab_size=50257,
        context_length=1024,
        emb_dim=768,
        n_heads=12,
        n_layers=12,
        drop_rate=0.1,
        qkv_bias=False,
        tie_weights=False,
    ),
}


def preset(name: str, **changes) -> GPTConfig:
    """A fresh copy of the preset `name` with `changes` applied; ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError({"preset": f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"})
    return PRESETS[name].replace(**changes)


# Multiply-adds of a full-window forward for one sequence (about context x n_layers x 12 emb_dim^2) below
# which a CPU generates on one torch thread. Generating runs hundreds of tiny kernels per token (one row
# at a time within the context, one window past it); split over threads, each waits at a join, and on a
# busy machine for a descheduled thread: nanoGPT's baby GPT (50M) sampled 120 tokens in 5.6 s on one
# thread and 79 s on two, paired, with the load average at 9.5 on 2 cores (`bench/train_bench.py` prints
# this pair: --sample-repeats).
GENERATION_ONE_THREAD_MACS = 100_000_000


def generation_threads(config: GPTConfig, batch: int = 1) -> int:
    """Torch threads for generating from this model on a CPU: 1 when a window's forward is small, else 0
    (keep the thread count as it is)."""
    macs = batch * config.context_length * config.n_layers * 12 * config.emb_dim**2
    return 1 if macs < GENERATION_ONE_THREAD_MACS else 0


# How a CPU micro-batch may be split over the cores (TrainSettings.batch_split; train.cpu_batch_parts).
BATCH_SPLITS = ("auto", "processes", "threads", "off")


@dataclass
class TrainSettings(ConfigMixin):
    """How to train: steps, batch, optimiser, schedule, logging, device. Every field is JSON-able."""

    unknown_field_noun = "training setting"

    steps: int = 500  # optimizer steps in the whole run (a resumed run continues up to this)
    batch_size: int = 12  # sequences per micro-batch
    grad_accum_steps: int = 1  # micro-batches whose gradients add up before one optimizer step
    lr: float = 1e-3  # peak learning rate, reached after the warm-up
    min_lr: float | None = None  # floor of the cosine decay; None means lr / 10
    warmup_steps: int = 20  # steps of linear warm-up from lr / warmup_steps to lr
    weight_decay: float = 0.1  # AdamW decay on weight matrices and embeddings (not biases, norms)
    beta1: float = 0.9  # AdamW momentum of the gradient
    beta2: float = 0.99  # AdamW momentum of the squared gradient
    grad_clip: float = 1.0  # largest allowed global gradient norm; 0 turns clipping off
    eval_every: int = 50  # measure validation loss every this many steps (and at the start); 0: never
    eval_batches: int = 10  # batches averaged for each validation (and train) loss estimate
    sample_every: int = 100  # generate a text sample every this many steps; 0: never
    sample_tokens: int = 120  # tokens per sample
    sample_prompt: str = ""  # text the samples continue; empty starts from a newline
    temperature: float = 0.8  # sampling temperature: lower is more conservative
    top_k: int = 0  # sample only among the k likeliest tokens; 0 means all
    log_every: int = 1  # emit a "step" record every this many steps
    # Record per-block gradient norms and update ratios (block_grad_norms, update_ratios) on the first
    # step and every this many steps, when the step is logged; 0: never (explorer/core/gpt/health.py).
    health_every: int = 10
    # Record each block's activation and gradient histograms (64 bins) on the first step and every this
    # many steps, as "histograms" records; 0: never (explorer/core/gpt/histograms.py).
    hist_every: int = 50
    device: str = "auto"  # auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps
    # auto: bf16 autocast on CUDA GPUs that support it, and on a CPU for models at least 128 wide where a
    # measurement at the start finds it faster (train.cpu_bf16_decision); float32 elsewhere. Or float32 /
    # bfloat16.
    dtype: str = "auto"
    # torch.compile the model's loss where the run is long enough to pay the compile back (on a CPU at least
    # 10,000 steps, and a C++ compiler on the PATH); the start line says whether it did and why.
    compile: bool = False
    seed: int = 1337  # seeds initial weights, batches, dropout and samples
    tokenizer: str = "char"  # "char" (one token per character) or "bpe" (byte-level BPE, vocab_size tokens)
    val_fraction: float = 0.1  # share of the corpus (its tail) held out for validation
    corpus_path: str | None = None  # UTF-8 text file to train on; None: the built-in corpus
    out_dir: str | None = None  # where the final checkpoint and metrics.csv go; None: nowhere
    save_every: int = 0  # also keep a checkpoint every this many steps (step-K.safetensors); 0: never
    # Rewrite the run's one checkpoint every this many steps (out_dir/checkpoint.safetensors, or the path
    # the Pretraining workspace gives), atomically: a crash or a kill loses at most these steps. 0: at end.
    checkpoint_every: int = 0
    threads: int = 0  # torch CPU threads; 0 leaves torch's choice
    # On a CPU with several cores, split each micro-batch into one part per core, each part's forward and
    # backward on one core with one-thread kernels (not with dropout, compile, block checkpointing or
    # several ranks): processes (every part but the first in a helper process), threads (each part on a
    # thread of the training process), auto (processes for a model of at most 5M parameters whose step
    # does at least 0.5 GFLOPs, like nanoGPT's baby GPT, in 4 parts at most; else off); off: every kernel
    # spread over all threads.
    batch_split: str = "auto"
    optimizer_impl: str = "auto"  # AdamW kernel: auto, fused, foreach or for-loop
    # Activation checkpointing of every block: keep only each block's input for backward and recompute
    # the rest during backward (less memory, about a third more compute per step).
    checkpoint_blocks: bool = False

    def problems(self) -> dict[str, str]:
        """Field name -> message for every invalid setting (empty when valid)."""
        out: dict[str, str] = {}
        positive = ("steps", "batch_size", "grad_accum_steps", "eval_batches", "log_every")
        non_negative = ("warmup_steps", "eval_every", "sample_every", "sample_tokens", "top_k", "save_every",
                        "checkpoint_every", "threads", "health_every",
                        "hist_every")
        for name in positive + non_negative:
            value = getattr(self, name)
            low = 1 if name in positive else 0
            if isinstance(value, bool) or not isinstance(value, int):
                out[name] = f"{name} must be a whole number, got {value!r}"
            elif value < low:
                out[name] = f"{name} must be at least {low}, got {value}"
        for name in ("lr", "weight_decay", "grad_clip", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                out[name] = f"{name} must be a number, got {value!r}"
            elif value < 0 or (name == "lr" and value == 0):
                out[name] = f"{name} must be {'positive' if name == 'lr' else 'zero or more'}, got {value}"
        if self.min_lr is not None and not (isinstance(self.min_lr, int | float) and 0 <= self.min_lr):
            out["min_lr"] = f"min_lr must be zero or more, got {self.min_lr!r}"
        for name in ("beta1", "beta2"):
            if not isinstance(getattr(self, name), int | float) or not 0 <= getattr(self, name) < 1:
                out[name] = f"{name} must be from 0 up to (not including) 1, got {getattr(self, name)!r}"
        if not isinstance(self.val_fraction, float) or not 0 < self.val_fraction < 0.9:
            out["val_fraction"] = f"val_fraction must be between 0 and 0.9, got {self.val_fraction!r}"
        if self.dtype not in ("auto", "float32", "bfloat16"):
            out["dtype"] = f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}"
        if self.batch_split not in BATCH_SPLITS:
            out["batch_split"] = (f"batch_split must be auto, processes, threads or off, "
                                  f"got {self.batch_split!r}")[:200]
        if self.tokenizer not in ("char", "bpe"):
            out["tokenizer"] = f"tokenizer must be char or bpe, got {self.tokenizer!r}"
        if not isinstance(self.checkpoint_blocks, bool):
            got = repr(self.checkpoint_blocks)[:100]
            out["checkpoint_blocks"] = f"checkpoint_blocks must be true or false, got {got}"
        if self.optimizer_impl not in ("auto", "fused", "foreach", "for-loop"):
            out["optimizer_impl"] = (
                f"optimizer_impl must be auto, fused, foreach or for-loop, got {self.optimizer_impl!r}"
            )
        if not isinstance(self.device, str) or not re.fullmatch(r"(auto|cpu|cuda|mps)|(cuda|mps):\d{1,3}",
                                                                self.device):
            out["device"] = f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}"[:200]
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            out["seed"] = f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed!r}"[:200]
        for name in ("corpus_path", "out_dir"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                out[name] = f"{name} must be a path (text), got {getattr(self, name)!r}"[:200]
        return out


# Training settings that suit each model preset (same names as gpt.PRESETS).
TRAIN_PRESETS: dict[str, TrainSettings] = {
    # A higher peak lr than nanoGPT's 1e-3 (meant for 2000 steps) so 500 steps show clear progress.
    "tiny": TrainSettings(steps=500, batch_size=12, lr=3e-3, warmup_steps=20, eval_every=50,
                          sample_every=100, checkpoint_every=100),
    "small": TrainSettings(steps=5000, batch_size=64, lr=1e-3, warmup_steps=100, eval_every=250,
                           sample_every=500, checkpoint_every=250),
    "gpt2-124m": TrainSettings(steps=5000, batch_size=8, grad_accum_steps=8, lr=6e-4, warmup_steps=200,
                               beta2=0.95, eval_every=250, sample_every=500, tokenizer="bpe",
                               checkpoint_every=250),
}


# Narrowest model (emb_dim) for which "auto" measures bf16 on a CPU (train.cpu_bf16_decision). bf16
# against float32 per training step with one thread (batch 12; `bench/precision_bench.py --kernels`), on
# a Xeon with AMX: width 16 0.7x, 32 0.55-0.7x, 64 1.05-1.25x, 128 1.1-1.9x, 256 1.6-1.8x; on an AMD EPYC
# with avx512_bf16: 16 0.6x, 32 0.74x, 64 1.15x, 128 1.48x, 256 1.85x. Narrower, the casts cost about
# what the faster products save, and the float32 result is the one to compare with.
CPU_BF16_MIN_WIDTH = 128


def _config_of(config):
    """The GPTConfig of a config or of a model (a GPT module holds its config as `.config`)."""
    return config if isinstance(config, GPTConfig) else config.config


# ---------------------------------------------------------------------------------------------
# Counting and memory, from the config alone (so the UI can show them as the user types).

PARTS = ("embeddings", "attention", "mlp", "norms", "head")


def count_parameters(config) -> dict[str, int]:
    """Exact trainable parameters per part (embeddings, attention, mlp, norms, head) and `total`.

    With a tied head the head's matrix is the token embedding, counted once under embeddings.
    """
    cfg = _config_of(config)
    cfg.validate()
    E, H, L, V = cfg.emb_dim, cfg.hidden_dim, cfg.n_layers, cfg.vocab_size
    attention = (E * 3 * E + (3 * E if cfg.qkv_bias else 0)) + (E * E + E)  # qkv + output projection
    mlp = (E * H + H) + (H * E + E)
    counts = {
        "embeddings": V * E + cfg.context_length * E,
        "attention": L * attention,
        "mlp": L * mlp,
        "norms": (2 * L + 1) * 2 * E,  # two LayerNorms per block plus the final one, weight + bias each
        "head": 0 if cfg.tie_weights else V * E,
    }
    counts["total"] = sum(counts.values())
    return counts


def flops_per_token(config, context_length: int | None = None) -> int:
    """Training FLOPs (forward + backward) per token: 3 x the forward's matrix multiplications.

    Forward, per token (E, H, T, V = emb_dim, hidden_dim, context, vocab; a multiply-add is 2 FLOPs):
    each block does qkv 2*E*3E, output projection 2*E*E, MLP 2*E*H twice, attention scores q.k and
    the weighted sum of v 2*T*E each (counted over the whole context, as PaLM and nanoGPT count it);
    then the head 2*E*V. Backward costs twice the forward (gradients of inputs and of weights).
    Embedding lookups, norms, softmax and biases are left out: they are a few percent at most.
    """
    cfg = _config_of(config)
    E, H, L, V = cfg.emb_dim, cfg.hidden_dim, cfg.n_layers, cfg.vocab_size
    T = min(context_length or cfg.context_length, cfg.context_length)
    block = 2 * E * 3 * E + 2 * E * E + 2 * 2 * E * H + 2 * 2 * T * E
    return 3 * (L * block + 2 * E * V)


def mfu(tokens_per_s: float, config, peak_flops: float | None,
        context_length: int | None = None) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over `peak_flops` (None when the peak is unknown)."""
    if not peak_flops:
        return None
    return tokens_per_s * flops_per_token(config, context_length) / peak_flops


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def activation_bytes(cfg: GPTConfig, batch_size: int, dtype_bytes: int = 4,
                     context_length: int | None = None, checkpoint_blocks: bool = False) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward pass of a batch.

    Per block (B, T, E, H = batch, context, emb_dim, hidden_dim): the inputs of both LayerNorms and of
    the four linear layers, q, k, v and the attention output (9 x BTE), the MLP's hidden layer before
    and after GELU (2 x BTH); then the final norm's and head's inputs and the log-softmax of the logits.
    With dropout on, the 1-byte dropout masks, and the (B, nh, T, T) attention matrices that the
    unfused attention (PyTorch's CPU path when attention dropout is on) keeps: probabilities before and
    after dropout, the dropout scale, and its mask. Matches what autograd saves on a CPU within ~10%.
    With `checkpoint_blocks` a block keeps only its input (B x T x E): the rest is recomputed in backward.
    """
    T = min(context_length or cfg.context_length, cfg.context_length)
    B, E, H, L = batch_size, cfg.emb_dim, cfg.hidden_dim, cfg.n_layers
    bte = B * T * E
    per_block = bte if checkpoint_blocks else 9 * bte + 2 * B * T * H
    values = L * per_block + 2 * bte + B * T * cfg.vocab_size
    total = values * dtype_bytes
    if cfg.drop_rate > 0 and checkpoint_blocks:
        total += bte  # the embedding's dropout mask, outside the blocks
    elif cfg.drop_rate > 0:
        attention = B * cfg.n_heads * T * T
        total += (2 * L + 1) * bte + L * attention * (3 * dtype_bytes + 1)
    return total


def memory_estimate(
    config: GPTConfig, batch_size: int = 1, dtype: str = "float32", context_length: int | None = None,
    checkpoint_blocks: bool = False,
) -> dict[str, int]:
    """Bytes for weights, gradients, AdamW state (two moments) and activations of one batch, plus `total`.

    `dtype` is the storage type of everything (float32, bfloat16, float16); the activation figure is an
    estimate, the others are exact for plain (non-sharded) training.
    """
    if dtype not in DTYPE_BYTES:
        raise ConfigError({"dtype": f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}"})
    size = DTYPE_BYTES[dtype]
    n = count_parameters(config)["total"]
    out = {
        "weights": n * size,
        "gradients": n * size,
        "optimizer": 2 * n * size,
        "activations": activation_bytes(config, batch_size, size, context_length, checkpoint_blocks),
    }
    out["total"] = sum(out.values())
    return out


def field_help(cls) -> dict[str, str]:
    """Field name -> the comment beside (or just above) it in the dataclass's source, for help texts."""
    import inspect
    import re

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^#]*?(?:#\s*(.*))?$", stripped)
        if match and match.group(1) in {f.name for f in dataclasses.fields(cls)}:
            out[match.group(1)] = match.group(2) or " ".join(above)
        above = []
    return out
