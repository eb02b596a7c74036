"""PEFT mode (paper §5.3) on a tiny LLaMA-architecture decoder (grouped-query attention): every
peft baseline and MORPHEUS's frozen-decoder stages train a step, generate, and leave the frozen
parameters exactly as they were; the trainable share is counted like peft counts it. Prefix,
prompt and P-tuning generate with what they learned (checked on GPT-2 for the latter two)."""

import lightning as L
import peft
import pytest
import torch

from morpheus_pl.generation import GenerationConfig, generate_batch
from morpheus_pl.handoff import load_stage_weights, save_stage
from morpheus_pl.modules.decoder import decode_texts
from morpheus_pl.pipeline import build_stage

GREEDY = GenerationConfig(do_sample=False, max_new_tokens=4)
LLAMA = ("model=tiny_llama", "model.architecture.hidden_size=32",
         "model.architecture.intermediate_size=64")


def _fit(module, dm, steps: int = 2) -> None:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=dm.train_dataloader())


def _snapshot(module, trainable: bool) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad == trainable}


@pytest.mark.parametrize("baseline", ["lora", "prefix_tuning", "prompt_tuning", "p_tuning"])
def test_peft_baseline_trains_generates_and_keeps_the_decoder(baseline, tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    cfg = tiny_compose(*LLAMA, f"peft={baseline}")
    stage = build_stage(cfg, "no_persona", tok_dir)
    assert isinstance(stage.decoder, peft.PeftModel)
    trainable, all_params = stage.decoder.get_nb_trainable_parameters()
    budget = stage.parameter_budget()
    assert (budget["trainable"], budget["total"]) == (trainable, all_params)
    assert 0 < budget["tps_percent"] < 100
    frozen, learned = _snapshot(stage, False), _snapshot(stage, True)
    _fit(stage, dm)
    after = dict(stage.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    assert any(not torch.equal(after[n], v) for n, v in learned.items())
    batch = next(iter(dm.test_dataloader()))
    texts, codes = generate_batch(stage, batch, "no_persona", GREEDY)
    assert len(texts) == batch["history_ids"].shape[0] and codes is None


def test_prefix_tuning_generation_really_uses_its_prefix(tiny_compose, tiny_data):
    """peft's own generate ignores the prefix (transformers 5): ours must not."""
    dm, tok_dir = tiny_data
    stage = build_stage(tiny_compose(*LLAMA, "peft=prefix_tuning"), "no_persona", tok_dir).eval()
    with torch.no_grad():
        for p in stage.decoder.prompt_encoder.parameters():
            p.mul_(30.0)
    batch = next(iter(dm.test_dataloader()))
    ids, mask = batch["history_ids"], batch["history_mask"]
    base = stage.decoder.get_base_model()
    plain = base.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=4,
                          pad_token_id=stage.tokenizer.pad_token_id)[:, ids.shape[1]:]
    recorded = []
    original = base.generate
    base.generate = lambda *a, **k: recorded.append(original(*a, **k)) or recorded[-1]
    generate_batch(stage, batch, "no_persona", GREEDY)
    assert recorded[0].shape[0] == ids.shape[0]
    assert not torch.equal(recorded[0][:, ids.shape[1]:], plain)


@pytest.mark.parametrize("baseline", ["prompt_tuning", "p_tuning"])
def test_virtual_token_generation_equals_a_greedy_loop_without_cache(baseline, tiny_compose,
                                                                      tiny_data):
    """Prompt and P-tuning generate with their virtual tokens once, before the history, at the
    positions of training. Oracle: greedy decoding by full forward passes over prompt + history
    + tokens so far, no cache. peft's own `generate` prepended the virtual tokens again at every
    step (a 2-layer GPT-2 ran past its 512 positions within 25 tokens)."""
    dm, tok_dir = tiny_data
    stage = build_stage(tiny_compose(f"peft={baseline}", "peft.adapter.num_virtual_tokens=6"),
                        "no_persona", tok_dir).eval()
    batch = next(iter(dm.test_dataloader()))
    ids, mask = batch["history_ids"][:3], batch["history_mask"][:3]
    assert (mask == 0).any()  # left padding included
    steps = 24
    texts, _ = generate_batch(stage, {"history_ids": ids, "history_mask": mask}, "no_persona",
                              GenerationConfig(do_sample=False, max_new_tokens=steps,
                                               min_new_tokens=steps))
    base = stage.decoder.get_base_model()
    with torch.no_grad():
        prompt = stage.decoder.get_prompt(ids.shape[0])
        full_mask = torch.cat([torch.ones(ids.shape[0], prompt.shape[1], dtype=mask.dtype), mask], 1)
        tokens = ids
        for _ in range(steps):
            embeds = torch.cat([prompt, base.get_input_embeddings()(tokens)], 1)
            positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
            logits = base(inputs_embeds=embeds, attention_mask=full_mask, position_ids=positions).logits
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
            full_mask = torch.cat([full_mask, torch.ones_like(full_mask[:, :1])], 1)
    assert texts == decode_texts(stage.tokenizer, tokens[:, ids.shape[1]:])


@pytest.mark.parametrize("stage_name", ["role_awareness", "joint"])
def test_morpheus_peft_mode_trains_only_its_own_parts(stage_name, tiny_compose, tiny_data):
    dm, tok_dir = tiny_data
    stage = build_stage(tiny_compose(*LLAMA, "peft=morpheus"), stage_name, tok_dir)
    own = {n for n, p in stage.named_parameters() if p.requires_grad}
    expected_parts = {"projector"} | ({"codebook", "predictor"} if stage_name == "joint" else set())
    assert {n.split(".")[0] for n in own} == expected_parts
    decoder_params = sum(p.numel() for p in stage.decoder.parameters())
    assert stage.parameter_budget()["trainable"] == sum(p.numel() for n, p in
                                                        stage.named_parameters() if n in own)
    assert stage.parameter_budget()["total"] - stage.parameter_budget()["trainable"] == decoder_params
    frozen = _snapshot(stage, False)
    _fit(stage, dm)
    after = dict(stage.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    if stage_name == "joint":
        texts, codes = generate_batch(stage, next(iter(dm.test_dataloader())), "morpheus", GREEDY)
        assert codes is not None and len(texts) == codes.shape[0]


def test_frozen_baseline_is_the_untrained_decoder(tiny_compose, tiny_data):
    _, tok_dir = tiny_data
    stage = build_stage(tiny_compose(*LLAMA, "peft=morpheus"), "no_persona", tok_dir)
    assert stage.parameter_budget()["trainable"] == 0


def test_unknown_baseline_is_refused_by_name(tiny_compose, tiny_data):
    _, tok_dir = tiny_data
    with pytest.raises(ValueError, match="peft.baseline must be one of .*'adapterx'"):
        build_stage(tiny_compose(*LLAMA, "peft.baseline=adapterx"), "no_persona", tok_dir)


def test_peft_checkpoint_leaves_out_a_frozen_pretrained_decoder(tiny_compose, tiny_data, tmp_path):
    """A pretrained decoder frozen in PEFT mode reloads from its source: stage checkpoints hold
    only the trained parts, and the next stage loads them (strictly otherwise)."""
    _, tok_dir = tiny_data
    cfg = tiny_compose(*LLAMA, "peft=morpheus")
    build_stage(cfg, "role_awareness", tok_dir).decoder.save_pretrained(tmp_path / "decoder")
    pretrained = tiny_compose(*LLAMA, "peft=morpheus", "model.source=pretrained",
                              f"model.name_or_path={tmp_path / 'decoder'}")
    stage1 = build_stage(pretrained, "role_awareness", tok_dir)
    with torch.no_grad():
        stage1.projector.mlp[0].weight.add_(1.0)
    path = tmp_path / "stage1.ckpt"
    save_stage(stage1, path, "role_awareness", pretrained)
    saved = torch.load(path, weights_only=True)["state_dict"]
    # the encoder's counted token weights (encoder.pooling=sif) are data, not the decoder's
    counted = {"persona_encoder.token_weights", "persona_encoder.token_weights_fitted"}
    assert saved and not any(k.startswith(("decoder.", "persona_encoder.")) for k in set(saved) - counted)
    stage2 = build_stage(pretrained, "codebook_init", tok_dir)
    load_stage_weights(stage2, path, ("codebook.",))
    assert torch.equal(stage2.projector.mlp[0].weight, stage1.projector.mlp[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(stage2.decoder.parameters(), stage1.decoder.parameters()))
