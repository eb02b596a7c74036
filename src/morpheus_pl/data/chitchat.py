"""Real human dialogues from the PyPI package `chitchat-dataset` (MIT; 7,168 conversations,
1,315 speaker ids), written as the paper's JSON splits with speakers as roles.

Rules (docs/data.md, "chitchat"):
- a turn is one speaker's consecutive messages joined by a space; single-speaker conversations
  give no example;
- an example is a turn t >= 1 of a two-speaker conversation: the previous turns (at most
  `max_context_turns`, oldest dropped) are the history, turn t the response, its speaker the role;
- a role's persona is its self-disclosure sentences from its OTHER conversations, so it never
  contains the target response: sentences that start with a first-person word (i, i'm, my, ...),
  are not questions and have 4-25 words; the longest `persona_sentences` of them (ties: first
  said first), with the persona separator '.' removed inside a sentence. An example whose role
  has fewer than `min_persona_sentences` such sentences outside the conversation is skipped and
  counted;
- roles (speakers) are split into train/val/test by a seeded shuffle, so test roles are unseen
  in training; `max_examples` keeps a seeded random subset of a split (null: all).
Counts of examples, skips, roles and persona segments go to `stats.json` beside the splits.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from morpheus_pl.data.example import DataFormatError
from morpheus_pl.digest import settings_digest
from morpheus_pl.modules.offline_models import resolve_model_path

log = logging.getLogger("morpheus_pl")
SPLITS = ("train", "val", "test")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FIRST_PERSON = {"i", "i'm", "im", "i've", "ive", "i'd", "i'll", "my", "me", "myself"}


@dataclass(frozen=True)
class ChitchatConfig:
    package_file: str = "pypi:chitchat_dataset/dataset.json"
    persona_sentences: int = 5
    min_persona_sentences: int = 3
    max_context_turns: int = 8
    val_roles: float = 0.05
    test_roles: float = 0.1
    max_examples: dict = field(default_factory=lambda: {"train": None, "val": None, "test": None})
    seed: int = 0


def chitchat_dir(root: str | Path, settings: dict) -> Path:
    """The folder of one conversion: its settings' fingerprint names it."""
    return Path(root) / f"chitchat-{settings_digest(settings, 10)}"


def _package_file(spec: str) -> Path:
    folder, _, name = spec.rpartition("/")
    path = Path(resolve_model_path(folder)) / name
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (expected the chitchat-dataset JSON, {spec!r})")
    return path


def _turns(conversation: dict, where: str) -> list[tuple[str, str]]:
    """(speaker, text) per turn, consecutive messages of one speaker merged."""
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(conversation.get("messages") or []):
        try:
            sender = message[0]["sender"]
            text = " ".join(u["text"].strip() for u in message if u["text"].strip())
        except (KeyError, IndexError, TypeError) as err:
            raise DataFormatError(
                f"{where}: message {i}: expected a list of {{'text', 'sender'}} objects ({err!r})") from err
        if turns and turns[-1][0] == sender:
            turns[-1] = (sender, f"{turns[-1][1]} {text}".strip())
        else:
            turns.append((sender, text))
    return turns


def self_disclosures(text: str) -> list[str]:
    """The first-person, non-question sentences of 4-25 words in `text`, each ending in '.'."""
    found = []
    for sentence in _SENTENCE_END.split(text.strip()):
        words = sentence.split()
        if not 4 <= len(words) <= 25 or sentence.rstrip().endswith("?"):
            continue
        if words[0].lower().strip(",!") not in _FIRST_PERSON:
            continue
        found.append(sentence.rstrip(".!").replace(".", "").strip() + ".")
    return found


def write_chitchat_splits(out_dir: Path, cfg: ChitchatConfig) -> dict:
    """Convert the package's JSON into `{split}_datas_en.json` + `stats.json`; returns the stats."""
    source = _package_file(cfg.package_file)
    data = json.loads(source.read_text(encoding="utf-8"))
    conversations = [(cid, _turns(c, f"{source}: conversation {cid}")) for cid, c in data.items()]
    said: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)  # (-words, order, cid, text)
    for cid, turns in conversations:
        for speaker, text in turns:
            for sentence in self_disclosures(text):
                said[speaker].append((-len(sentence.split()), len(said[speaker]), cid, sentence))
    for sentences in said.values():
        sentences.sort()
    speakers = sorted({s for _, turns in conversations for s, _ in turns})
    random.Random(cfg.seed).shuffle(speakers)
    n_test, n_val = round(cfg.test_roles * len(speakers)), round(cfg.val_roles * len(speakers))
    split_of = {s: "test" if i < n_test else "val" if i < n_test + n_val else "train"
                for i, s in enumerate(speakers)}
    examples = {split: [] for split in SPLITS}
    skipped = {"single_speaker_conversations": 0, "empty_response": 0, "too_few_persona_sentences": 0}
    for cid, turns in conversations:
        if len({s for s, _ in turns}) < 2:
            skipped["single_speaker_conversations"] += 1
            continue
        for t in range(1, len(turns)):
            speaker, response = turns[t]
            if not response:
                skipped["empty_response"] += 1
                continue
            persona = _persona(said[speaker], cid, cfg.persona_sentences)
            if len(persona) < cfg.min_persona_sentences:
                skipped["too_few_persona_sentences"] += 1
                continue
            context = [text for _, text in turns[max(0, t - cfg.max_context_turns):t]]
            examples[split_of[speaker]].append(
                (cid, {"persona": persona, "context": context, "response": response, "role": speaker}))
    stats = {"source": str(source), "conversations": len(conversations), "speakers": len(speakers),
             "skipped": skipped, "splits": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        kept = examples[split]
        limit = (cfg.max_examples or {}).get(split)
        if limit is not None and len(kept) > limit:
            kept = random.Random(f"{cfg.seed}-{split}").sample(kept, limit)
        rows = [row for _, row in kept]
        (out_dir / f"{split}_datas_en.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        stats["splits"][split] = {**_split_stats(rows), "dialogues": len({cid for cid, _ in kept}),
                                  "examples_before_subset": len(examples[split])}
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2))
    log.info("chitchat: %s examples (train/val/test) from %d conversations, %d speakers, written to %s",
             "/".join(str(stats["splits"][s]["examples"]) for s in SPLITS), len(conversations),
             len(speakers), out_dir)
    return stats


def _persona(sentences: list[tuple[int, int, str, str]], conversation: str, k: int) -> list[str]:
    persona, seen = [], set()
    for _, _, cid, sentence in sentences:
        key = sentence.lower()
        if cid != conversation and key not in seen:
            persona.append(sentence)
            seen.add(key)
            if len(persona) == k:
                break
    return persona


def _split_stats(rows: list[dict]) -> dict:
    segments = [len(r["persona"]) for r in rows]
    return {
        "examples": len(rows),
        "roles": len({r["role"] for r in rows}),
        "persona_segments_mean": round(sum(segments) / max(len(segments), 1), 2),
        "persona_segments_min": min(segments, default=0),
        "persona_segments_max": max(segments, default=0),
    }
