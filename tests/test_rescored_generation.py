"""`predictor.decode=rescored`: Eq. 1 at inference by sampled code sets and rescored responses."""

import pytest
import torch

import morpheus_pl.generation as generation
from morpheus_pl.generation import (
    GenerationConfig,
    best_by_marginal,
    generate_batch,
    generate_ids,
    prefix_for,
    scoring_inputs,
)
from morpheus_pl.modules.prefix_lm import prefix_lm_loss, response_nll

GREEDY = GenerationConfig(do_sample=False, max_new_tokens=5)


@pytest.fixture
def stage(prefix_stage):
    return prefix_stage


@pytest.fixture
def batch(tiny_test_batch):
    return tiny_test_batch


def test_the_marginal_not_the_best_single_set_picks_the_response():
    """Hand-worked: candidate 0 has the single most likely pairing (0.5) but the marginal
    0.5 + 0.1 = 0.6 < 0.4 + 0.4 = 0.8 of candidate 1; example 2 the other way round."""
    p = torch.tensor([[[0.5, 0.7], [0.1, 0.3]],
                      [[0.4, 0.2], [0.4, 0.2]]])  # (candidate, set, example)
    assert best_by_marginal(p.log()).tolist() == [1, 0]


def test_scoring_labels_each_response_up_to_its_first_eos_only():
    batch = {"history_ids": torch.tensor([[0, 7, 8], [5, 6, 9]]),
             "history_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])}
    eos = 2
    response = torch.tensor([[4, 2, 2, 2], [4, 5, 6, 3]])  # row 2: no EOS, all four tokens count
    ids, mask, labels = scoring_inputs(batch, response, eos)
    assert ids.tolist() == [[0, 7, 8, 4, 2, 2, 2], [5, 6, 9, 4, 5, 6, 3]]
    assert mask.tolist() == [[0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]
    assert labels.tolist() == [[-100, -100, -100, 4, 2, -100, -100], [-100, -100, -100, 4, 5, 6, 3]]


def test_response_nll_sums_what_the_mean_loss_averages(stage, batch):
    kv, _ = prefix_for(stage, batch, "true_persona")
    response = generate_ids(stage, batch, "true_persona", kv, GREEDY)
    ids, mask, labels = scoring_inputs(batch, response, stage.tokenizer.eos_token_id)
    with torch.no_grad():
        per_example = response_nll(stage.decoder, ids, mask, labels, kv)
        for i in range(ids.shape[0]):
            one = [(k[i:i + 1], v[i:i + 1]) for k, v in kv]
            mean = prefix_lm_loss(stage.decoder, ids[i:i + 1], mask[i:i + 1], labels[i:i + 1], one)
            tokens = int((labels[i] != -100).sum())
            assert float(per_example[i]) == pytest.approx(float(mean) * tokens, rel=1e-4)


def test_one_sample_is_the_sampled_sets_response(stage, batch):
    """S=1: the set drawn as decode=sample draws it, and that set's greedy response."""
    stage.predictor_cfg["rescore_samples"] = 1
    torch.manual_seed(3)
    texts, codes = generate_batch(stage, batch, "morpheus", GREEDY, "rescored")
    torch.manual_seed(3)
    sampled_texts, sampled_codes = generate_batch(stage, batch, "morpheus", GREEDY, "sample")
    assert torch.equal(codes, sampled_codes) and texts == sampled_texts


def test_the_kept_response_has_the_highest_marginal_of_its_candidates(stage, batch, monkeypatch):
    """S=3: each example's response is one of the three generated under the sampled sets, its
    set is the one it was generated under, and no other candidate scores a higher marginal."""
    stage.predictor_cfg["rescore_samples"] = 3
    sets, responses = [], []
    original_ids, original_decode = generation.generate_ids, generation.decode_codes

    def recording_ids(*args, **kwargs):
        responses.append(original_ids(*args, **kwargs))
        return responses[-1]

    def recording_decode(*args, **kwargs):
        sets.append(original_decode(*args, **kwargs))
        return sets[-1]

    monkeypatch.setattr(generation, "generate_ids", recording_ids)
    monkeypatch.setattr(generation, "decode_codes", recording_decode)
    torch.manual_seed(0)
    texts, codes = generate_batch(stage, batch, "morpheus", GREEDY, "rescored")
    assert len(sets) == len(responses) == 3
    eos = stage.tokenizer.eos_token_id
    with torch.no_grad():
        prefixes = [stage.projector(stage.codebook.lookup(s)) for s in sets]
        marginal = torch.stack([  # log Σ_j P(R_s|C,P_j), computed set by set here
            torch.stack([-response_nll(stage.decoder, *scoring_inputs(batch, r, eos), kv)
                         for kv in prefixes]).exp().sum(0).log()
            for r in responses])
    candidates = [stage.tokenizer.batch_decode(r, skip_special_tokens=True) for r in responses]
    for b, text in enumerate(texts):
        chosen = int(marginal[:, b].argmax())
        assert text.strip() == candidates[chosen][b].strip()
        assert torch.equal(codes[b], sets[chosen][b])
    assert not torch.isnan(marginal).any()
