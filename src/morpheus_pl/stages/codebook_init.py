"""Stage 2, persona codebook initialisation (Eq. 3-7).

Encode every training role's persona segments with the stage-1 encoder (|D| vectors, through
`trainer.predict`; under any distributed strategy each rank encodes a shard, and the shards are
gathered back into dataset order), then fill the N codes by `em`, `mean`, `sequential` or
`random` (Table 4). Rank 0 fits and broadcasts the codes, so all ranks end with the identical
codebook, equal to the one a single process fits on the same data.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from morpheus_pl.distributed import gather_in_dataset_order, whole_parameters
from morpheus_pl.modules.codebook_init import init_codebook
from morpheus_pl.modules.persona_codebook import PersonaCodebook
from morpheus_pl.stages.base import PersonaDialogStage

log = logging.getLogger("morpheus_pl")


def first_occurrences(segment_ids: Tensor, num_segments: int) -> Tensor:
    """Mask (B*M,) keeping each distinct segment once per example (short personas are cycled)."""
    rows = segment_ids.view(-1, num_segments, segment_ids.shape[-1])
    keep = torch.ones(rows.shape[:2], dtype=torch.bool, device=segment_ids.device)
    for j in range(1, num_segments):
        same = (rows[:, :j] == rows[:, j : j + 1]).all(-1).any(-1)
        keep[:, j] = ~same
    return keep.reshape(-1)


class CodebookInitStage(PersonaDialogStage):
    """The stage-1 model's persona encoder plus a persona codebook: `trainer.predict` encodes
    the training personas, `fit_codebook` initialises the codes from them. Nothing trains."""

    extra_config_groups = ("codebook",)

    def __init__(self, *args, codebook: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.codebook_cfg = codebook
        self.codebook = PersonaCodebook(codebook["N"], self.hidden_size)

    def on_predict_epoch_start(self) -> None:
        self._encoded: list[tuple[Tensor, Tensor, Tensor]] = []

    def predict_step(self, batch: dict, batch_idx: int) -> None:
        """Encode a batch of personas, p (B, M, d), kept on the device until the epoch ends."""
        p = self.persona_vectors(batch).float()
        keep = first_occurrences(batch["segment_ids"], p.shape[1]).view(p.shape[:2])
        self._encoded.append((batch["index"], p, keep.to(torch.uint8)))

    def on_predict_epoch_end(self) -> None:
        """All ranks' persona vectors (|D|, d), in dataset order, as `encoded_personas`."""
        index, p, keep = (torch.cat(parts) for parts in zip(*self._encoded))
        _, p, keep = gather_in_dataset_order(self, index, p, keep)
        self.encoded_personas = p[keep.bool()]
        self._encoded = []

    def fit_codebook(self, vectors: Tensor, seed: int) -> None:
        """Initialise the codes from all persona vectors (already gathered from every rank).

        Rank 0 fits and broadcasts the codes with the strategy (a no-op in one process) rather
        than every rank fitting for itself: EM's floating-point sums need not agree to the last
        bit between processes and devices (BLAS threads, GPU atomics), and ranks whose codes
        differ by an ulp can pick different nearest codes.
        """
        cfg = self.codebook_cfg
        codes = None
        if self.global_rank == 0:
            generator = torch.Generator(device=vectors.device).manual_seed(seed)
            codes = init_codebook(vectors, cfg["N"], cfg["init"], generator=generator,
                                  em_kwargs=dict(cfg.get("em") or {})).cpu()
        if self._trainer is not None:
            codes = self.trainer.strategy.broadcast(codes, src=0)
        with whole_parameters(self._trainer):
            self.codebook.load_codes(codes.to(self.codebook.codes))
        log.info("codebook: %d codes initialised by %s from %d persona vectors",
                 cfg["N"], cfg["init"], vectors.shape[0])
