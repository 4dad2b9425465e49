"""The GPT's settings without torch (issue 20 item 10): the configs, presets, parameter counts and memory
estimates the pretraining form shows, and a saved session's pretraining part, are read before torch is
imported; the older import paths (gpt.model, gpt.train) give the very same objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from explorer.core.gpt import budget, data, spec
from explorer.core.workspaces import session
from explorer.core.workspaces.pretrain import PretrainWorkspace
text = json.dumps({"format": "autograd-explorer-session", "version": 2, "current": "pretrain",
                   "workspaces": {"pretrain": {"state": {"preset": "custom", "config": {
                       "vocab_size": 128, "context_length": 64, "emb_dim": 192, "n_heads": 6,
                       "n_layers": 6}}}}})
models = session.Workspaces()
models.restore("pretrain", session.parse_part(text, "pretrain"))
workspace = models.get("pretrain")
workspace.set_preset("small")
out = {"torch": "torch" in sys.modules,
       "count": budget.parameter_counts(budget.preset_config("gpt2-124m"))["total"],
       "memory": budget.memory_needed(budget.preset_config("tiny"), 12)["total"],
       "problem": budget.config_problem({**budget.preset_config("tiny"), "n_heads": 5}),
       "tokenizers": list(data.TOKENIZERS), "presets": budget.preset_names(),
       "settings": spec.TRAIN_PRESETS["small"].steps, "workspace": workspace.state.preset,
       "torch_after": "torch" in sys.modules}
print("RESULT " + json.dumps(out))
"""


def test_the_form_s_figures_and_a_saved_pretraining_part_need_no_torch(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), AUTOGRAD_EXPLORER_DATA=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["torch"] is False and out["torch_after"] is False, "the GPT's settings imported torch"
    assert out["count"] == 163_009_536
    assert out["presets"] == ["tiny", "small", "gpt2-124m"] and out["tokenizers"] == ["char", "bpe"]
    assert "divisible by n_heads" in out["problem"]
    assert out["settings"] == 5000 and out["workspace"] == "small"


def test_the_old_import_paths_give_the_same_objects_and_a_model_is_counted_as_its_config():
    from explorer.core.gpt import budget, model, spec, train

    assert model.GPTConfig is spec.GPTConfig and model.PRESETS is spec.PRESETS
    assert model.count_parameters is spec.count_parameters and model.memory_estimate is spec.memory_estimate
    assert train.TrainSettings is spec.TrainSettings and train.TRAIN_PRESETS is spec.TRAIN_PRESETS
    assert train.CPU_BF16_MIN_WIDTH == spec.CPU_BF16_MIN_WIDTH
    cfg = spec.GPTConfig(vocab_size=31, context_length=12, emb_dim=16, n_heads=4, n_layers=2, drop_rate=0.0)
    gpt = model.GPT(cfg)
    counted = spec.count_parameters(gpt)
    assert counted == spec.count_parameters(cfg)
    assert counted["total"] == sum(p.numel() for p in gpt.parameters())
    assert spec.flops_per_token(gpt) == spec.flops_per_token(cfg)
    assert budget.make_config(budget.preset_config("tiny")) == model.PRESETS["tiny"]
