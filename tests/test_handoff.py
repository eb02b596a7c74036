"""Stage hand-off: fingerprints, checkpoint paths, saving and strict loading of stage weights."""

import re
from pathlib import Path

import pytest
import torch

from morpheus_pl.handoff import checkpoint_path, fingerprint, load_stage_weights, save_stage
from morpheus_pl.pipeline import build_stage

STAGES = ("role_awareness", "codebook_init", "joint", "no_persona")


def _fingerprints(cfg) -> dict[str, str]:
    return {stage: fingerprint(cfg, stage) for stage in STAGES}


@pytest.fixture(scope="module")
def base_prints(tiny_compose):
    return _fingerprints(tiny_compose())


def test_fingerprint_is_stable(tiny_compose, base_prints):
    assert _fingerprints(tiny_compose()) == base_prints
    assert len(set(base_prints.values())) == len(STAGES)


@pytest.mark.parametrize("override", ["codebook.N=16", "codebook.beta=0.1"])
def test_codebook_settings_change_later_stages_only(tiny_compose, base_prints, override):
    prints = _fingerprints(tiny_compose(override))
    assert prints["role_awareness"] == base_prints["role_awareness"]
    assert prints["no_persona"] == base_prints["no_persona"]
    assert prints["codebook_init"] != base_prints["codebook_init"]
    assert prints["joint"] != base_prints["joint"]


@pytest.mark.parametrize("override", ["loss.weights.segment=0", "projector.positions=2"])
def test_stage_one_settings_change_the_persona_stages_not_the_baseline(tiny_compose, base_prints,
                                                                       override):
    prints = _fingerprints(tiny_compose(override))
    assert prints["no_persona"] == base_prints["no_persona"]
    for stage in ("role_awareness", "codebook_init", "joint"):
        assert prints[stage] != base_prints[stage], stage


def test_joint_loss_weights_leave_stage_one_alone(tiny_compose, base_prints):
    prints = _fingerprints(tiny_compose("loss.weights.vq=0.5"))
    assert prints["role_awareness"] == base_prints["role_awareness"]
    assert prints["joint"] != base_prints["joint"]


@pytest.mark.parametrize("override", ["model.architecture.n_embd=64", "dataset.world.train_roles=41",
                                      "train.val_every_n_steps=100",
                                      "train.early_stopping.patience=2",
                                      # debug runs (conf/debug/) never share a real run's stages
                                      "trainer.fast_dev_run=true", "trainer.overfit_batches=2"])
def test_model_or_dataset_change_every_stage(tiny_compose, base_prints, override):
    prints = _fingerprints(tiny_compose(override))
    for stage in STAGES:
        assert prints[stage] != base_prints[stage], stage


@pytest.mark.parametrize("override", ["data.num_workers=3", "model.trust_remote_code=true",
                                      "encoder.trust_remote_code=true"])
def test_settings_that_change_no_weights_keep_fingerprints(tiny_compose, base_prints, override):
    assert _fingerprints(tiny_compose(override)) == base_prints


def test_checkpoint_path_default_and_explicit(tiny_compose, tmp_path):
    cfg = tiny_compose()
    default = checkpoint_path(cfg, "role_awareness")
    assert default == (Path(cfg.paths.artifacts) / "stages" / "role_awareness"
                       / fingerprint(cfg, "role_awareness") / "model.ckpt")
    explicit = tmp_path / "elsewhere" / "stage1.ckpt"
    cfg = tiny_compose(f"checkpoints.role_awareness={explicit}")
    assert checkpoint_path(cfg, "role_awareness") == explicit
    assert checkpoint_path(cfg, "codebook_init") != explicit  # only the named stage


@pytest.fixture(scope="module")
def stage1_ckpt(tiny_cfg, tiny_data, tmp_path_factory):
    """A saved role_awareness checkpoint and the module it came from."""
    _, tok_dir = tiny_data
    module = build_stage(tiny_cfg, "role_awareness", tok_dir)
    with torch.no_grad():  # weights that a fresh (seeded) build would not have
        for param in module.parameters():
            param.add_(0.01 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("ckpt") / "stage1" / "model.ckpt"
    save_stage(module, path, "role_awareness", tiny_cfg)
    return path, module


def test_save_load_round_trip_restores_exact_weights(tiny_cfg, tiny_data, stage1_ckpt):
    path, saved = stage1_ckpt
    assert path.exists() and not path.with_suffix(".tmp").exists()
    fresh = build_stage(tiny_cfg, "role_awareness", tiny_data[1])
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                     saved.state_dict().values()))
    payload = load_stage_weights(fresh, path)
    assert payload["stage"] == "role_awareness"
    assert payload["fingerprint"] == fingerprint(tiny_cfg, "role_awareness")
    expected = saved.state_dict()
    restored = fresh.state_dict()
    assert restored.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(restored[name], value), name


def test_loading_a_different_width_decoder_is_incompatible(tiny_compose, tiny_data, stage1_ckpt):
    path, _ = stage1_ckpt
    wide = build_stage(tiny_compose("model.architecture.n_embd=64"), "role_awareness",
                       tiny_data[1])
    with pytest.raises(ValueError, match="incompatible"):
        load_stage_weights(wide, path)


def test_role_awareness_into_codebook_init_needs_new_parts(tiny_cfg, tiny_data, stage1_ckpt):
    path, saved = stage1_ckpt
    stage2 = build_stage(tiny_cfg, "codebook_init", tiny_data[1])
    with pytest.raises(ValueError, match="codebook"):
        load_stage_weights(stage2, path)
    stage2 = build_stage(tiny_cfg, "codebook_init", tiny_data[1])
    load_stage_weights(stage2, path, new_parts=("codebook.",))
    restored = stage2.state_dict()
    for name, value in saved.state_dict().items():
        assert torch.equal(restored[name], value), name
    assert not bool(stage2.codebook.initialised)


def test_missing_checkpoint_names_the_path_and_the_stage_setting(tiny_cfg, tiny_data, tmp_path):
    module = build_stage(tiny_cfg, "no_persona", tiny_data[1])
    missing = tmp_path / "nowhere" / "model.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_stage_weights(module, missing)
    with pytest.raises(FileNotFoundError, match=re.escape("checkpoints.joint=/path/model.ckpt")):
        load_stage_weights(module, missing, stage="joint")


def test_concurrent_member_waits_for_the_stage_and_reuses_it(tiny_compose, tiny_data, tmp_path) -> None:
    """A second process that needs a stage another one is training waits for its lock and then
    reuses its checkpoint instead of training (and writing) it again."""
    import subprocess
    import sys
    import time

    from morpheus_pl.pipeline import train_stage

    dm, tok_dir = tiny_data
    cfg = tiny_compose("train.no_persona.max_steps=3", "seed=11")
    path = checkpoint_path(cfg, "no_persona")
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom filelock import FileLock\n"
        f"lock = FileLock({str(path.parent / 'train.lock')!r}); lock.acquire()\n"
        "print('locked', flush=True); time.sleep(2)\n"
        f"open({str(path)!r}, 'wb').write(b'written by the other member'); lock.release()\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    started = time.perf_counter()
    assert train_stage(cfg, "no_persona", dm, tok_dir) == path
    assert time.perf_counter() - started > 0.5  # it waited for the lock
    assert holder.wait(timeout=30) == 0
    assert path.read_bytes() == b"written by the other member"


class _MakesDirWhenUnpickled:
    """Unpickling this runs `os.mkdir(marker)`: the stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def test_checkpoint_with_a_pickled_object_is_refused_unexecuted(tiny_cfg, tiny_data, stage1_ckpt,
                                                                 tmp_path):
    _, saved = stage1_ckpt
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil" / "model.ckpt"
    path.parent.mkdir()
    torch.save({"stage": "role_awareness", "state_dict": saved.state_dict(),
                "extra": _MakesDirWhenUnpickled(marker)}, path)
    module = build_stage(tiny_cfg, "role_awareness", tiny_data[1])
    with pytest.raises(ValueError) as info:
        load_stage_weights(module, path)
    message = str(info.value)
    assert str(path) in message and "refused" in message and "weights_only=True" in message
    assert "mkdir" in message  # torch's reason: the global that is not allowed
    assert not marker.exists()


@pytest.mark.parametrize(("payload", "expected"), [
    ([1, 2, 3], "got list"),
    ({"stage": "role_awareness"}, "got dict"),
    ({"state_dict": "weights"}, "got dict"),
])
def test_checkpoint_without_a_state_dict_names_what_was_expected(tiny_cfg, tiny_data, tmp_path,
                                                                 payload, expected):
    path = tmp_path / "model.ckpt"
    torch.save(payload, path)
    module = build_stage(tiny_cfg, "no_persona", tiny_data[1])
    with pytest.raises(ValueError) as info:
        load_stage_weights(module, path)
    message = str(info.value)
    assert str(path) in message and "'state_dict' mapping" in message and expected in message


def test_not_a_torch_file_is_refused(tiny_cfg, tiny_data, tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"this is not a checkpoint" * 8)
    module = build_stage(tiny_cfg, "no_persona", tiny_data[1])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_stage_weights(module, path)


def test_lightning_resume_checkpoint_loads_with_weights_only(tiny_compose, tiny_data):
    """The pipeline resumes from Lightning's last.ckpt with weights_only=True: the file holds
    nothing but tensors and plain containers, and a resumed run restores it."""
    from morpheus_pl.pipeline import train_stage

    dm, tok_dir = tiny_data
    cfg = tiny_compose("train.no_persona.max_steps=2", "train.checkpoint_every_n_steps=1",
                       "seed=12")
    path = train_stage(cfg, "no_persona", dm, tok_dir)
    last = path.parent / "resume" / "last.ckpt"
    resume = torch.load(last, map_location="cpu", weights_only=True)
    assert resume["global_step"] == 2
    trained = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    path.unlink()
    assert train_stage(cfg, "no_persona", dm, tok_dir) == path  # resumes at step 2 of 2
    resumed = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert resumed.keys() == trained.keys()
    for name, value in trained.items():
        assert torch.equal(resumed[name], value), name
