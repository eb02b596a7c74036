"""Stage 2, persona codebook initialisation (Eq. 3-7).

Encode every training role's persona segments with the stage-1 encoder (|D| vectors, through
`trainer.predict`, gathered across ranks), then fill the N codes by `em`, `mean`, `sequential`
or `random` (Table 4). Every rank fits on the same gathered vectors with the same generator, so
all ranks end with the identical codebook.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from morpheus_pl.modules.codebook_init import init_codebook
from morpheus_pl.modules.persona_codebook import PersonaCodebook
from morpheus_pl.stages.role_awareness import RoleAwarenessStage

log = logging.getLogger("morpheus_pl")


def first_occurrences(segment_ids: Tensor, num_segments: int) -> Tensor:
    """Mask (B*M,) keeping each distinct segment once per example (short personas are cycled)."""
    rows = segment_ids.view(-1, num_segments, segment_ids.shape[-1])
    keep = torch.ones(rows.shape[:2], dtype=torch.bool, device=segment_ids.device)
    for j in range(1, num_segments):
        same = (rows[:, :j] == rows[:, j : j + 1]).all(-1).any(-1)
        keep[:, j] = ~same
    return keep.reshape(-1)


class CodebookInitStage(RoleAwarenessStage):
    """Stage-1 model plus a persona codebook; `fit_codebook` initialises it."""

    def __init__(self, *args, codebook: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.codebook_cfg = codebook
        self.codebook = PersonaCodebook(codebook["N"], self.hidden_size)

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        p = self.persona_vectors(batch)
        flat = p.reshape(-1, p.shape[-1])
        return flat[first_occurrences(batch["segment_ids"], p.shape[1])].float()

    def fit_codebook(self, vectors: Tensor, seed: int) -> None:
        """Initialise the codes from all persona vectors (already gathered from every rank)."""
        cfg = self.codebook_cfg
        generator = torch.Generator(device=vectors.device).manual_seed(seed)
        codes = init_codebook(
            vectors, cfg["N"], cfg["init"], generator=generator, em_kwargs=dict(cfg.get("em") or {})
        )
        self.codebook.load_codes(codes.to(self.codebook.codes.dtype))
        log.info("codebook: %d codes initialised by %s from %d persona vectors",
                 cfg["N"], cfg["init"], vectors.shape[0])
