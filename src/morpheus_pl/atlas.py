"""The codebook atlas: what each code stands for, read off the training personas.

Every training role's persona segments (each distinct segment once per role, as stage 2 encodes
them) go through the stage's persona encoder and to their nearest code (Eq. 8). For each code:
its share of these segments, how many distinct roles use it, its purity (the share of its
segments that state its most common fact; a code is *pure* at PURE or more), its usage in joint
training, and the K distinct training persona sentences nearest to it. A 2-D PCA of the segment
vectors and the codes goes with it, for the picture (atlas_files.py writes and logs it all).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.data.persona import split_persona
from morpheus_pl.data.world_lexicon import LEXICONS
from morpheus_pl.stages.base import PersonaDialogStage
from morpheus_pl.stages.codebook_init import first_occurrences

PURE = 0.8


@dataclass(frozen=True)
class Atlas:
    """`codes`: one entry per code (JSON-ready); `summary`: totals; the PCA coordinates of the
    segments (S, 2), their codes (S,), and of the codes (N, 2)."""

    codes: list[dict]
    summary: dict
    points: Tensor
    assigned: Tensor
    code_points: Tensor


def fact_namer(dataset: dict) -> Callable[[str], str]:
    """What a persona sentence states, for purity: on a synthetic world the value it names
    (values are unique across categories), elsewhere the sentence itself."""
    if dataset.get("source") != "world":
        return lambda sentence: " ".join(sentence.lower().split())
    lexicon = LEXICONS[(dataset.get("world") or {}).get("language", "en")]
    values = [value for category in lexicon.categories for value in category.values]
    if lexicon.separator == "。":  # no spaces between Chinese words
        patterns = [(value, re.compile(re.escape(value))) for value in values]
    else:
        patterns = [(value, re.compile(rf"\b{re.escape(value)}\b")) for value in values]
    return lambda sentence: next((v for v, p in patterns if p.search(sentence)), sentence)


@torch.no_grad()
def training_segments(module: PersonaDialogStage, dm: PersonaDialogDataModule
                      ) -> tuple[Tensor, list[str], list[str]]:
    """Vectors (S, d), sentences and roles of every training role's distinct persona segments."""
    vectors, sentences, roles = [], [], []
    m, separator = dm.num_segments, dm.dataset["separator"]
    for batch in dm.persona_dataloader():
        batch = module.transfer_batch_to_device(batch, module.device, 0)
        p = module.persona_vectors(batch).float().cpu()
        keep = first_occurrences(batch["segment_ids"], m).view(p.shape[:2]).cpu()
        for i, ex in enumerate(batch["examples"]):
            segments = split_persona(ex.persona, separator, m)
            for j in keep[i].nonzero().squeeze(1).tolist():
                vectors.append(p[i, j])
                sentences.append(segments[j])
                roles.append(ex.role)
    return torch.stack(vectors), sentences, roles


def pca_2d(vectors: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """The vectors' and the codes' coordinates on the vectors' two main axes."""
    mean = vectors.mean(0)
    _, _, basis = torch.linalg.svd(vectors - mean, full_matrices=False)
    axes = basis[:2].T
    if axes.shape[1] < 2:  # a single vector or dimension: a flat second axis
        axes = torch.cat([axes, axes.new_zeros(axes.shape[0], 2 - axes.shape[1])], dim=1)
    return (vectors - mean) @ axes, (codes - mean) @ axes


def nearest_sentences(distances: Tensor, sentences: list[str], k: int) -> list[str]:
    """The `k` distinct sentences at the smallest distances."""
    found: list[str] = []
    for index in distances.argsort().tolist():
        if sentences[index] not in found:
            found.append(sentences[index])
            if len(found) == k:
                break
    return found


@torch.no_grad()
def build_atlas(module: PersonaDialogStage, dm: PersonaDialogDataModule, k: int = 5) -> Atlas:
    """The atlas of a stage-2 or joint-stage module (eval mode) on `dm`'s training split."""
    vectors, sentences, roles = training_segments(module, dm)
    codes = module.codebook.codes.detach().float().cpu()
    assigned = module.codebook.nearest(vectors.to(module.device)).cpu()
    distances = torch.cdist(codes, vectors)
    fact = fact_namer(dm.dataset)
    usage = module.codebook.usage.float().cpu().tolist()
    entries = []
    for code in range(codes.shape[0]):
        mine = (assigned == code).nonzero().squeeze(1).tolist()
        facts = Counter(fact(sentences[i]) for i in mine)
        top, top_count = facts.most_common(1)[0] if facts else (None, 0)
        entries.append({
            "code": code, "share": len(mine) / len(sentences), "segments": len(mine),
            "roles": len({roles[i] for i in mine}),
            "purity": top_count / len(mine) if mine else None, "top_fact": top,
            "usage": usage[code], "nearest": nearest_sentences(distances[code], sentences, k),
        })
    used = [e for e in entries if e["segments"]]
    summary = {"segments": len(sentences), "roles": len(set(roles)), "codes": len(entries),
               "codes_used": len(used), "pure_codes": sum(e["purity"] >= PURE for e in used),
               "pure_threshold": PURE, "k": k}
    points, code_points = pca_2d(vectors, codes)
    return Atlas(entries, summary, points, assigned, code_points)
