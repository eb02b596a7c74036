"""Training data of the consistency scorer (Con.Score, paper §4.3): labelled triples.

Every example gives three (persona, context, response) triples, one per label:
  2  coherent and consistent: the gold response;
  1  consistent with the persona but no fit for this context: a response the same role gave to
     another context; a role with a single example has none, so its own response is put after
     the context of an example of another role instead (the same meaning: the role's words, a
     context they do not answer);
  0  inconsistent with the persona: the response of another role to another context (never
     the same text as the gold response).
The official scorer code labels these the other way round (gold 0, next example 1, a
same-persona response two examples later 2) while its metric counts label 2 as Coh-Con; the
semantics here are the paper's.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader

from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.resume import training_loader

CONSISTENT_COHERENT, CONSISTENT_ONLY, INCONSISTENT = 2, 1, 0
_MAX_DRAWS = 1000
LABEL_NAMES = {INCONSISTENT: "inconsistent", CONSISTENT_ONLY: "consistent, incoherent",
               CONSISTENT_COHERENT: "consistent and coherent"}


@dataclass(frozen=True)
class ConsistencyTriple:
    """One scorer input with its label; `source` names the example it was built from."""

    persona: tuple[str, ...]
    context: tuple[str, ...]
    response: str
    label: int
    source: str


def consistency_triples(examples: Sequence[DialogExample], seed: int = 0) -> list[ConsistencyTriple]:
    """Three labelled triples per example (see the module docstring), deterministic by seed.

    Needs at least two roles: labels 0 and 1 borrow from another role.
    """
    by_role: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_role[ex.role].append(i)
    if len(by_role) < 2:
        raise DataFormatError(
            f"the consistency scorer needs examples of at least two roles to build negatives, got "
            f"{len(examples)} example(s) of {len(by_role)} role(s)"
        )
    rng = random.Random(seed)

    def other_role_example(ex: DialogExample) -> DialogExample:
        """A random example of another role whose response differs from `ex`'s."""
        for _ in range(_MAX_DRAWS):
            other = examples[rng.randrange(len(examples))]
            if other.role != ex.role and other.response != ex.response:
                return other
        raise DataFormatError(
            f"{ex.source}: found no example of another role with a different response in "
            f"{_MAX_DRAWS} draws; the data has too few distinct responses for scorer negatives"
        )

    triples = []
    for i, ex in enumerate(examples):
        triples.append(ConsistencyTriple(ex.persona, ex.context, ex.response,
                                         CONSISTENT_COHERENT, ex.source))
        same_role = [j for j in by_role[ex.role]
                     if j != i and examples[j].response != ex.response]
        if same_role:
            context, response = ex.context, examples[rng.choice(same_role)].response
        else:
            context, response = other_role_example(ex).context, ex.response
        triples.append(ConsistencyTriple(ex.persona, context, response, CONSISTENT_ONLY, ex.source))
        triples.append(ConsistencyTriple(ex.persona, ex.context,
                                         other_role_example(ex).response, INCONSISTENT,
                                         ex.source))
    return triples


def scorer_inputs(tokenizer, personas: Sequence[Sequence[str]], contexts: Sequence[Sequence[str]],
                  responses: Sequence[str], max_length: int, max_context_turns: int) -> dict:
    """Pair encoding `persona` | `last turns of the context [SEP] response`, padded tensors.

    The context keeps its `max_context_turns` most recent turns; a pair still longer than
    `max_length` is cut by the tokenizer, longest side first.
    """
    first = [" ".join(persona) for persona in personas]
    second = [
        f"{' '.join(list(context)[-max_context_turns:])} {tokenizer.sep_token} {response}"
        for context, response in zip(contexts, responses)
    ]
    return tokenizer(first, second, truncation="longest_first", max_length=max_length,
                     padding=True, return_tensors="pt")


class ConsistencyDataModule(L.LightningDataModule):
    """Labelled triples of the dataset's splits (read through the shared PersonaDialogDataModule,
    so the same readers, leakage check and errors apply), tokenised for the scorer."""

    def __init__(self, examples_by_split: dict[str, Sequence[DialogExample]], tokenizer,
                 batch_size: int, max_length: int, max_context_turns: int, seed: int = 0) -> None:
        super().__init__()
        self.triples = {split: consistency_triples(examples, seed)
                        for split, examples in examples_by_split.items()}
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_context_turns = max_context_turns
        self.seed = seed

    def collate(self, triples: list[ConsistencyTriple]) -> dict:
        batch = dict(scorer_inputs(self.tokenizer, [t.persona for t in triples],
                                   [t.context for t in triples], [t.response for t in triples],
                                   self.max_length, self.max_context_turns))
        batch["labels"] = torch.tensor([t.label for t in triples], dtype=torch.long)
        return batch

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self.triples[split], batch_size=self.batch_size, collate_fn=self.collate)

    def train_dataloader(self) -> DataLoader:
        """Shuffled in an order fixed by `seed`, and resumable mid-epoch (morpheus_pl.resume)."""
        return training_loader(self.triples["train"], self.batch_size, self.collate, self.seed)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
