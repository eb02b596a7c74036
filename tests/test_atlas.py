"""The codebook atlas of a tiny trained run: written beside the stage-2 and joint checkpoints,
every code listed, every sentence a real training persona sentence, a valid PNG; carried by
the bundle into `respond` and logged where a logger keeps tables and images."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from morpheus_pl.atlas import PURE, fact_namer
from morpheus_pl.atlas_files import ATLAS_FILES, atlas_is_current, stage_atlas
from morpheus_pl.bundle import MorpheusModel
from morpheus_pl.data.persona import split_persona
from morpheus_pl.handoff import checkpoint_path
from morpheus_pl.pipeline import load_trained


@pytest.fixture(scope="module")
def training_sentences(tiny_joint) -> set[str]:
    dm = tiny_joint[1]
    return {s for ex in dm.read("train") for s in split_persona(ex.persona, ".", dm.num_segments)}


@pytest.mark.parametrize("stage", ["codebook_init", "joint"])
def test_each_codebook_stage_leaves_its_atlas(tiny_joint, training_sentences, stage):
    cfg, dm, _ = tiny_joint
    folder = checkpoint_path(cfg, stage).parent
    assert atlas_is_current(folder, 5)
    atlas = json.loads((folder / "atlas.json").read_text())
    codes, summary = atlas["codes"], atlas["summary"]
    assert atlas["stage"] == stage and [e["code"] for e in codes] == list(range(8))
    assert sum(e["segments"] for e in codes) == summary["segments"] >= summary["roles"] == 40
    assert sum(e["share"] for e in codes) == pytest.approx(1.0)
    assert all(len(e["nearest"]) == 5 == len(set(e["nearest"])) for e in codes)
    assert {s for e in codes for s in e["nearest"]} <= training_sentences
    used = [e for e in codes if e["segments"]]
    assert summary["codes_used"] == len(used) and all(e["roles"] <= 40 for e in codes)
    assert summary["pure_codes"] == sum(e["purity"] >= PURE for e in used)
    assert all(0 < e["purity"] <= 1 for e in used)
    table = (folder / "atlas.md").read_text()
    assert all(f"\n| {code} | " in table for code in range(8))
    png = folder / "atlas.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plt.imread(png).shape[2] in (3, 4)


def test_the_world_names_facts_by_their_values():
    world = fact_namer({"source": "world", "world": {"language": "en"}})
    assert world("i work as a nurse.") == world("my job is nurse.") == "nurse"
    assert world("i love chess.") == "chess" and world("no value here") == "no value here"
    assert fact_namer({"source": "files"})("I  like Tea.") == "i like tea."


def test_the_bundle_carries_the_atlas_into_replies(tiny_bundle, tiny_joint):
    folder = checkpoint_path(tiny_joint[0], "joint").parent
    assert (tiny_bundle / "atlas.json").read_text() == (folder / "atlas.json").read_text()
    model = MorpheusModel.from_pretrained(tiny_bundle)
    nearest = {e["code"]: tuple(e["nearest"]) for e in model.atlas["codes"]}
    reply = model.respond(["hi , what do you do for a living ?"], do_sample=False)
    assert [c.nearest for c in reply.codes] == [nearest[c.code] for c in reply.codes]


def test_a_logger_with_tables_and_images_gets_both(tiny_joint, tmp_path):
    cfg, dm, tok_dir = tiny_joint
    logged = []

    class TablesAndImages:
        def log_table(self, key, columns, data):
            logged.append((key, columns, data))

        def log_image(self, key, images):
            logged.append((key, images))

    module = load_trained(cfg, "joint", tok_dir, checkpoint_path(cfg, "joint"))
    stage_atlas(module, dm, tmp_path, "joint", 3, [TablesAndImages(), object()])
    (table_key, columns, rows), (image_key, images) = logged
    assert table_key == "atlas/joint" and columns[0] == "code" and len(rows) == 8
    assert image_key == "atlas/joint_png" and images == [str(tmp_path / "atlas.png")]
    assert all((tmp_path / name).is_file() for name in ATLAS_FILES)
    assert json.loads((tmp_path / "atlas.json").read_text())["summary"]["k"] == 3
    assert not atlas_is_current(tmp_path, 5)
