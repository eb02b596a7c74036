"""conf/debug/: `debug=tiny` (the tests' tiny run), `debug=fast_dev_run` and `debug=overfit`
(Lightning's switches) compose, alone or as a list, and the pipeline trains with them: one
batch per stage under fast_dev_run, the same few batches, fitted, under overfit_batches."""

from __future__ import annotations

import pytest

from morpheus_pl import pipeline
from morpheus_pl.scorer.training import train_scorer


@pytest.fixture()
def trainers(monkeypatch) -> list:
    """Every Lightning trainer the pipeline builds, in order."""
    built, make = [], pipeline._trainer

    def recording(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(pipeline, "_trainer", recording)
    return built


def test_debug_options_compose_alone_and_together(tiny_compose):
    tiny = tiny_compose()  # conftest's tiny run is debug=tiny
    assert (tiny.model.architecture.n_embd, tiny.codebook.N, tiny.dataset.world.train_roles,
            tiny.train.joint.max_steps) == (32, 8, 40, 6)
    assert tiny.trainer.fast_dev_run is False and tiny.trainer.overfit_batches == 0.0
    fast = tiny_compose("debug=fast_dev_run")
    assert fast.trainer.fast_dev_run is True and fast.codebook.N == 100  # not tiny alone
    both = tiny_compose("debug=[tiny,overfit]")
    assert both.trainer.overfit_batches == 2 and both.codebook.N == 8
    assert both.train.early_stopping.patience is None  # validation loss rises as it overfits


def test_fast_dev_run_trains_every_stage_on_one_batch(tiny_compose, tiny_data, trainers, tmp_path):
    dm, tok_dir = tiny_data
    cfg = tiny_compose("debug=[tiny,fast_dev_run]", "seed=41", f"paths.output={tmp_path}")
    joint = pipeline.train_stage(cfg, "joint", dm, tok_dir)
    for stage in ("role_awareness", "codebook_init", "joint"):
        assert pipeline.checkpoint_path(cfg, stage).exists(), stage
    assert joint == pipeline.checkpoint_path(cfg, "joint")
    assert train_scorer(cfg, dm).exists()
    assert len(trainers) == 4 and all(t.fast_dev_run for t in trainers)
    fitted = [trainers[0], trainers[2], trainers[3]]  # stage 1, joint training, the scorer
    assert [t.global_step for t in fitted] == [1, 1, 1]
    assert trainers[1].limit_predict_batches == 1  # the codebook init encodes one batch


def test_overfit_batches_fit_the_same_few_batches(tiny_compose, tiny_data, trainers, tmp_path):
    dm, tok_dir = tiny_data
    # a higher learning rate than the tiny model's, so that 30 steps suffice (6.3 -> 2.0)
    cfg = tiny_compose("debug=[tiny,overfit]", "train.no_persona.max_steps=30", "model.lr=1e-2",
                       "seed=42", "trainer.log_every_n_steps=1", f"paths.output={tmp_path}")
    pipeline.train_stage(cfg, "no_persona", dm, tok_dir)
    (trainer,) = trainers
    assert trainer.num_training_batches == 2 and trainer.global_step == 30
    lines = next((tmp_path / "logs" / "no_persona").glob("*/metrics.csv")).read_text().splitlines()
    column = lines[0].split(",").index("train/loss")
    losses = [float(r.split(",")[column]) for r in lines[1:] if r.split(",")[column]]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0], losses
