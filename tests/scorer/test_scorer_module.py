"""The consistency scorer stage: learns, predicts independent of batching, loads offline,
hands off through its checkpoint, and is reported missing (not zero) when absent."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from morpheus_pl.scorer.classifier import build_classifier, train_pair_tokenizer
from morpheus_pl.scorer.module import ConsistencyScorerStage
from morpheus_pl.scorer.triples import ConsistencyDataModule

TINY_BERT = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 32,
             "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128}
OPTIM = {"lr": 3e-3, "weight_decay": 0.0, "warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def scorer_tok_dir(tmp_path_factory):
    from tests.conftest import SENTENCES

    out = tmp_path_factory.mktemp("scorer_tok")
    train_pair_tokenizer(SENTENCES * 5, 300, out)
    return out


def _scorer(tok_dir, **model) -> ConsistencyScorerStage:
    torch.manual_seed(0)
    cfg = {"source": "config", "architecture": TINY_BERT, **model}
    return ConsistencyScorerStage(str(tok_dir), cfg, OPTIM, max_length=64, max_context_turns=2)


PERSONAS = [("i like cats.", "i live in paris."), ("i like dogs.",), ("i am a teacher.",)] * 3
CONTEXTS = [("hi", "do you have pets?"), ("hello",), ("what do you do?",)] * 3
RESPONSES = ["i have a cat", "my dog is rex", "i teach maths", "a", "b", "c",
             "i like pizza very much", "no", "yes i do"]


def test_predictions_do_not_depend_on_batching(scorer_tok_dir) -> None:
    scorer = _scorer(scorer_tok_dir)
    one_batch = scorer.predict_labels(PERSONAS, CONTEXTS, RESPONSES, batch_size=64)
    singles = scorer.predict_labels(PERSONAS, CONTEXTS, RESPONSES, batch_size=1)
    assert one_batch.shape == (9,) and torch.equal(one_batch, singles)
    assert scorer.predict_labels([], [], []).shape == (0,)


def test_a_few_steps_fit_a_fixed_batch(scorer_tok_dir) -> None:
    scorer = _scorer(scorer_tok_dir)
    from morpheus_pl.scorer.triples import scorer_inputs

    batch = dict(scorer_inputs(scorer.tokenizer, PERSONAS, CONTEXTS, RESPONSES, 64, 2))
    labels = torch.tensor([2, 1, 0] * 3)
    opt = torch.optim.AdamW(scorer.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(scorer(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert torch.equal(scorer.predict_labels(PERSONAS, CONTEXTS, RESPONSES), labels)


def test_pretrained_source_loads_a_local_copy_offline(scorer_tok_dir, tmp_path) -> None:
    scorer = _scorer(scorer_tok_dir)
    scorer.classifier.save_pretrained(tmp_path)
    scorer.tokenizer.save_pretrained(tmp_path)
    loaded = ConsistencyScorerStage(str(tmp_path), {"source": "pretrained",
                                                    "name_or_path": str(tmp_path)},
                                    OPTIM, max_length=64, max_context_turns=2).eval()
    from morpheus_pl.scorer.triples import scorer_inputs

    batch = dict(scorer_inputs(scorer.tokenizer, PERSONAS, CONTEXTS, RESPONSES, 64, 2))
    with torch.no_grad():
        assert torch.allclose(loaded(batch), scorer.eval()(batch), atol=1e-6)


def test_missing_pretrained_encoder_names_it_and_the_fix(scorer_tok_dir, tmp_path) -> None:
    from morpheus_pl.scorer.classifier import load_classifier_tokenizer

    tok = load_classifier_tokenizer(scorer_tok_dir)
    with pytest.raises(OSError, match="no-such-encoder.*scorer.model.name_or_path"):
        build_classifier("pretrained", tok, 3, str(tmp_path / "no-such-encoder"))
    with pytest.raises(ValueError, match="scorer.model.source must be"):
        build_classifier("hub", tok, 3)


def test_train_report_reuse_and_load(tiny_compose, tiny_data) -> None:
    from morpheus_pl.scorer.training import load_scorer, train_scorer

    dm, _ = tiny_data
    cfg = tiny_compose("scorer.max_steps=4", "scorer.batch_size=8",
                       "scorer.model.architecture.hidden_size=32",
                       "scorer.model.architecture.num_attention_heads=2",
                       "scorer.model.tokenizer.train_vocab_size=400")
    path = train_scorer(cfg, dm)
    report = json.loads((path.parent / "scorer_report.json").read_text())
    confusion = torch.tensor(report["confusion_matrix"])
    assert confusion.shape == (3, 3)
    assert confusion.sum().item() == report["held_out_triples"] == 3 * len(dm.read("test"))
    assert confusion.sum(1).tolist() == [len(dm.read("test"))] * 3  # one triple per label
    assert report["held_out_accuracy"] == pytest.approx((confusion.trace() / confusion.sum()).item())

    mtime = path.stat().st_mtime_ns
    assert train_scorer(cfg, dm) == path and path.stat().st_mtime_ns == mtime
    scorer, info = load_scorer(cfg, dm)
    assert info["checkpoint"] == str(path) and info["held_out_accuracy"] == report["held_out_accuracy"]
    test = dm.read("test")
    data = ConsistencyDataModule({"test": test}, scorer.tokenizer, 8, cfg.scorer.max_length,
                                 cfg.scorer.max_context_turns)
    triples = data.triples["test"]
    labels = scorer.predict_labels([t.persona for t in triples], [t.context for t in triples],
                                   [t.response for t in triples])
    hits = (labels == torch.tensor([t.label for t in triples])).float().mean().item()
    assert hits == pytest.approx(report["held_out_accuracy"])

    missing, why = load_scorer(tiny_compose("scorer.max_steps=5"), dm)
    assert missing is None and why["checkpoint"] is None
    assert "Con.Score and Coh-Con.Score are reported as missing" in why["missing"]
