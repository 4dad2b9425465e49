"""A GPT-2-style language model small enough to read: config, model, parameter count, memory estimate.

The structure follows GPT-2 (token + position embeddings, pre-LayerNorm transformer blocks with causal
multi-head attention and a GELU MLP, a final LayerNorm and a linear head), so that the `gpt2-124m`
preset has exactly the parameter count of the real model: 163,009,536 with an untied output head,
124,412,160 with the head tied to the token embedding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from explorer.core.gpt.config import ConfigError, ConfigMixin
from explorer.core.numbers import format_bytes as format_bytes  # the one formatter; kept here for callers
from explorer.core.speed import single_torch_thread


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


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token `logits` (B, T, V) against `targets` (B, T), in float32."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Causal scaled dot-product attention of (B, nh, T, hs) queries, keys and values.

    On a CPU, PyTorch's fused attention kernel is several times slower in bfloat16 than in float32
    (its backward above all: 10.6 ms against 1.6 ms a layer for nanoGPT's baby GPT), while bfloat16
    matrix products are several times faster. So under bf16 autocast on a CPU the attention itself
    runs in float32 and only its output goes back to bfloat16; everywhere else it runs as it comes.
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout_p,
                                               is_causal=True)
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)


class CausalSelfAttention(nn.Module):
    """Multi-head attention where each position only looks at itself and earlier positions."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.drop_rate = cfg.drop_rate
        self.qkv = nn.Linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.resid_drop = nn.Dropout(cfg.drop_rate)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        shape = (B, T, self.n_heads, C // self.n_heads)
        return tuple(t.view(shape).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self._heads(x)
        drop = self.drop_rate if self.training else 0.0
        y = attend(q, k, v, dropout_p=drop)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))

    def forward_cached(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Attention for new positions only, keys and values of earlier ones kept in `cache` (inference)."""
        B, T, C = x.shape
        q, k, v = self._heads(x)
        if "k" in cache:
            k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)  # (B, nh, S, hs)
        cache["k"], cache["v"] = k, v
        S = k.shape[2]
        if T == S:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:  # one new query may look at every cached position
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # query i sits at position S - T + i
            allowed = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax attention pattern, computed explicitly (SDPA never materialises it): (B, nh, T, T)."""
        q, k, _ = self._heads(x)
        T = x.shape[1]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


class MLP(nn.Module):
    """Position-wise feed-forward network: expand, GELU, project back."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.emb_dim, cfg.hidden_dim)
        self.act = nn.GELU()  # exact GELU: on CPUs ~15% faster than the tanh form, same parameters
        self.proj = nn.Linear(cfg.hidden_dim, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.emb_dim)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.emb_dim)
        self.mlp = MLP(cfg)
        # Activation checkpointing: keep only the block's input for backward and run its forward again
        # during backward, trading compute for the memory of everything inside the block.
        self.checkpointed = False
        self.recomputations = 0  # forwards run again during backward (counted for the trace view)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        if self.checkpointed and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch._C._current_graph_task_id() != -1:  # inside backward: checkpointing recomputes
            self.recomputations += 1
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """The block for new positions only, with the attention's key/value cache (inference)."""
        x = x + self.attn.forward_cached(self.norm1(x), cache)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """GPT-2-style decoder: `model(idx)` maps token ids (B, T) to next-token logits (B, T, vocab)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg.validate()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.reset_parameters()

    def set_checkpointing(self, blocks=True) -> None:
        """Checkpoint the activations of some blocks: True or False for all, or an iterable of indices."""
        chosen = set(range(len(self.blocks))) if blocks is True else set() if not blocks else set(blocks)
        for i, block in enumerate(self.blocks):
            block.checkpointed = i in chosen

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual projections scaled down by sqrt(2 * n_layers)."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        # Each block adds two residual branches; scaling keeps the stream's variance from growing.
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    def _embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        T = idx.shape[1]
        if start + T > self.config.context_length:
            limit = self.config.context_length
            raise ValueError(f"sequence of {start + T} tokens is longer than context_length {limit}")
        pos = torch.arange(start, start + T, device=idx.device)
        return self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)

    def _forward_cached(self, idx: torch.Tensor, caches: list[dict], start: int) -> torch.Tensor:
        # Logits for tokens at positions start.. given the caches of positions before them.
        x = self._embed(idx, start)
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block.forward_cached(x, cache)
        return self.out_head(self.final_norm(x))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab_size)."""
        x = self._embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.read_out(x)

    def read_out(self, x: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, vocab_size) of a residual stream (B, T, C): the final LayerNorm, then the
        output head. `forward` ends with it; the logit lens applies it to every layer's stream."""
        return self.out_head(self.final_norm(x))

    def residual_streams(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream (B, T, C) after the embeddings and after each block: n_layers + 1 tensors,
        the last being what `forward` reads out. Runs in the model's current mode (call it in eval)."""
        x = self._embed(idx)
        streams = [x]
        for block in self.blocks:
            x = block(x)
            streams.append(x)
        return streams

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting `targets` (B, T) from `idx` (B, T)."""
        return lm_loss(self(idx), targets)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head for one sequence (T,) or (1, T): (n_layers, nh, T, T)."""
        if idx.dim() == 1:
            idx = idx[None]
        idx = idx[:1, -self.config.context_length :]
        was_training = self.training
        self.eval()
        try:
            maps = []
            x = self._embed(idx)
            for block in self.blocks:
                maps.append(block.attn.attention_weights(block.norm1(x))[0])
                x = block(x)
            return torch.stack(maps).float()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend `idx` (B, T) by `max_new_tokens` sampled tokens; a `generator` spares the global RNG.

        A small model on a CPU generates on one torch thread (`generation_threads`)."""
        was_training = self.training
        self.eval()
        one_thread = idx.device.type == "cpu" and generation_threads(self.config, idx.shape[0]) == 1
        try:
            with single_torch_thread() if one_thread else contextlib.nullcontext():
                return self._generate(idx, max_new_tokens, temperature, top_k, generator)
        finally:
            self.train(was_training)

    def _generate(self, idx, max_new_tokens, temperature, top_k, generator) -> torch.Tensor:
        ctx = self.config.context_length
        caches: list[dict] = [{} for _ in self.blocks]
        cached = 0  # positions whose keys and values are in `caches`
        for _ in range(max_new_tokens):
            if idx.shape[1] > ctx:
                # The window slides: every position moves, so nothing cached stays valid.
                logits = self(idx[:, -ctx:])[:, -1, :].float()
            else:
                logits = self._forward_cached(idx[:, cached:], caches, cached)[:, -1, :].float()
                cached = idx.shape[1]
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = logits.softmax(dim=-1)
                if generator is not None and generator.device != probs.device:
                    # Sample on the generator's device so seeded samples match on every device.
                    nxt = torch.multinomial(probs.to(generator.device), 1, generator=generator)
                    nxt = nxt.to(idx.device)
                else:
                    nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


# ---------------------------------------------------------------------------------------------
# Counting and memory, from the config alone (so the UI can show them as the user types).

PARTS = ("embeddings", "attention", "mlp", "norms", "head")


def count_parameters(config: GPTConfig | GPT) -> dict[str, int]:
    """Exact trainable parameters per part (embeddings, attention, mlp, norms, head) and `total`.

    With a tied head the head's matrix is the token embedding, counted once under embeddings.
    """
    cfg = config.config if isinstance(config, GPT) else config
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


def flops_per_token(config: GPTConfig | GPT, context_length: int | None = None) -> int:
    """Training FLOPs (forward + backward) per token: 3 x the forward's matrix multiplications.

    Forward, per token (E, H, T, V = emb_dim, hidden_dim, context, vocab; a multiply-add is 2 FLOPs):
    each block does qkv 2*E*3E, output projection 2*E*E, MLP 2*E*H twice, attention scores q.k and
    the weighted sum of v 2*T*E each (counted over the whole context, as PaLM and nanoGPT count it);
    then the head 2*E*V. Backward costs twice the forward (gradients of inputs and of weights).
    Embedding lookups, norms, softmax and biases are left out: they are a few percent at most.
    """
    cfg = config.config if isinstance(config, GPT) else config
    E, H, L, V = cfg.emb_dim, cfg.hidden_dim, cfg.n_layers, cfg.vocab_size
    T = min(context_length or cfg.context_length, cfg.context_length)
    block = 2 * E * 3 * E + 2 * E * E + 2 * 2 * E * H + 2 * 2 * T * E
    return 3 * (L * block + 2 * E * V)


def mfu(tokens_per_s: float, config: GPTConfig | GPT, peak_flops: float | None,
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


def measured_activation_bytes(cfg: GPTConfig, batch_size: int, context_length: int | None = None,
                              checkpoint_blocks: bool = False, device: str = "meta") -> int:
    """What the tracer measures autograd saving for backward (weights left out) in one training forward
    of a batch: the check on `activation_bytes`.

    On the "meta" device the model has shapes without data, so even GPT-2 at its full context costs no
    memory and well under a second; but attention there runs its unfused reference kernel, which keeps
    the (B, nh, T, T) attention matrix that the CPU's and GPUs' fused kernels do not (they keep a
    (B, nh, T) log-sum-exp). "cpu" runs the real kernels: exact for this machine, but it computes."""
    from explorer.core.autograd.trace import trace

    T = min(context_length or cfg.context_length, cfg.context_length)
    with torch.random.fork_rng(devices=[]), torch.device(device):  # the caller's random state stays
        torch.manual_seed(0)
        model = GPT(cfg).train()
        idx = torch.randint(0, cfg.vocab_size, (batch_size, T))
    model.set_checkpointing(checkpoint_blocks)
    tr = trace(lambda: model.loss(idx, idx), backward=False, max_snapshot_elems=0)
    return tr.saved_memory.activations if tr.saved_memory is not None else 0


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
