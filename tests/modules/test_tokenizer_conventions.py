"""Tokenizer conventions in one place: a BERT-style (WordPiece) Chinese tokenizer, as the
Chinese GPT-2's, gets [SEP] as EOS and keeps [PAD]; decoding drops WordPiece's spaces between
Chinese characters but not between other words."""

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from morpheus_pl.modules.decoder import decode_texts, load_tokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "我", "喜", "欢", "猫", "。", "hello", "world"]


def _bert_style(tmp_path):
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                                   pad_token="[PAD]", cls_token="[CLS]")
    fast.save_pretrained(str(tmp_path))
    return load_tokenizer(tmp_path)


def test_bert_style_tokenizer_gets_sep_as_eos_and_keeps_its_pad(tmp_path):
    tok = _bert_style(tmp_path)
    assert (tok.eos_token, tok.pad_token) == ("[SEP]", "[PAD]")
    assert tok.eos_token_id == 3 and tok.pad_token_id == 0


def test_wordpiece_decoding_drops_spaces_between_chinese_characters_only(tmp_path):
    tok = _bert_style(tmp_path)
    ids = torch.tensor([tok.convert_tokens_to_ids(["我", "喜", "欢", "猫", "。", "hello", "world",
                                                    "[SEP]", "[PAD]"])])
    assert tok.batch_decode(ids, skip_special_tokens=True) == ["我 喜 欢 猫 。 hello world"]
    assert decode_texts(tok, ids) == ["我喜欢猫。 hello world"]


def test_gpt2_gelu_is_fused_with_the_same_outputs(tiny_tokenizer):
    """`build_decoder` swaps GPT-2's composed tanh-GELU for the fused kernel: same function."""
    from transformers.activations import GELUTanh, NewGELUActivation

    from morpheus_pl.modules.decoder import build_decoder, fuse_gelu_tanh

    arch = {"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
    torch.manual_seed(0)
    fused = build_decoder("config", tiny_tokenizer, architecture=arch).eval()
    torch.manual_seed(0)
    composed = build_decoder("config", tiny_tokenizer, architecture=arch).eval()
    for block in composed.transformer.h:
        block.mlp.act = NewGELUActivation()
    assert all(isinstance(b.mlp.act, GELUTanh) for b in fused.transformer.h)
    assert fused.config.activation_function == "gelu_pytorch_tanh"
    ids = torch.randint(0, len(tiny_tokenizer), (2, 12))
    with torch.no_grad():
        assert torch.allclose(fused(ids).logits, composed(ids).logits, atol=1e-5)
    assert fuse_gelu_tanh(composed) == 2 and fuse_gelu_tanh(composed) == 0
