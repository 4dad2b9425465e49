"""A run trained for a few steps, kept by a PretrainWorkspace as the app keeps one (core and UI tests)."""

from explorer.core.gpt.train import Trainer, TrainSettings

TINY = {"vocab_size": 64, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0}


def trained_run(ws, steps: int = 3, seed: int = 1, **changes):
    """Train a tiny model in-process and register it in `ws` with its checkpoint in the run's folder.

    `changes` are other training settings (sample_every=3, say)."""
    base = {"eval_every": steps, "sample_every": 0, **changes}
    settings = TrainSettings(steps=steps, batch_size=2, device="cpu", seed=seed, warmup_steps=1, **base)
    run = ws.new_run(TINY, settings.to_dict(), None)
    trainer = Trainer(dict(TINY), settings)
    records = list(trainer.run())
    path = ws.checkpoint_path(run.run_id)
    trainer.save_checkpoint(path)
    ws.add_records(run.run_id, records)
    ws.finish_run(run.run_id, "done", "", str(path))
    ws.flush_files(60)  # a window writes the run's files on a thread: they are on disk when this returns
    return run
