"""MORPHEUS generation (history pass -> codes -> prefix -> generate) against plain `generate`.

Setting: a GPT-2-small configuration (12 layers, 768 wide, vocabulary 50,257; random weights;
the fused tanh-GELU that `build_decoder` gives every decoder), N = 100 codes, M = 5 slots, a
batch of 8 histories of 128 tokens (one left-padded to 96), greedy decoding of exactly L new
tokens (min_new_tokens = max_new_tokens), one CPU process (or `--device cuda`, float32). Both go
through `morpheus_pl.generation.generate_batch`, as evaluation does. Targets: at L = 128,
MORPHEUS at least 0.9x the tokens per second of plain generation; at L = 32, at most 1.05x the
floor, plain generation plus one forward pass over the history (the predictor's input).
Figures: medians of 5 timed runs after one warm-up, plain and MORPHEUS runs alternating.
`--decodings` adds, at L = 32, the time of each code decoding (`predictor.decode`) against plain
generation: `rescored` with S sampled sets costs S generations and S² scoring passes (no target;
the cost is reported).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GPT2Config

from morpheus_pl.allocator import tune_glibc_malloc
from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.modules.code_predictor import CodePredictor
from morpheus_pl.modules.decoder import fuse_gelu_tanh
from morpheus_pl.modules.persona_codebook import PersonaCodebook
from morpheus_pl.modules.prefix_lm import history_state
from morpheus_pl.modules.prefix_projector import PrefixProjector, kv_layout
from morpheus_pl.stages.joint import JointTrainingStage

BATCH, HISTORY, CODES, SLOTS = 8, 128, 100, 5
RUNS = 5


class _Tokenizer:
    """What `generate_batch` asks of a tokenizer; the texts themselves are not needed here."""

    pad_token_id, eos_token_id = 0, 50256

    def batch_decode(self, ids, skip_special_tokens: bool = True) -> list[str]:
        return [""] * len(ids)


class MorpheusParts(nn.Module):
    """The inference-time parts of the joint stage (Eq. 1), around one decoder."""

    predictor_cfg = {"expected_top_k": None, "rescore_samples": 4}
    predicted_vectors = JointTrainingStage.predicted_vectors  # picked codes -> prefix vectors

    def __init__(self) -> None:
        super().__init__()
        config = GPT2Config(pad_token_id=0)
        self.decoder = AutoModelForCausalLM.from_config(config)
        fuse_gelu_tanh(self.decoder)  # as `build_decoder` does for every decoder, plain included
        self.tokenizer = _Tokenizer()
        self.projector = PrefixProjector(config.n_embd, kv_layout(config))
        self.codebook = PersonaCodebook(CODES, config.n_embd)
        self.predictor = CodePredictor(config.n_embd, CODES, SLOTS)

    @property
    def generating_model(self) -> nn.Module:
        return self.decoder

    def baseline_prefix(self, batch_size: int) -> None:
        return None

    def baseline_prompt(self, batch_size: int) -> None:
        return None

    def code_logits(self, batch: dict) -> torch.Tensor:
        return self.predictor(history_state(self.decoder, batch["history_ids"],
                                            batch["history_mask"]))


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_seconds(fn) -> float:
    fn()
    return statistics.median(seconds(fn) for _ in range(RUNS))


def paired_median_seconds(plain_fn, morpheus_fn) -> tuple[float, float]:
    """Medians of RUNS alternating runs of each, so a change in machine load hits both alike."""
    plain_fn(), morpheus_fn()
    pairs = [(seconds(plain_fn), seconds(morpheus_fn)) for _ in range(RUNS)]
    return statistics.median(p for p, _ in pairs), statistics.median(m for _, m in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--decodings", action="store_true",
                        help="also time every code decoding at 32 new tokens")
    args = parser.parse_args()
    device = torch.device(args.device)
    tune_glibc_malloc()  # as `morpheus_pl.run` does
    torch.manual_seed(0)
    parts = MorpheusParts().eval().to(device)
    ids = torch.randint(1, 50000, (BATCH, HISTORY))
    mask = torch.ones_like(ids)
    ids[0, :32], mask[0, :32] = 0, 0
    ids, mask = ids.to(device), mask.to(device)
    batch = {"history_ids": ids, "history_mask": mask}
    history_s = median_seconds(lambda: torch.no_grad()(history_state)(parts.decoder, ids, mask))
    print(f"GPT-2-small config, batch {BATCH} x {HISTORY} history tokens, N={CODES}, M={SLOTS}, "
          f"greedy; {device}, torch threads {torch.get_num_threads()}; median of {RUNS}")
    print(f"history pass alone: {history_s:.3f} s")
    print(f"{'new tokens':>10}{'plain s':>10}{'morpheus s':>12}{'plain tok/s':>13}"
          f"{'morpheus tok/s':>16}{'ratio':>8}{'vs floor':>10}")
    failures = []
    for length in (32, 128):
        gen = GenerationConfig(do_sample=False, top_p=1.0, max_new_tokens=length,
                               min_new_tokens=length)
        # the lambdas run inside this iteration, so the loop's `gen` is the one meant
        plain, morpheus = paired_median_seconds(
            lambda: generate_batch(parts, batch, "no_persona", gen),  # noqa: B023
            lambda: generate_batch(parts, batch, "morpheus", gen))  # noqa: B023
        tokens = BATCH * length
        speed_ratio = plain / morpheus
        floor_ratio = morpheus / (plain + history_s)
        print(f"{length:>10}{plain:>10.3f}{morpheus:>12.3f}{tokens / plain:>13.1f}"
              f"{tokens / morpheus:>16.1f}{speed_ratio:>8.3f}{floor_ratio:>10.3f}")
        if length == 128 and speed_ratio < 0.9:
            failures.append(f"at {length} tokens MORPHEUS runs at {speed_ratio:.2f}x plain (< 0.9x)")
        if length == 32 and floor_ratio > 1.05:
            failures.append(f"at {length} tokens MORPHEUS takes {floor_ratio:.3f}x the floor (> 1.05x)")
    if args.decodings:
        print_decoding_costs(parts, batch)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def print_decoding_costs(parts: MorpheusParts, batch: dict) -> None:
    """Each decoding's seconds per batch at 32 new tokens, and its ratio to plain generation."""
    gen = GenerationConfig(do_sample=False, top_p=1.0, max_new_tokens=32, min_new_tokens=32)
    print(f"\n{'decode':>20}{'s':>8}{'x plain':>9}")
    plain = median_seconds(lambda: generate_batch(parts, batch, "no_persona", gen))
    print(f"{'plain':>20}{plain:>8.3f}{1:>9.2f}")
    for decode, samples in (("argmax", None), ("top_m_distinct", None), ("covering", None), ("expected", None),
                            ("rescored", 2), ("rescored", 4)):
        if samples:
            parts.predictor_cfg["rescore_samples"] = samples
        took = median_seconds(lambda: generate_batch(parts, batch, "morpheus", gen, decode))  # noqa: B023
        name = f"{decode} S={samples}" if samples else decode
        print(f"{name:>20}{took:>8.3f}{took / plain:>9.2f}")


if __name__ == "__main__":
    sys.exit(main())
