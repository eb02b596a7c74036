"""The decoder and its tokenizer: built from a config (tiny, offline) or loaded pretrained.

Tokenizer conventions live here, in one place: the EOS token ends every turn and response, a
pad token exists (GPT-2 has none: EOS is reused), and generation pads on the left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import PreTrainedTokenizerFast

log = logging.getLogger("morpheus_pl")
EOS = "<|endoftext|>"
PAD = "<pad>"


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


def load_tokenizer(name_or_path: str | Path, revision: str | None = None,
                   trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    """Load a saved or hub tokenizer and give it a pad token (the EOS one where it has none).
    Code shipped with a hub repository runs only when `trust_remote_code` (config) is true."""
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), revision=revision,
                                            trust_remote_code=trust_remote_code)
    except OSError as err:
        raise OSError(
            f"cannot load the tokenizer {name_or_path!r}: {err}. Without access to the Hugging Face "
            f"hub, point the model config at a local copy (model.name_or_path=/path/to/model)."
        ) from err
    if tok.eos_token is None:
        tok.eos_token = tok.sep_token or EOS
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_decoder(
    source: str,
    tokenizer: PreTrainedTokenizerFast,
    name_or_path: str | None = None,
    architecture: dict | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """`source=config`: random weights from `architecture` (e.g. a small GPT-2); `pretrained`:
    hub/local (code shipped with the repository runs only when `trust_remote_code` is true)."""
    if source == "config":
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
        return AutoModelForCausalLM.from_config(config)
    if source == "pretrained":
        try:
            model = AutoModelForCausalLM.from_pretrained(name_or_path,
                                                         trust_remote_code=trust_remote_code)
        except OSError as err:
            raise OSError(
                f"cannot load the decoder {name_or_path!r}: {err}. Without access to the Hugging Face "
                f"hub, download it elsewhere and set model.name_or_path=/path/to/local/copy."
            ) from err
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
        return model
    raise ValueError(f"model.source must be 'config' or 'pretrained', got {source!r}")
