"""The logit lens and per-token loss (explorer/core/gpt/lens.py) against direct torch computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.core.gpt.lens import (
    LensCancelled,
    LensError,
    compute_logit_lens,
    compute_token_losses,
    logit_lens,
    token_losses,
)
from explorer.core.gpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=23, context_length=8, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.3)


def random_model(seed: int = 0, **changes) -> GPT:
    """A small GPT with weights far from the initialisation (so every layer predicts something else),
    left in training mode with dropout on: the lens must switch to eval itself."""
    torch.manual_seed(seed)
    model = GPT(CONFIG.replace(**changes))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    return model.train()


def ids_of(n: int, seed: int = 1, vocab: int = CONFIG.vocab_size) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def direct_layer_logits(model: GPT, ids: list[int]) -> list[torch.Tensor]:
    """Each layer's logits written out with torch functions: embeddings, blocks, layer_norm, the head."""
    model.eval()
    with torch.no_grad():
        idx = torch.tensor([ids])
        x = model.tok_emb.weight[idx] + model.pos_emb.weight[torch.arange(len(ids))]
        streams = [x]
        for block in model.blocks:
            x = block(x)
            streams.append(x)
        norm = model.final_norm
        return [F.linear(F.layer_norm(s, (CONFIG.emb_dim,), norm.weight, norm.bias, norm.eps),
                         model.out_head.weight)[0] for s in streams]


def test_last_layer_is_the_models_own_prediction():
    model = random_model()
    ids = ids_of(7)
    result = logit_lens(model, ids, top_k=5)
    assert result.top_ids.shape == (CONFIG.n_layers + 1, 7, 5) == result.top_probs.shape
    model.eval()
    with torch.no_grad():
        probs = model(torch.tensor([ids]))[0].softmax(-1)
    expected = probs.topk(5, dim=-1)
    assert np.array_equal(result.top_ids[-1], expected.indices.numpy())
    assert np.allclose(result.top_probs[-1], expected.values.numpy(), atol=1e-6)
    assert result.layer_name(0) == "embedding" and result.layer_name(3) == "block 3"


def test_every_layer_equals_a_direct_torch_computation():
    model = random_model(seed=3)
    ids = ids_of(8, seed=4)
    result = logit_lens(model, ids, top_k=CONFIG.vocab_size)  # the whole distribution, sorted
    direct = direct_layer_logits(model, ids)
    assert len(direct) == result.n_layers == CONFIG.n_layers + 1
    for layer, logits in enumerate(direct):
        probs = logits.softmax(-1).numpy()
        taken = np.take_along_axis(probs, result.top_ids[layer], axis=-1)
        assert np.allclose(result.top_probs[layer], taken, atol=1e-6)
        assert np.allclose(np.sort(probs, axis=-1)[:, ::-1], result.top_probs[layer], atol=1e-6)
    # The layers do disagree on this model (a lens that copied the last row would fail above).
    assert not np.array_equal(result.top_ids[0, :, 0], result.top_ids[-1, :, 0])


@pytest.mark.parametrize("bad, words", [
    ([], "empty"),
    ([1, 2, 23], "token id 23 is outside"),
    ([-1], "token id -1 is outside"),
    ([1.5, 2], "whole numbers"),
    ([True, 2], "whole numbers"),
    ("abc", "sequence of token ids"),
    (torch.tensor([[1, 2]]), "one sequence"),
    (torch.tensor([1.0, 2.0]), "whole numbers"),
])
def test_hostile_prompts_get_one_line_errors(bad, words):
    with pytest.raises(LensError) as info:
        logit_lens(random_model(), bad)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_prompt_longer_than_the_context_is_clipped_to_its_last_tokens():
    model = random_model()
    ids = ids_of(13)
    result = logit_lens(model, ids, top_k=3)
    assert result.clipped == 13 - CONFIG.context_length and result.ids == ids[-CONFIG.context_length:]
    alone = logit_lens(model, ids[-CONFIG.context_length:], top_k=3)
    assert alone.clipped == 0 and np.array_equal(result.top_ids, alone.top_ids)
    assert logit_lens(model, np.array(ids[:3]), top_k=10**6).top_ids.shape[-1] == CONFIG.vocab_size
    with pytest.raises(LensError, match="top_k"):
        logit_lens(model, ids[:3], top_k=0)


def test_token_losses_equal_cross_entropy_and_each_windows_mean_is_the_models_loss():
    model = random_model(seed=5)
    ctx = CONFIG.context_length
    ids = ids_of(2 * ctx + 6, seed=6)  # two full windows and a shorter one of 5 inputs
    result = token_losses(model, ids, top_k=4)
    assert result.window_starts == [0, ctx, 2 * ctx]
    model.eval()
    with torch.no_grad():
        for start in result.window_starts:
            x = torch.tensor([ids[start:start + ctx][: len(ids) - 1 - start]])
            y = torch.tensor([ids[start + 1:start + 1 + x.shape[1]]])
            logits = model(x)[0]
            direct = F.cross_entropy(logits, y[0], reduction="none").numpy()
            span = slice(start, start + x.shape[1])
            assert np.allclose(result.losses[span], direct, atol=1e-5)
            assert result.losses[span].mean() == pytest.approx(model.loss(x, y).item(), abs=1e-5)
            top = logits.softmax(-1).topk(4, dim=-1)
            assert np.array_equal(result.top_ids[span], top.indices.numpy())
            assert np.allclose(result.top_probs[span], top.values.numpy(), atol=1e-6)
    assert len(result.losses) == len(ids) - 1
    assert result.loss_of_token(0) is None and result.loss_of_token(1) == pytest.approx(result.losses[0])
    with pytest.raises(LensError, match="at least 2"):
        token_losses(model, ids[:1])


def test_progress_and_cancel():
    model = random_model()
    seen = []
    token_losses(model, ids_of(40), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (39, 39) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(LensCancelled):
        token_losses(model, ids_of(40), cancelled=lambda: True)


@pytest.mark.parametrize("training", [True, False])
def test_the_model_is_given_back_unchanged(training):
    model = random_model(tie_weights=True)
    model.train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logit_lens(model, ids_of(12))
    token_losses(model, ids_of(30))
    assert model.training is training and all(m.training is training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_on_a_runs_checkpoint(tmp_path):
    """The app's path: a checkpoint on disk, its tokenizer, and its run's validation text."""
    from explorer.core.gpt.checkpoint import load_model
    from explorer.core.gpt.data import TokenData, default_corpus
    from explorer.core.workspaces.pretrain import PretrainWorkspace
    from tests.trained import trained_run

    run = trained_run(PretrainWorkspace())
    model, tokenizer, ckpt = load_model(run.checkpoint)
    lens = compute_logit_lens(run.checkpoint, "the cat", "Run 1", top_k=3)
    assert lens.tokens == list("the cat") and lens.step == ckpt.step == 3 and lens.name == "Run 1"
    with torch.no_grad():
        probs = model(torch.tensor([tokenizer.encode("the cat")]))[0].softmax(-1)
    assert np.allclose(lens.top_probs[-1], probs.topk(3, dim=-1).values.numpy(), atol=1e-6)
    with pytest.raises(LensError, match="prompt"):
        compute_logit_lens(run.checkpoint, "")

    losses = compute_token_losses(run.checkpoint, "Run 1", n_tokens=40)
    val = TokenData.from_text(default_corpus(), tokenizer, ckpt.settings["val_fraction"]).val
    assert losses.ids == val[:40].tolist()  # the validation split the trainer held out
    assert "validation split of the built-in corpus" in losses.note
    assert losses.tokens[:3] == [tokenizer.decode([i]) for i in losses.ids[:3]]
    with pytest.raises(LensError, match="passage length"):
        compute_token_losses(run.checkpoint, n_tokens=1)


@pytest.mark.parametrize("p, text", [(0.6018, "60%"), (1.0, "100%"), (0.0996, "10%"), (0.025, "2.5%"),
                                     (0.0004, "<0.1%"), (0.0, "0%"), (float("nan"), "nan")])
def test_the_lens_cells_percentages(p, text):
    from explorer.core.numbers import fmt_percent

    assert fmt_percent(p) == text


def test_fewer_windows_at_once_give_the_same_losses(monkeypatch):
    """A big vocabulary scores one window at a time (bounded memory); the numbers do not change."""
    import explorer.core.gpt.lens as lens

    model = random_model(seed=8)
    ids = ids_of(5 * CONFIG.context_length + 3, seed=9)
    batched = token_losses(model, ids)
    seen = []
    monkeypatch.setattr(lens, "LOGITS_AT_ONCE", 1)
    alone = token_losses(model, ids, progress=lambda done, total: seen.append(done))
    assert len(seen) == 6 and np.allclose(batched.losses, alone.losses, atol=1e-6)
    assert np.array_equal(batched.top_ids, alone.top_ids)
