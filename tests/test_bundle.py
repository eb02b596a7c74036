"""The model bundle of a tiny trained run: its files, a round trip with safetensors only, greedy
replies token-identical to the framework's own generation, hub ids and broken bundles."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from morpheus_pl.bundle import MorpheusModel, Reply
from morpheus_pl.bundle_files import CONFIG, WEIGHTS
from morpheus_pl.data.example import DataFormatError
from morpheus_pl.errors import CheckpointError, ConfigError, MissingModelError
from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.handoff import checkpoint_path, fingerprint
from morpheus_pl.pipeline import load_trained

GREEDY = {"do_sample": False, "max_new_tokens": 10}
# nucleus sampling, seeded the same way in both: a 6-step model's greedy replies can be all
# special tokens (decoded empty, so they would agree trivially); sampled ones say something
SAMPLED = {"do_sample": True, "top_p": 0.9, "max_new_tokens": 10}


@pytest.fixture(scope="module")
def trained(tiny_joint):
    cfg, dm, tok_dir = tiny_joint
    return load_trained(cfg, "joint", tok_dir, checkpoint_path(cfg, "joint"))


@pytest.fixture(scope="module")
def model(tiny_bundle, monkeypatch_module):
    """The bundle loaded while torch.load fails: nothing on the load path unpickles."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called while loading a bundle")

    monkeypatch_module.setattr(torch, "load", refuse)
    loaded = MorpheusModel.from_pretrained(tiny_bundle)
    monkeypatch_module.undo()
    return loaded


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_bundle_holds_json_safetensors_and_the_tokenizer(tiny_bundle, tiny_joint, trained):
    cfg = tiny_joint[0]
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {CONFIG, WEIGHTS, "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith((".pt", ".ckpt", ".bin", ".pkl", ".pickle"))]
    config = json.loads((tiny_bundle / CONFIG).read_text())
    assert config["sizes"]["M"] == 5 and config["sizes"]["N"] == 8
    assert config["dataset"] == {"name": "synthetic", "separator": "."}
    assert config["provenance"]["fingerprints"]["joint"] == fingerprint(cfg, "joint")
    assert config["provenance"]["checkpoint_fingerprint"] == fingerprint(cfg, "joint")
    assert len(config["provenance"]["git_commit"]) == 40
    assert config["encoder"]["pooling"] == cfg.encoder.pooling
    assert config["buffers"]["codebook.usage"]["shape"] == [8]
    assert config["generation"]["max_new_tokens"] == cfg.generation.max_new_tokens


def test_every_state_dict_tensor_survives_the_round_trip(model, trained, tiny_bundle):
    with safe_open(str(tiny_bundle / WEIGHTS), "pt") as weights:
        stored = set(weights.keys())
    assert {"codebook.usage", "codebook.initialised", "codebook.codes"} <= stored
    assert not any(k.startswith("persona_encoder.backbone.") for k in stored)  # the decoder's own
    original, loaded = trained.state_dict(), model.stage.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    assert bool(loaded["codebook.initialised"])


@pytest.mark.parametrize("system", ["morpheus", "true_persona"])
@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_replies_are_token_identical_to_the_frameworks(model, trained, tiny_joint, system,
                                                       decoding):
    dm = tiny_joint[1]
    framework, bundled = [], []
    for i, batch in enumerate(dm.test_dataloader()):
        torch.manual_seed(i)
        texts, codes = generate_batch(trained, batch, system, GenerationConfig(**decoding),
                                      trained.predictor_cfg["decode"])
        framework += texts
        examples = list(batch["examples"])
        replies = model.respond_batch([ex.context for ex in examples],
                                      [ex.persona for ex in examples], system=system, seed=i,
                                      **decoding)
        bundled += [r.text for r in replies]
        if codes is not None:
            assert [[c.code for c in r.codes] for r in replies] == codes.tolist()
    assert bundled == framework
    if decoding is SAMPLED:
        assert any(framework)  # the tiny model says something


def test_respond_gives_the_codes_with_their_probabilities(model):
    reply = model.respond(["hi , what do you do for a living ?"], seed=3)
    assert isinstance(reply, Reply) and reply.system == "morpheus"
    codes = [c.code for c in reply.codes]
    assert len(codes) == 5 and len(set(codes)) == 5  # covering: M distinct codes of N
    assert all(0.0 < c.probability < 1.0 and c.usage >= 0.0 for c in reply.codes)
    probabilities = [c.probability for c in reply.codes]
    assert probabilities[0] == max(probabilities)  # the first pick covers the most mass: its own
    ranked = model.respond(["hi , what do you do for a living ?"], decode="top_m_distinct", seed=3)
    top = [c.probability for c in ranked.codes]
    assert top == sorted(top, reverse=True) and top[0] == probabilities[0]
    assert model.respond(["hi , what do you do for a living ?"], seed=3) == reply  # sampled, seeded
    assert model.respond(["hi"], system="no_persona", do_sample=False).codes == ()


def test_persona_systems_need_a_persona_and_bad_histories_are_named(model):
    with pytest.raises(DataFormatError, match="true_persona needs a persona: none given for history 0"):
        model.respond(["hi"], system="true_persona")
    with pytest.raises(DataFormatError, match="history 0: empty history"):
        model.respond([])
    with pytest.raises(DataFormatError, match="history 0: expected the history as a list"):
        model.respond("hi there")
    with pytest.raises(DataFormatError, match="history 0: field 'persona'"):
        model.respond(["hi"], persona=["..."], system="true_persona")
    with pytest.raises(ConfigError, match=r"unknown generation setting\(s\) \['top_q'\]"):
        model.respond(["hi"], top_q=0.5)
    with pytest.raises(ConfigError, match="2 histories but 1 personas"):
        model.respond_batch([["hi"], ["ho"]], [None])
    assert model.respond_batch([]) == []


def test_a_hub_id_goes_through_snapshot_download(tiny_bundle, monkeypatch):
    import huggingface_hub

    asked = []

    def snapshot_download(repo_id, revision=None):
        asked.append((repo_id, revision))
        return str(tiny_bundle)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    model = MorpheusModel.from_pretrained("someone/tiny-morpheus", revision="v1")
    assert asked == [("someone/tiny-morpheus", "v1")] and model.separator == "."

    def offline(repo_id, revision=None):
        raise OSError("the hub is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(MissingModelError, match="hub download failed: OSError: the hub is unreachable"):
        MorpheusModel.from_pretrained("someone/tiny-morpheus")
    with pytest.raises(MissingModelError, match="no such model bundle folder"):
        MorpheusModel.from_pretrained("/nonexistent/bundle")


def test_broken_bundles_are_refused_with_the_file_named(tiny_bundle, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_bundle, broken)
    config = json.loads((broken / CONFIG).read_text())
    (broken / CONFIG).write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        MorpheusModel.from_pretrained(broken)
    (broken / CONFIG).write_text(json.dumps(config))
    (broken / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=f"{WEIGHTS}: not a readable safetensors file"):
        MorpheusModel.from_pretrained(broken)
    with pytest.raises(CheckpointError, match="not a model bundle"):
        MorpheusModel.from_pretrained(tmp_path)


def test_stage_export_writes_where_asked_and_refuses_a_run_without_codebook(tiny_compose,
                                                                            tiny_joint, tmp_path):
    from morpheus_pl.run import run

    printed = run(tiny_compose("stage=export", f"export.dir={tmp_path / 'm'}"))
    assert printed == tmp_path / "m" and (printed / WEIGHTS).is_file()
    assert MorpheusModel.from_pretrained(printed).config["sizes"]["N"] == 8
    default = run(tiny_compose("stage=export", f"paths.output={tmp_path / 'run'}"))
    assert default == tmp_path / "run" / "model" and (default / CONFIG).is_file()
    with pytest.raises(ConfigError, match="stage=export bundles MORPHEUS's persona codebook"):
        run(tiny_compose("stage=export", "ablation=no_pc"))
