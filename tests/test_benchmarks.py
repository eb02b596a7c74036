"""The benchmark scripts still run against the project's current APIs (at toy sizes: their
figures are not checked here, only that each measures what it says it measures)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generation_benchmark_runs_both_systems_through_generate_batch():
    bench = load("bench_generation")
    from morpheus_pl.generation import GenerationConfig, generate_batch

    torch.manual_seed(0)
    parts = bench.MorpheusParts().eval()
    ids = torch.randint(1, 50000, (2, 12))
    mask = torch.ones_like(ids)
    ids[0, :4], mask[0, :4] = 0, 0
    batch = {"history_ids": ids, "history_mask": mask}
    gen = GenerationConfig(do_sample=False, top_p=1.0, max_new_tokens=2, min_new_tokens=2)
    texts, codes = generate_batch(parts, batch, "no_persona", gen)
    assert len(texts) == 2 and codes is None
    texts, codes = generate_batch(parts, batch, "morpheus", gen)
    assert len(texts) == 2 and codes.shape == (2, bench.SLOTS)
    assert int(codes.min()) >= 0 and int(codes.max()) < bench.CODES
    texts, codes = generate_batch(parts, batch, "morpheus", gen, "rescored")  # --decodings
    assert len(texts) == 2 and codes.shape == (2, bench.SLOTS)


@pytest.mark.filterwarnings("ignore:.*self.log.*")
@pytest.mark.parametrize("variant", ["plain", "no_persona", "joint", "joint_detached_history"])
def test_joint_step_benchmark_builds_and_steps_every_variant(variant, tmp_path, monkeypatch):
    bench = load("bench_joint_step")
    monkeypatch.setattr(bench, "BATCH", 2)
    model, step = bench.build(variant, bench.gpt2_small_tokenizer(tmp_path), "cpu")
    parts: dict[str, float] = {}
    if variant.startswith("joint"):
        with bench.timed_parts(model, parts):
            loss = step()
        # every part's timer fired: the joint stage still calls what the breakdown wraps
        assert set(parts) == {"history pass (fwd)", "generation pass (fwd)",
                              "persona encoding (fwd)"}
    else:
        loss = step()
    assert math.isfinite(loss)


def test_em_benchmark_fits_without_empty_components(monkeypatch):
    bench = load("bench_em")
    monkeypatch.setattr(bench, "N_SAMPLES", 600)
    monkeypatch.setattr(bench, "DIM", 8)
    monkeypatch.setattr(bench, "COMPONENTS", 5)
    x, truth = bench.mixture(seed=0)
    init = bench.kmeans_pp_seeds(x, 5, torch.Generator().manual_seed(0))
    _, labels, empty, fit = bench.ours(x, init)
    _, sk_labels, _, _ = bench.sklearn_fit(x.double().numpy(), init.double().numpy())
    assert labels.shape == truth.shape == sk_labels.shape
    assert empty == 0 and len(set(labels.tolist())) == 5 and fit.n_iter >= 1


def test_metrics_benchmark_agrees_with_nltk_at_a_toy_size(monkeypatch, capsys):
    bench = load("bench_metrics")
    monkeypatch.setattr(bench, "RESPONSES", 40)
    monkeypatch.setattr(bench, "NLTK_SUBSET", 25)
    monkeypatch.setattr(bench, "ROUNDS", 1)
    threads = torch.get_num_threads()
    try:
        assert bench.main() == 0  # it sets one thread, as it measures on one core
    finally:
        torch.set_num_threads(threads)
    assert "identical values: True" in capsys.readouterr().out
