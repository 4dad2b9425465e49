"""A GPT-2-style language model small enough to read: config, model, parameter count, memory estimate.

The structure follows GPT-2 (token + position embeddings, pre-LayerNorm transformer blocks with causal
multi-head attention and a GELU MLP, a final LayerNorm and a linear head), so that the `gpt2-124m`
preset has exactly the parameter count of the real model: 163,009,536 with an untied output head,
124,412,160 with the head tied to the token embedding.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from explorer.core.gpt.config import ConfigError, ConfigMixin  # noqa: F401 - re-exported for callers
from explorer.core.gpt.spec import (  # noqa: F401 - the torch-free half, re-exported for older imports
    DTYPE_BYTES,
    GENERATION_ONE_THREAD_MACS,
    PARTS,
    PRESETS,
    GPTConfig,
    activation_bytes,
    count_parameters,
    field_help,
    flops_per_token,
    generation_threads,
    memory_estimate,
    mfu,
    preset,
)
from explorer.core.numbers import format_bytes as format_bytes  # the one formatter; kept here for callers
from explorer.core.speed import single_torch_thread


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
