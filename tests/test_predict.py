"""stage=predict on input files written here, in both formats (paper JSON, JSON Lines), with and
without personas, and on bad input: the error names the file, the record and the expectation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from morpheus_pl.bundle import MorpheusModel
from morpheus_pl.data.example import DataFormatError
from morpheus_pl.data.prediction_input import read_prediction_inputs
from morpheus_pl.errors import ConfigError
from morpheus_pl.run import run

from conftest import REPO_ROOT


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _predict(tiny_compose, bundle: Path, input_file: Path, *extra: str) -> Path:
    return run(tiny_compose("stage=predict", f"predict.model={bundle}",
                            f"predict.input={input_file}", *extra))


@pytest.fixture(scope="module")
def test_examples(tiny_joint):
    return tiny_joint[1].read("test")[:6]


def test_paper_json_with_personas_gives_both_replies_in_order(tiny_compose, tiny_bundle,
                                                              test_examples, tmp_path):
    records = [{"persona": list(ex.persona), "context": list(ex.context), "response": ex.response}
               for ex in test_examples]
    source = tmp_path / "dialogues.json"
    source.write_text(json.dumps(records))
    output = _predict(tiny_compose, tiny_bundle, source, f"predict.output={tmp_path / 'out.jsonl'}",
                      "predict.greedy=true")
    assert output == tmp_path / "out.jsonl"
    rows = _rows(output)
    assert [r["source"] for r in rows] == [f"{source}:{i}" for i in range(len(records))]
    assert [r["reference"] for r in rows] == [ex.response for ex in test_examples]
    model = MorpheusModel.from_pretrained(tiny_bundle)
    contexts, personas = [ex.context for ex in test_examples], [ex.persona for ex in test_examples]
    morpheus = model.respond_batch(contexts, do_sample=False)
    true = model.respond_batch(contexts, personas, system="true_persona", do_sample=False)
    assert [r["reply"] for r in rows] == [r.text for r in morpheus]
    assert [r["true_persona_reply"] for r in rows] == [r.text for r in true]
    assert [[c["code"] for c in r["codes"]] for r in rows] == [[c.code for c in r.codes] for r in morpheus]
    assert all(len(r["codes"]) == 5 and 0 < r["codes"][0]["probability"] < 1 for r in rows)


def test_json_lines_with_and_without_personas_in_small_batches(tiny_compose, tiny_bundle,
                                                              test_examples, tmp_path):
    lines = [{"context": list(ex.context)} if i % 2 else
             {"context": list(ex.context), "persona": list(ex.persona)}
             for i, ex in enumerate(test_examples)]
    source = tmp_path / "dialogues.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    output = _predict(tiny_compose, tiny_bundle, source, "predict.batch_size=4")
    assert output == Path(tiny_compose().paths.output) / "predictions.jsonl"
    rows = _rows(output)
    assert [r["source"] for r in rows] == [f"{source}:{i + 1}" for i in range(len(lines))]
    assert [r["context"] for r in rows] == [line["context"] for line in lines]
    assert ["true_persona_reply" in r for r in rows] == [i % 2 == 0 for i in range(len(lines))]
    assert all("reference" not in r and r["codes"] for r in rows)
    assert rows[0]["persona"] == list(test_examples[0].persona)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.jsonl", '{"context": ["hi"]}\n{"persona": ["i am tall."]}\n',
     "a.jsonl: line 2: missing field 'context' (expected context (a list of turns)"),
    ("a.jsonl", '{"context": ["hi"]}\n{"context": "hi"\n',
     "a.jsonl: line 2: invalid JSON: Expecting ',' delimiter"),
    ("a.jsonl", '{"context": "hi"}\n', "a.jsonl: line 1: field 'context': expected a list of strings, got string"),
    ("a.jsonl", '{"context": []}\n', "a.jsonl: line 1: field 'context': empty"),
    ("a.jsonl", '{"context": ["hi"], "persona": 3}\n',
     "a.jsonl: line 1: field 'persona': expected a list of strings or a string, got number"),
    ("a.jsonl", '{"context": ["hi"], "speaker": "me"}\n', "a.jsonl: line 1: unexpected field 'speaker'"),
    ("a.jsonl", '["hi"]\n', "a.jsonl: line 1: expected an object with context"),
    ("a.json", '[{"context": ["hi"]}, {"context": ["a", 7]}]',
     "a.json: record 1: field 'context[1]': expected a string, got number"),
    ("a.json", '{"context": ["hi"]}', "a.json: expected a JSON list of records, got object"),
    ("a.json", "[]", "a.json: no records"),
    ("a.csv", "context\nhi\n", "a.csv: unknown input format: expected a .json file"),
])
def test_bad_input_is_named_by_file_record_and_expectation(tmp_path, name, text, message):
    source = tmp_path / name
    source.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_prediction_inputs(source)
    assert message in str(err.value)


def test_missing_settings_are_named(tiny_compose):
    with pytest.raises(ConfigError, match="stage=predict needs predict.model=DIR"):
        run(tiny_compose("stage=predict"))


def test_the_command_line_prints_the_output_path_last_or_one_error_line(tiny_bundle, tmp_path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text('{"context": ["hi , how are you ?"]}\n')
    bad.write_text('{"context": ["hi"]}\n{"context": ["hi"], "persona": []}\n')
    env = {**os.environ, "MORPHEUS_HOME": str(tmp_path)}

    def predict(source: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "morpheus_pl.run", "stage=predict", f"predict.model={tiny_bundle}",
               f"predict.input={source}", f"hydra.run.dir={tmp_path / 'run'}"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)

    done = predict(good)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "run" / "predictions.jsonl")
    assert len(_rows(tmp_path / "run" / "predictions.jsonl")) == 1
    failed = predict(bad)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: line 2: empty persona: expected a non-empty persona sentence")
