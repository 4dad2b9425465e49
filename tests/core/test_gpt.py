"""GPT model: exact parameter counts, config validation, causal attention, attention maps, memory."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.core.gpt import model as model_module
from explorer.core.gpt.model import (
    GPT,
    PRESETS,
    ConfigError,
    GPTConfig,
    count_parameters,
    generation_threads,
    memory_estimate,
    preset,
)


def model_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() counts a tied tensor once


def meta_model(cfg: GPTConfig) -> GPT:
    with torch.device("meta"):  # shapes only: a 163M model costs no memory
        return GPT(cfg)


def small_config(**changes) -> GPTConfig:
    cfg = GPTConfig(vocab_size=31, context_length=12, emb_dim=16, n_heads=4, n_layers=2, drop_rate=0.0)
    return cfg.replace(**changes)


def test_gpt2_counts_match_the_seed():
    assert count_parameters(preset("gpt2-124m"))["total"] == 163_009_536
    assert count_parameters(preset("gpt2-124m", tie_weights=True))["total"] == 124_412_160


def test_gpt2_model_really_has_that_many_parameters():
    assert model_parameters(meta_model(preset("gpt2-124m"))) == 163_009_536
    assert model_parameters(meta_model(preset("gpt2-124m", tie_weights=True))) == 124_412_160


def test_gpt2_count_per_part():
    counts = count_parameters(PRESETS["gpt2-124m"])
    assert counts["embeddings"] == 50257 * 768 + 1024 * 768
    assert counts["head"] == 50257 * 768
    assert counts["norms"] == 25 * 2 * 768
    assert counts["attention"] == 12 * (768 * 2304 + 768 * 768 + 768)
    assert counts["mlp"] == 12 * (768 * 3072 + 3072 + 3072 * 768 + 768)
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


@pytest.mark.parametrize("changes", [
    {}, {"tie_weights": True}, {"qkv_bias": True}, {"hidden_dim": 24}, {"n_layers": 3, "n_heads": 2},
])
def test_formula_matches_the_module(changes):
    cfg = small_config(**changes)
    model = GPT(cfg)
    assert count_parameters(cfg)["total"] == model_parameters(model)
    assert count_parameters(model) == count_parameters(cfg)


@settings(max_examples=40, deadline=None)
@given(vocab=st.integers(1, 300), context=st.integers(1, 64), heads=st.integers(1, 6),
       head_dim=st.integers(1, 12), hidden=st.one_of(st.none(), st.integers(1, 80)), layers=st.integers(1, 4),
       qkv_bias=st.booleans(), tie=st.booleans())
def test_formula_matches_the_module_for_any_config(vocab, context, heads, head_dim, hidden, layers, qkv_bias,
                                                   tie):
    cfg = GPTConfig(vocab_size=vocab, context_length=context, emb_dim=heads * head_dim, hidden_dim=hidden,
                    n_heads=heads, n_layers=layers, qkv_bias=qkv_bias, tie_weights=tie)
    assert count_parameters(cfg)["total"] == model_parameters(meta_model(cfg))


def test_presets_are_valid_and_tiny_is_small():
    for name, cfg in PRESETS.items():
        assert cfg.validate() is cfg, name
    assert count_parameters(PRESETS["tiny"])["total"] < 2_000_000
    assert 5_000_000 < count_parameters(PRESETS["small"])["total"] < 20_000_000


def test_hidden_dim_defaults_to_four_times_emb_and_follows_it():
    cfg = GPTConfig(emb_dim=64, n_heads=4)
    assert cfg.hidden_dim == 256
    assert cfg.replace(emb_dim=32).hidden_dim == 128
    assert GPTConfig(emb_dim=64, n_heads=4, hidden_dim=100).replace(emb_dim=32).hidden_dim == 100


def test_validation_messages_name_the_problem():
    with pytest.raises(ConfigError) as err:
        GPTConfig(emb_dim=100, n_heads=3).validate()
    assert "divisible by n_heads" in str(err.value) and "100" in str(err.value)
    assert set(err.value.problems) == {"n_heads"}
    bad = GPTConfig(n_layers=0, vocab_size=-1, drop_rate=1.0, context_length=2.5, qkv_bias="yes")
    problems = bad.problems()
    assert problems["n_layers"] == "n_layers must be at least 1, got 0"
    assert "at least 1" in problems["vocab_size"]
    assert "drop_rate" in problems["drop_rate"] and "1" in problems["drop_rate"]
    assert "whole number" in problems["context_length"]
    assert "true or false" in problems["qkv_bias"]
    with pytest.raises(ConfigError, match="divisible"):
        GPT(GPTConfig(emb_dim=10, n_heads=4))


def test_dict_round_trip_and_unknown_fields():
    cfg = small_config(tie_weights=True)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown GPT config field 'n_embd'"):
        GPTConfig.from_dict({"n_embd": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_tied_head_shares_the_embedding():
    model = GPT(small_config(tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight


def test_forward_shapes_and_causality():
    torch.manual_seed(0)
    model = GPT(small_config()).eval()
    idx = torch.randint(0, 31, (2, 12))
    logits = model(idx)
    assert logits.shape == (2, 12, 31)
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 31
    # Positions before the change cannot see it.
    assert torch.allclose(model(changed)[:, :7], logits[:, :7], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 7:], logits[:, 7:], atol=1e-4)
    loss = model.loss(idx, idx)
    assert torch.isclose(loss, F.cross_entropy(logits.flatten(0, 1), idx.flatten()), atol=1e-6)
    with pytest.raises(ValueError, match="longer than context_length"):
        model(torch.zeros(1, 13, dtype=torch.long))


def test_initial_loss_is_near_uniform_guess():
    torch.manual_seed(0)
    model = GPT(small_config(vocab_size=100))
    idx = torch.randint(0, 100, (4, 12))
    assert abs(model.loss(idx, idx).item() - math.log(100)) < 0.3


def test_attention_maps_are_causal_distributions_that_sdpa_uses():
    torch.manual_seed(1)
    model = GPT(small_config()).eval()
    idx = torch.randint(0, 31, (9,))
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 4, 9, 9)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, 9))
    assert torch.all(maps.triu(1) == 0)
    # The explicit weights reproduce the fused attention's output in the first block.
    block = model.blocks[0]
    x = block.norm1(model._embed(idx[None]))
    _, _, v = block.attn._heads(x)
    y = (maps[0][None] @ v).transpose(1, 2).reshape(1, 9, 16)
    assert torch.allclose(block.attn.proj(y), block.attn(x), atol=1e-5)


def test_generate_is_seeded_and_leaves_global_rng_alone():
    model = GPT(small_config())
    start = torch.zeros(1, 1, dtype=torch.long)
    state = torch.get_rng_state()
    a = model.generate(start, 20, generator=torch.Generator().manual_seed(3))
    b = model.generate(start, 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (1, 21) and torch.equal(a, b)
    assert model.generate(start, 5, temperature=0, top_k=3).shape == (1, 6)


def test_small_models_generate_on_one_thread_and_the_count_comes_back(monkeypatch):
    # nanoGPT's baby GPT: a window's forward is ~50M multiply-adds, so it samples on one thread; the
    # `small` preset's (~2.7G) keeps the caller's threads. The caller's count is restored afterwards.
    assert generation_threads(PRESETS["tiny"]) == 1
    assert generation_threads(PRESETS["small"]) == 0 and generation_threads(PRESETS["gpt2-124m"]) == 0
    assert generation_threads(PRESETS["tiny"], batch=4) == 0  # four windows at once: worth the threads
    seen = []
    real = model_module.GPT._forward_cached

    def spy(self, *args):
        seen.append(torch.get_num_threads())
        return real(self, *args)

    monkeypatch.setattr(model_module.GPT, "_forward_cached", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        GPT(small_config()).generate(torch.zeros(1, 1, dtype=torch.long), 3)
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
        seen.clear()
        wide = small_config(emb_dim=256, n_heads=4, context_length=512, n_layers=2)
        assert generation_threads(wide) == 0
        GPT(wide).generate(torch.zeros(1, 1, dtype=torch.long), 2)
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_memory_estimate_per_dtype():
    cfg = PRESETS["gpt2-124m"]
    n = 163_009_536
    fp32 = memory_estimate(cfg, batch_size=8, dtype="float32")
    bf16 = memory_estimate(cfg, batch_size=8, dtype="bfloat16")
    assert fp32["weights"] == 4 * n and fp32["gradients"] == 4 * n and fp32["optimizer"] == 8 * n
    assert bf16["weights"] == 2 * n
    assert 1.5 < fp32["activations"] / bf16["activations"] <= 2  # dropout masks take a byte either way
    assert memory_estimate(cfg, batch_size=16)["activations"] == 2 * memory_estimate(cfg, 8)["activations"]
    assert fp32["total"] == sum(v for k, v in fp32.items() if k != "total")
    with pytest.raises(ConfigError, match="unknown dtype"):
        memory_estimate(cfg, dtype="int3")


def saved_activation_bytes(cfg: GPTConfig, batch: int) -> int:
    """Bytes of the tensors autograd really saves for backward in one forward pass (parameters excluded)."""
    torch.manual_seed(0)
    model = GPT(cfg)
    params = {p.data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        if t.data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.loss(idx, idx)
    return sum(storages.values())


@pytest.mark.parametrize("cfg, batch", [
    (GPTConfig(vocab_size=103, context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.0), 12),
    (GPTConfig(vocab_size=1000, context_length=128, emb_dim=64, n_heads=4, n_layers=3, drop_rate=0.1), 8),
    (GPTConfig(vocab_size=5000, context_length=32, emb_dim=64, n_heads=2, n_layers=2, hidden_dim=96), 8),
])
def test_activation_estimate_is_close_to_what_autograd_saves(cfg, batch):
    measured = saved_activation_bytes(cfg, batch)
    estimate = memory_estimate(cfg, batch_size=batch)["activations"]
    assert 0.85 < estimate / measured < 1.15, (estimate, measured)


def reference_generate(model: GPT, idx: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Sampling the slow way: a full forward over the last context_length tokens for every new token."""
    for _ in range(n):
        logits = model(idx[:, -model.config.context_length:])[:, -1, :]
        idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1, generator=generator)], dim=1)
    return idx


def test_cached_generation_matches_full_recomputation():
    torch.manual_seed(4)
    model = GPT(small_config(drop_rate=0.1)).eval()
    prompt = torch.randint(0, 31, (2, 5))
    with torch.no_grad():
        for p in model.parameters():  # sharpen the untrained model so that context changes its predictions
            p.normal_(0.0, 0.5)
        # 20 new tokens: the cache fills to the 12-token context, then the window slides. Sampling
        # (not argmax) makes any change in the distributions show up as different tokens.
        fast = model.generate(prompt, 20, generator=torch.Generator().manual_seed(8))
        slow = reference_generate(model, prompt, 20, torch.Generator().manual_seed(8))
        assert torch.equal(fast, slow)
        caches = [{} for _ in model.blocks]
        seq = torch.randint(0, 31, (1, 9))
        first = model._forward_cached(seq[:, :6], caches, 0)
        rest = model._forward_cached(seq[:, 6:], caches, 6)  # three new queries over nine keys
        assert torch.allclose(torch.cat([first, rest], dim=1), model(seq), atol=1e-5)
    assert model.training is False
