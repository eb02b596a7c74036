"""One joint-stage training step (Eq. 8-14) against one plain causal-LM fine-tuning step.

Setting: a GPT-2-small configuration (12 layers, 768 wide, vocabulary 50,257; random weights),
the project's default configuration otherwise (conf/: N = 100 codes, M = 5 persona segments
encoded by the decoder itself, projector d -> 2d -> 4d -> 12 x (key, value)), a batch of 8
examples of 128 tokens (history 80-96 tokens + response 16-32, right-padded), segments of
8-16 tokens, forward + backward + AdamW, one CPU process (or `--device cuda`, float32; memory
is then the peak of allocated GPU memory).

Variants, each in its own process (peak RSS is the process's), interleaved over rounds so a
noisy machine slows them alike:
- plain: `GPT2LMHeadModel(input_ids, labels=...)`, the whole sequence through the LM head;
- no_persona: the project's no-persona baseline step (LM head on response positions only);
- joint: the joint stage's `training_step`, default configuration;
- joint_detached_history: `predictor.history_grad=false` (no gradient from L_C into the
  decoder: the history pass runs without autograd).
The joint step is also broken down by part (forward times from timers around each part's call;
backward + optimiser as the rest). Targets: joint <= 1.8 x plain time and <= 1.4 x plain peak
RSS. glibc's allocator is tuned the way `morpheus_pl.run` tunes it (`morpheus_pl.allocator`);
`--default-malloc` measures without.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BATCH, LENGTH, SEGMENT = 8, 128, 16
STEPS, GPU_STEPS, ROUNDS = 3, 20, 2
VARIANTS = ("plain", "no_persona", "joint", "joint_detached_history")
TIME_TARGET, MEMORY_TARGET = 1.8, 1.4
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def gpt2_small_tokenizer(out_dir: Path) -> str:
    """A word-level tokenizer with GPT-2's 50,257 ids (the texts are never needed here)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(50256)} | {"<|endoftext|>": 50256}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(str(out_dir))
    return str(out_dir)


def make_batch(num_segments: int, pad: int):
    import torch

    g = torch.Generator().manual_seed(0)
    hist = torch.randint(80, 97, (BATCH,), generator=g)
    resp = torch.randint(16, 33, (BATCH,), generator=g)
    lm_ids = torch.full((BATCH, LENGTH), pad)
    lm_mask = torch.zeros_like(lm_ids)
    labels = torch.full_like(lm_ids, -100)
    history_ids = torch.full((BATCH, int(hist.max())), pad)
    history_mask = torch.zeros_like(history_ids)
    for b, (h, r) in enumerate(zip(hist.tolist(), resp.tolist())):
        tokens = torch.randint(0, 50256, (h + r,), generator=g)
        lm_ids[b, : h + r], lm_mask[b, : h + r] = tokens, 1
        labels[b, h : h + r] = tokens[h:]
        history_ids[b, -h:], history_mask[b, -h:] = tokens[:h], 1
    seg_len = torch.randint(8, SEGMENT + 1, (BATCH * num_segments,), generator=g)
    segment_ids = torch.full((BATCH * num_segments, SEGMENT), pad)
    segment_mask = torch.zeros_like(segment_ids)
    for s, n in enumerate(seg_len.tolist()):
        segment_ids[s, :n] = torch.randint(0, 50256, (n,), generator=g)
        segment_mask[s, :n] = 1
    return {"lm_ids": lm_ids, "lm_mask": lm_mask, "labels": labels, "history_ids": history_ids,
            "history_mask": history_mask, "segment_ids": segment_ids, "segment_mask": segment_mask}


def build(variant: str, tokenizer_dir: str, device: str):
    """(model, step function) for one variant."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForCausalLM

    from morpheus_pl.pipeline import build_stage
    from morpheus_pl.stages.base import adamw

    # M fixed at the paper's 5: no data is read here to decide it (data.num_segments=auto)
    overrides = ["data.num_segments=5", "model=gpt2", "model.source=config",
                 "model.name_or_path=null", "model.architecture={model_type: gpt2}"]
    if variant == "joint_detached_history":
        overrides.append("predictor.history_grad=false")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    batch = {k: v.to(device) for k, v in make_batch(cfg.data.num_segments, pad=50256).items()}
    if variant == "plain":
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("gpt2")).to(device)
        model.train()

        def loss_fn():
            return model(input_ids=batch["lm_ids"], attention_mask=batch["lm_mask"],
                         labels=batch["labels"]).loss
    else:
        stage = "no_persona" if variant == "no_persona" else "joint"
        model = build_stage(cfg, stage, tokenizer_dir).to(device)
        model.train()
        if stage == "joint":  # a fitted codebook's scale: codes drawn from the persona vectors
            with torch.no_grad():
                p = model.persona_vectors(batch).reshape(-1, model.hidden_size)
                model.codebook.codes.copy_(p[torch.randint(0, len(p), (model.codebook.num_codes,))])

        def loss_fn():
            return model.training_step(batch, 0)
    if variant == "plain":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.001)
    else:  # the project's optimiser (fused AdamW, no decay on biases and norms)
        optimizer = adamw(model, OmegaConf.to_container(cfg.optim, resolve=True))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return float(loss.detach())  # waits for the device

    return model, step


@contextmanager
def timed_parts(model, totals: dict):
    """Add the wall time of each part's forward call to `totals` while inside."""
    import torch

    import morpheus_pl.stages.joint as joint
    from morpheus_pl.modules import prefix_lm

    def timer(name, fn):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if torch.cuda.is_initialized():
                    torch.cuda.synchronize()
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return wrapped

    saved = (joint.history_states, joint.prefix_lm_loss, model.persona_encoder.forward)
    joint.history_states = timer("history pass (fwd)", prefix_lm.history_states)
    joint.prefix_lm_loss = timer("generation pass (fwd)", prefix_lm.prefix_lm_loss)
    model.persona_encoder.forward = timer("persona encoding (fwd)", model.persona_encoder.forward)
    try:
        yield
    finally:
        joint.history_states, joint.prefix_lm_loss, model.persona_encoder.forward = saved


def measure(variant: str, default_malloc: bool, device: str) -> dict:
    import warnings

    import torch

    from morpheus_pl.allocator import tune_glibc_malloc

    if not default_malloc:
        tune_glibc_malloc()
    warnings.filterwarnings("ignore", message=".*self.log.*")
    with tempfile.TemporaryDirectory() as tmp:
        model, step = build(variant, gpt2_small_tokenizer(Path(tmp)), device)
    step()  # warm-up
    steps = STEPS if device == "cpu" else GPU_STEPS
    times, parts = [], {}
    for _ in range(steps):
        start = time.perf_counter()
        if variant.startswith("joint"):
            with timed_parts(model, parts):
                step()
        else:
            step()
        times.append(time.perf_counter() - start)
    parts = {k: v / steps for k, v in parts.items()}
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": statistics.median(times), "parts": parts, "peak_gib": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, help="measure one variant in this process")
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc malloc as it is")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="processes per variant")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.default_malloc, args.device)))
        return 0
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", variant, "--device", args.device]
            if args.default_malloc:
                cmd.append("--default-malloc")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    seconds = {v: statistics.median(r["seconds"] for r in runs[v]) for v in VARIANTS}
    peak = {v: max(r["peak_gib"] for r in runs[v]) for v in VARIANTS}
    memory = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    print(f"GPT-2-small config, batch {BATCH} x {LENGTH}, M=5 x {SEGMENT}, N=100; {args.device}; "
          f"median of {args.rounds} processes x {STEPS if args.device == 'cpu' else GPU_STEPS} steps; malloc "
          f"{'default' if args.default_malloc else 'tuned'}")
    for v in VARIANTS:
        print(f"  {v:24s} {seconds[v]:6.3f} s/step ({seconds[v] / seconds['plain']:.2f} x plain)  "
              f"{memory} {peak[v]:5.2f} GiB ({peak[v] / peak['plain']:.2f} x plain)")
    parts = runs["joint"][-1]["parts"]
    print("  joint step by part (forward timers; the rest is backward + AdamW + bookkeeping):")
    for name, t in parts.items():
        print(f"    {name:28s} {t:6.3f} s")
    rest = runs["joint"][-1]["seconds"] - sum(parts.values())
    print(f"    {'backward, AdamW, other':28s} {rest:6.3f} s")
    time_ratio = seconds["joint"] / seconds["plain"]
    memory_ratio = peak["joint"] / peak["plain"]
    ok = time_ratio <= TIME_TARGET and memory_ratio <= MEMORY_TARGET
    print(f"joint / plain: time {time_ratio:.2f} x (target <= {TIME_TARGET}), {memory} "
          f"{memory_ratio:.2f} x (target <= {MEMORY_TARGET}): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
