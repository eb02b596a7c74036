"""Table 4's ablations (conf/ablation/): each changes the method, stage fingerprints keep the
variants apart and let them share the stages they have in common; the paper's experiments
(conf/experiment/) compose and sweep what they should."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from morpheus_pl.evaluation_stage import generation_kind
from morpheus_pl.handoff import checkpoint_path, fingerprint
from morpheus_pl.loggers import run_tags
from morpheus_pl.pipeline import build_stage, train_stage
from morpheus_pl.stage_table import starts_from
from morpheus_pl.stages.joint import JointTrainingStage
from morpheus_pl.stages.joint_without_codebook import JointWithoutCodebookStage

from conftest import CONF_DIR

STAGES = ("role_awareness", "codebook_init", "joint", "no_persona")
ABLATIONS = ("full", "no_pc", "no_cl", "no_ra", "init_random", "init_sequential", "init_mean")
# which stages' checkpoints each ablation shares with the full model
SHARED_WITH_FULL = {
    "no_pc": {"role_awareness", "codebook_init", "no_persona"},
    "no_cl": {"role_awareness", "codebook_init", "no_persona"},
    "no_ra": {"role_awareness", "no_persona"},  # stage 1 itself is not used, only fingerprinted
    "init_random": {"role_awareness", "no_persona"},
    "init_sequential": {"role_awareness", "no_persona"},
    "init_mean": {"role_awareness", "no_persona"},
}


@pytest.fixture(scope="module")
def prints(tiny_compose):
    return {a: {s: fingerprint(tiny_compose(f"ablation={a}"), s) for s in STAGES} for a in ABLATIONS}


@pytest.mark.parametrize("ablation", sorted(SHARED_WITH_FULL))
def test_ablation_shares_exactly_the_stages_it_has_in_common_with_the_full_model(prints, ablation):
    shared = {s for s in STAGES if prints[ablation][s] == prints["full"][s]}
    assert shared == SHARED_WITH_FULL[ablation]


def test_every_ablation_trains_its_own_joint_stage(prints):
    assert len({prints[a]["joint"] for a in ABLATIONS}) == len(ABLATIONS)


def test_the_label_alone_changes_no_fingerprint(tiny_compose, prints):
    relabelled = tiny_compose("ablation.label=renamed", "ablation.name=renamed")
    assert {s: fingerprint(relabelled, s) for s in STAGES} == prints["full"]


def test_ablations_change_the_method(tiny_compose):
    full, no_cl = tiny_compose(), tiny_compose("ablation=no_cl")
    assert full.loss.weights.contrastive == 1.0 and no_cl.loss.weights.contrastive == 0.0
    assert tiny_compose("ablation=init_mean").codebook.init == "mean"
    assert full.codebook.init == "em"
    assert [starts_from(full, s) for s in ("codebook_init", "joint")] == ["role_awareness",
                                                                        "codebook_init"]
    no_ra, no_pc = tiny_compose("ablation=no_ra"), tiny_compose("ablation=no_pc")
    assert [starts_from(no_ra, s) for s in ("codebook_init", "joint")] == [None, "codebook_init"]
    assert starts_from(no_pc, "joint") == "role_awareness"
    assert starts_from(tiny_compose("ablation=no_pc", "ablation.role_awareness=false"), "joint") is None
    assert generation_kind(no_pc, "morpheus") == "no_persona"
    assert generation_kind(full, "morpheus") == "morpheus"
    assert generation_kind(no_pc, "true_persona") == "true_persona"
    assert "ablation=no_cl" in run_tags(no_cl, "joint")


def _trained(cfg, stage, dm, tok_dir):
    path = train_stage(cfg, stage, dm, tok_dir)
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_without_role_awareness_the_codebook_comes_from_the_untrained_decoder(tiny_compose,
                                                                              tiny_data):
    dm, tok_dir = tiny_data
    steps = ("train.role_awareness.max_steps=2", "seed=21")
    no_ra = tiny_compose("ablation=no_ra", *steps)
    state = _trained(no_ra, "codebook_init", dm, tok_dir)
    assert not checkpoint_path(no_ra, "role_awareness").exists()  # stage 1 never trained
    fresh = build_stage(no_ra, "codebook_init", tok_dir).state_dict()
    decoder_keys = [k for k in fresh if k.startswith("decoder.")]
    assert decoder_keys and all(torch.equal(state[k], fresh[k]) for k in decoder_keys)
    full = tiny_compose(*steps)
    with_ra = _trained(full, "codebook_init", dm, tok_dir)
    assert checkpoint_path(full, "role_awareness").exists()
    assert not all(torch.equal(with_ra[k], fresh[k]) for k in decoder_keys)
    assert not torch.equal(with_ra["codebook.codes"], state["codebook.codes"])


def test_without_persona_codebook_joint_training_has_no_codebook(tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    cfg = tiny_compose("ablation=no_pc", "train.role_awareness.max_steps=2",
                       "train.joint.max_steps=2", "seed=22")
    module = build_stage(cfg, "joint", tok_dir)
    assert type(module) is JointWithoutCodebookStage
    assert not hasattr(module, "codebook") and not hasattr(module, "predictor")
    assert not isinstance(module, JointTrainingStage)
    losses = module.losses(next(iter(dm.train_dataloader())))
    assert set(losses) == {"gen"}
    state = _trained(cfg, "joint", dm, tok_dir)
    assert not any(k.startswith(("codebook.", "predictor.")) for k in state)
    assert not checkpoint_path(cfg, "codebook_init").exists()
    assert checkpoint_path(cfg, "role_awareness").exists()


def _experiment(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=[f"+experiment={name}", *overrides],
                       return_hydra_config=True)


@pytest.mark.parametrize("name, swept, values", [
    ("table2", "seed", "0,1,2"),
    ("table4", "ablation", ",".join(ABLATIONS)),
    ("figure3", "codebook.N", "20,50,100,200,500"),
    ("beta", "codebook.beta", "0.01,0.05,0.1,0.5,1.0"),
    ("table6", "peft", "lora,prefix_tuning,prompt_tuning,p_tuning"),
])
def test_each_experiment_sweeps_its_setting_over_three_seeds(name, swept, values):
    cfg = _experiment(name)
    params = cfg.hydra.sweeper.params
    assert str(params[swept]) == values and str(params["seed"]) == "0,1,2"
    assert cfg.hydra.sweep.dir.startswith(f"multirun/{name}/")
    assert cfg.ablation.name == "full"
    expected = {"table2": ["morpheus", "no_persona", "true_persona"],
                "table6": ["morpheus", "no_persona"]}.get(name, ["morpheus"])
    assert list(cfg.eval.systems) == expected


def test_every_peft_baseline_of_the_table6_sweep_shares_the_morpheus_stages(tiny_compose):
    """The MORPHEUS stages (frozen decoder) fingerprint alike in every member; baselines differ."""
    from morpheus_pl.handoff import fingerprint

    members = [tiny_compose("+experiment=table6", f"peft={name}")
               for name in _experiment("table6").hydra.sweeper.params.peft.split(",")]
    assert all(cfg.peft.freeze_decoder for cfg in members)
    assert len({fingerprint(cfg, "joint") for cfg in members}) == 1
    assert len({fingerprint(cfg, "no_persona") for cfg in members}) == len(members)


def test_every_ablation_of_the_table4_sweep_composes(tiny_compose):
    for ablation in _experiment("table4").hydra.sweeper.params.ablation.split(","):
        cfg = tiny_compose("+experiment=table4", f"ablation={ablation}")
        assert cfg.ablation.name == ablation and cfg.ablation.label

