"""PersonaDialogDataModule: one LightningDataModule for every stage and every dataset.

It reads the configured splits (synthetic world, the paper's JSON files, CLV text, ParlAI, or
Hugging Face `datasets`), checks that no held-out role appears in training, tokenises once, and
collates batches that carry every view a stage needs:
  lm_ids/lm_mask/labels    history + response, right-padded, labels -100 outside the response
  history_ids/history_mask the history alone, left-padded (code predictor and generation)
  segment_ids/segment_mask the M persona segments of each example, (B*M, S), right-padded
  segment_lm_ids/_mask     the same segments in the decoder's vocabulary (the same tensors
                           unless the persona encoder has its own tokenizer)
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader

from morpheus_pl.data.example import BatchExamples, DataFormatError, DialogExample
from morpheus_pl.data.leakage import check_role_leakage
from morpheus_pl.data.persona import persona_segments, split_persona, truncate_history_left
from morpheus_pl.data.sources import load_split
from morpheus_pl.resume import training_loader

log = logging.getLogger("morpheus_pl")
SPEAKERS = ("<partner>", "<self>")


def _pad(rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(r) for r in rows)
    pad = [[value] * (width - len(r)) for r in rows]
    return torch.tensor([p + r if left else r + p for r, p in zip(rows, pad)], dtype=torch.long)


class PersonaDialogDataModule(L.LightningDataModule):
    """Splits of one dataset, tokenised for the decoder (and a separate persona encoder if any)."""

    def __init__(
        self,
        dataset: dict,
        num_segments: int | str = "auto",
        max_history_tokens: int = 256,
        max_response_tokens: int = 64,
        max_segment_tokens: int = 32,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dataset = dict(dataset)
        self.num_segments = num_segments
        self.max_history_tokens = max_history_tokens
        self.max_response_tokens = max_response_tokens
        self.max_segment_tokens = max_segment_tokens
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer = None
        self.segment_tokenizer = None
        self.examples: dict[str, list[DialogExample]] = {}
        self.encoded: dict[str, list[dict]] = {}

    def read(self, split: str) -> list[DialogExample]:
        """The raw examples of one split (read once, then cached)."""
        if split not in self.examples:
            self.examples[split] = load_split(self.dataset, split)
            log.info("%s/%s: %d examples", self.dataset["name"], split, len(self.examples[split]))
        return self.examples[split]

    def resolve_num_segments(self) -> int:
        """M (Eq. 3): `num_segments`, or with "auto" the most segments any training persona has
        (5 on ConvAI2-style data, the paper's M; a fixed M cuts the segments of longer personas)."""
        if self.num_segments == "auto":
            separator = self.dataset["separator"]
            self.num_segments = max(1, max(len(persona_segments(ex.persona, separator))
                                           for ex in self.read("train")))
        return int(self.num_segments)

    def set_tokenizers(self, tokenizer, segment_tokenizer=None) -> None:
        """Decoder tokenizer (speaker tokens are added here) and, optionally, the encoder's."""
        tokenizer.add_special_tokens({"additional_special_tokens": list(SPEAKERS)})
        self.tokenizer = tokenizer
        self.segment_tokenizer = segment_tokenizer
        self.encoded.clear()

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            raise RuntimeError("PersonaDialogDataModule.set_tokenizers must be called before setup")
        train = self.read("train")
        self.resolve_num_segments()
        held_out = {s: self.read(s) for s in ("val", "test")}
        check_role_leakage(train, held_out, on_leak=self.dataset.get("on_role_leak", "error"))
        for split in ("train", "val", "test"):
            if split not in self.encoded:
                self.encoded[split] = [self.encode(ex) for ex in self.read(split)]
                self._warn_cut_personas(split)

    def _warn_cut_personas(self, split: str) -> None:
        """Say how many personas have more segments than M (data.num_segments): those after the
        M-th never reach the persona prefix (Eq. 3 keeps M)."""
        examples = self.read(split)
        cut = sum(len(persona_segments(ex.persona, self.dataset["separator"])) > self.num_segments
                  for ex in examples)
        if cut:
            log.warning("%s/%s: %d of %d personas have more than data.num_segments=%d segments; "
                        "the segments after the %d-th are left out of the persona prefix (raise "
                        "data.num_segments to keep them)", self.dataset["name"], split, cut,
                        len(examples), self.num_segments, self.num_segments)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, ex: DialogExample) -> dict:
        """Token ids of one example. Only the newest turns that can fit `max_history_tokens`
        are tokenised (scanning back stops at the first turn that does not fit), so a history of
        any length costs time and memory in the budget, not in its number of turns."""
        tok = self.tokenizer
        partner, self_tag = tok.convert_tokens_to_ids(list(SPEAKERS))
        budget, total, newest_first = self.max_history_tokens - 1, 0, []
        for i in range(len(ex.context) - 1, -1, -1):
            speaker = partner if (len(ex.context) - 1 - i) % 2 == 0 else self_tag
            newest_first.append([speaker, *self._ids(ex.context[i]), tok.eos_token_id])
            total += len(newest_first[-1])
            if total > budget:
                break
        turns = newest_first[::-1]
        kept = truncate_history_left(turns, budget) if turns else []
        history = [tid for turn in kept for tid in turn] + [self_tag]
        response = self._ids(ex.response)[: self.max_response_tokens - 1] + [tok.eos_token_id]
        try:
            segments = split_persona(ex.persona, self.dataset["separator"], self.resolve_num_segments())
        except ValueError as err:
            raise DataFormatError(
                f"record {ex.source}: field 'persona': {err} (expected sentences separated by "
                f"{self.dataset['separator']!r})"
            ) from err
        decoder_segments = self._decoder_segments(segments)
        if self.segment_tokenizer is None:
            encoder_segments = decoder_segments
        else:
            encoder_segments = self.segment_tokenizer(
                segments, truncation=True, max_length=self.max_segment_tokens)["input_ids"]
        return {"history": history, "response": response, "segments": encoder_segments,
                "decoder_segments": decoder_segments, "example": ex}

    def _decoder_segments(self, segments: list[str]) -> list[list[int]]:
        eos = self.tokenizer.eos_token_id
        return [self._ids(s)[: self.max_segment_tokens - 1] + [eos] for s in segments]

    def collate(self, items: list[dict]) -> dict:
        pad = self.tokenizer.pad_token_id
        lm = [it["history"] + it["response"] for it in items]
        labels = [[-100] * len(it["history"]) + it["response"] for it in items]
        segments = [s for it in items for s in it["segments"]]
        seg_pad = pad if self.segment_tokenizer is None else self.segment_tokenizer.pad_token_id
        lm_ids = _pad(lm, pad)
        history_ids = _pad([it["history"] for it in items], pad, left=True)
        segment_ids = _pad(segments, seg_pad)
        segment_mask = _pad([[1] * len(s) for s in segments], 0)
        if self.segment_tokenizer is None:
            segment_lm_ids, segment_lm_mask = segment_ids, segment_mask
        else:
            decoder_segments = [s for it in items for s in it["decoder_segments"]]
            segment_lm_ids = _pad(decoder_segments, pad)
            segment_lm_mask = _pad([[1] * len(s) for s in decoder_segments], 0)
        return {
            "lm_ids": lm_ids,
            "lm_mask": _pad([[1] * len(r) for r in lm], 0),
            "labels": _pad(labels, -100),
            "history_ids": history_ids,
            "history_mask": _pad([[1] * len(it["history"]) for it in items], 0, left=True),
            "segment_ids": segment_ids,
            "segment_mask": segment_mask,
            "segment_lm_ids": segment_lm_ids,
            "segment_lm_mask": segment_lm_mask,
            "examples": BatchExamples(it["example"] for it in items),
            **({"index": torch.tensor([it["index"] for it in items])} if "index" in items[0]
               else {}),
        }

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        if split not in self.encoded:
            self.setup()
        return self._in_order(self.encoded[split], batch_size)

    def _in_order(self, items, batch_size: int) -> DataLoader:
        """An unshuffled loader with its own generator: a DataLoader without one draws its base
        seed from the global random state each time it is iterated, so every validation shifted
        the training's dropout and the results depended on the validation schedule."""
        return DataLoader(items, batch_size=batch_size, shuffle=False, collate_fn=self.collate,
                          num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        """Shuffled in an order fixed by `seed`, and resumable mid-epoch (morpheus_pl.resume)."""
        if "train" not in self.encoded:
            self.setup()
        return training_loader(self.encoded["train"], self.batch_size, self.collate, self.seed,
                               self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def persona_dataloader(self) -> DataLoader:
        """Every training role's persona once (stage 2 encodes these |D| segments); each batch
        carries the items' `index`, so ranks that encode shards can restore this order."""
        items = [{**item, "index": i} for i, item in enumerate(self._training_roles())]
        return self._in_order(items, self.eval_batch_size)

    def persona_segment_tokens(self) -> list[list[int]]:
        """The persona encoder's token ids of every training role's segments, each role once."""
        return [segment for item in self._training_roles() for segment in item["segments"]]

    def _training_roles(self) -> list[dict]:
        """The first encoded training example of every role, in order."""
        if "train" not in self.encoded:
            self.setup()
        seen, items = set(), []
        for item in self.encoded["train"]:
            if item["example"].role not in seen:
                seen.add(item["example"].role)
                items.append(item)
        return items

    def training_texts(self) -> list[str]:
        """All training text (personas, turns, responses): the tiny tokenizer is trained on it."""
        texts = []
        for ex in self.read("train"):
            texts += [*ex.persona, *ex.context, ex.response]
        return texts
