"""Eq. 1 at inference: history -> codes -> prefix -> text, and the two baselines' generation.

`system` picks where the prefix comes from:
  morpheus      history only: predictor -> codes -> codebook vectors -> projector; with
                `decode="expected"` the vectors are Eq. 1's expectation over the codes,
                Σ_k P(k|c) e_k per slot (stages/joint.py, predicted_vectors); with
                `decode="rescored"` the sum by sampling: responses under sampled code sets,
                the one of highest marginal likelihood kept (`rescored_generation`)
  true_persona  the true persona segments -> encoder -> projector (upper bound)
  oracle_codes  the codes nearest to the true persona's segments -> codebook vectors -> projector:
                MORPHEUS with a perfect code predictor (a diagnostic, not a baseline; it
                separates the predictor's errors from what the codebook can carry)
  no_persona    no prefix (a prefix-tuning baseline: its learned prefix; prompt and P-tuning:
                their virtual-token embeddings before the history)
Histories are left-padded; the attention mask covers prefix + history; a fresh cache is built
for every call because `generate` changes it in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.code_predictor import decode_codes
from morpheus_pl.modules.decoder import decode_texts
from morpheus_pl.modules.prefix_lm import response_nll
from morpheus_pl.modules.prefix_projector import prefix_attention, prefix_cache
from morpheus_pl.stages.base import PersonaDialogStage

SYSTEMS = ("morpheus", "no_persona", "true_persona", "oracle_codes")


@dataclass(frozen=True)
class GenerationConfig:
    do_sample: bool = True
    top_p: float = 0.9
    top_k: int = 0
    temperature: float = 1.0
    max_new_tokens: int = 32
    min_new_tokens: int = 0  # > 0: no EOS before this many tokens (e.g. fixed-length benchmarks)


@torch.no_grad()
def prefix_for(stage: PersonaDialogStage, batch: dict, system: str, decode: str = "argmax",
               generator: torch.Generator | None = None) -> tuple[list | None, Tensor | None]:
    """Per-layer (key, value) prefix for `system`, and the codes MORPHEUS's predictor picked
    (None for the other systems, `oracle_codes` included: its codes are not predictions)."""
    if system == "no_persona":
        return stage.baseline_prefix(batch["history_ids"].shape[0]), None
    if system == "true_persona":
        return stage.projector(stage.persona_vectors(batch)), None
    if system == "morpheus":
        codes, vectors = stage.predicted_vectors(stage.code_logits(batch), decode, generator)
        return stage.projector(vectors), codes
    if system == "oracle_codes":
        gold = stage.codebook.nearest(stage.persona_vectors(batch))
        return stage.projector(stage.codebook.lookup(gold)), None
    raise ConfigError(f"system must be one of {SYSTEMS}, got {system!r}")


@torch.no_grad()
def generate_batch(stage: PersonaDialogStage, batch: dict, system: str, config: GenerationConfig,
                   decode: str = "argmax") -> tuple[list[str], Tensor | None]:
    """Generate one response per example of `batch`; returns texts and the picked codes."""
    stage.eval()
    if system == "morpheus" and decode == "rescored":
        return rescored_generation(stage, batch, config)
    kv, codes = prefix_for(stage, batch, system, decode)
    return decode_texts(stage.tokenizer, generate_ids(stage, batch, system, kv, config)), codes


@torch.no_grad()
def rescored_generation(stage: PersonaDialogStage, batch: dict, config: GenerationConfig
                        ) -> tuple[list[str], Tensor]:
    """Eq. 1 at inference by sampling (not in the paper; `predictor.decode=rescored`): S =
    `predictor.rescore_samples` code sets drawn from the predictor's P(P|C) (one code per
    slot), a response R_s generated under each set's prefix, each response scored by the Monte
    Carlo estimate of its marginal, P(R_s|C) ≈ (1/S) Σ_j P(R_s|C,P_j) over the same sets; the
    best response per example and the set it was generated under. Costs S generations and S²
    teacher-forced scoring passes (docs/design.md)."""
    samples = int(stage.predictor_cfg.get("rescore_samples", 4))
    logits = stage.code_logits(batch)
    sets = [decode_codes(logits, "sample") for _ in range(samples)]
    prefixes = [stage.projector(stage.codebook.lookup(codes)) for codes in sets]
    responses = [generate_ids(stage, batch, "morpheus", kv, config) for kv in prefixes]
    log_p = torch.stack([
        torch.stack([-response_nll(stage.decoder, *scoring_inputs(batch, r, stage.tokenizer.eos_token_id), kv)
                     for kv in prefixes])
        for r in responses])
    best = best_by_marginal(log_p)
    rows = range(len(best))
    texts = [decode_texts(stage.tokenizer, responses[s][b:b + 1])[0] for b, s in zip(rows, best.tolist())]
    return texts, torch.stack(sets)[best, torch.arange(len(best), device=best.device)]


def best_by_marginal(log_p: Tensor) -> Tensor:
    """log_p (S candidates, S sets, B) = log P(R_s | C, P_j) -> per example (B,) the candidate
    of highest log Σ_j P(R_s | C, P_j) (the 1/S is the same for all)."""
    return torch.logsumexp(log_p, dim=1).argmax(0)


def scoring_inputs(batch: dict, response: Tensor, eos_token_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """history + generated `response` (B, T) as teacher-forced input ids, mask and labels: the
    response's tokens up to and including its first EOS are labelled, the rest masked."""
    ids, mask = batch["history_ids"], batch["history_mask"]
    is_eos = (response == eos_token_id).long()
    valid = (is_eos.cumsum(-1) - is_eos) == 0
    return (torch.cat([ids, response], 1), torch.cat([mask, valid.to(mask.dtype)], 1),
            torch.cat([torch.full_like(ids, -100), response.masked_fill(~valid, -100)], 1))


def generate_ids(stage: PersonaDialogStage, batch: dict, system: str, kv: list | None,
                 config: GenerationConfig) -> Tensor:
    """The ids (B, T) `generate` continues the history with under the prefix `kv` (or the
    system's virtual tokens)."""
    ids, mask = batch["history_ids"], batch["history_mask"]
    kwargs = {}
    if kv is not None:
        mask, _ = prefix_attention(kv[0][0].shape[2], mask)
        kwargs["cache"] = prefix_cache(kv, stage.decoder.config)
    tok = stage.tokenizer
    prompt = stage.baseline_prompt(ids.shape[0]) if system == "no_persona" else None
    if prompt is not None:
        ids, mask, kwargs["inputs_embeds"] = with_virtual_tokens(stage.generating_model, prompt, ids,
                                                                 mask, tok.pad_token_id)
    if config.do_sample:  # greedy decoding takes no sampling settings (transformers warns)
        kwargs.update(top_p=config.top_p, top_k=config.top_k, temperature=config.temperature)
    out = stage.generating_model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=config.do_sample,
        max_new_tokens=config.max_new_tokens,
        min_new_tokens=config.min_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **kwargs,
    )
    return out[:, ids.shape[1]:]


def with_virtual_tokens(model: PreTrainedModel, prompt: Tensor, ids: Tensor, mask: Tensor, pad_token_id: int
                        ) -> tuple[Tensor, Tensor, Tensor]:
    """`generate` inputs with learned virtual-token embeddings `prompt` (B, P, d) before the
    left-padded history, as prompt and P-tuning train: ids with P placeholder columns in front
    (never embedded: they keep the returned sequences aligned with the input), the mask over
    prompt + history (its cumulative sum gives the history the positions of training), and the
    input embeddings of prompt + history."""
    embeds = model.get_input_embeddings()(ids)
    batch, length = prompt.shape[:2]
    return (torch.cat([ids.new_full((batch, length), pad_token_id), ids], dim=1),
            torch.cat([mask.new_ones(batch, length), mask], dim=1),
            torch.cat([prompt.to(embeds.dtype), embeds], dim=1))
