"""The embedded synthetic persona world: roles, personas and dialogues where the persona is known.

Generative story (all draws from one seeded `random.Random`):
- `num_archetypes` latent archetypes; in every category each archetype prefers one value.
- A role draws an archetype; for each of the first `num_categories` categories it holds its
  archetype's value with probability `archetype_strength`, else a uniformly random other value.
  Facts of a role are therefore correlated through the archetype (paper, Figure 1).
- The persona states `persona_facts` of the role's facts, one sentence each, in shuffled order
  (real persona sentences come in no meaningful order).
- A dialogue: greeting, then the partner asks about `revealed_per_dialogue` categories, which the
  role answers (the history reveals those facts), then asks about one more category of the
  persona that the history has not revealed; the role's answer is the example's response, and
  its value is recorded as `fact` so that persona-fact accuracy is exact.

So the response always depends on a persona fact that the history does not state but that the
revealed facts make likely through the archetype. `archetype_strength`, `revealed_per_dialogue`,
`num_categories` and the number of training roles/dialogues move the world between the regime
where history alone suffices and the one where persona supervision carries structure the
dialogues show only sparsely (docs/data.md, "The synthetic world").
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from morpheus_pl.data.world_ceilings import count_model_accuracy, persona_recall
from morpheus_pl.data.world_lexicon import LEXICONS, Lexicon
from morpheus_pl.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the world. The defaults are conf/dataset/synthetic.yaml's `world`, the `make run`
    world, for the generator used standalone (tests/test_config_mirrors.py keeps them equal)."""

    language: str = "en"
    num_archetypes: int = 6
    num_categories: int = 5
    archetype_strength: float = 0.9
    persona_facts: int = 5
    revealed_per_dialogue: int = 2
    train_roles: int = 1500
    val_roles: int = 100
    test_roles: int = 300
    dialogues_per_role: int = 1
    seed: int = 0

    def validate(self, lexicon: Lexicon) -> None:
        n_cat = len(lexicon.categories)
        n_val = len(lexicon.categories[0].values)
        checks = [
            (1 <= self.num_categories <= n_cat, f"num_categories must be in 1..{n_cat}"),
            (1 <= self.num_archetypes <= n_val, f"num_archetypes must be in 1..{n_val}"),
            (0.0 <= self.archetype_strength <= 1.0, "archetype_strength must be in [0, 1]"),
            (1 <= self.persona_facts <= self.num_categories,
             "persona_facts must be in 1..num_categories"),
            (0 <= self.revealed_per_dialogue < self.persona_facts,
             "revealed_per_dialogue must leave a persona fact unrevealed (< persona_facts)"),
            (min(self.train_roles, self.val_roles, self.test_roles) >= 1, "every split needs a role"),
            (self.dialogues_per_role >= 1, "dialogues_per_role must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"synthetic world: {message} (got {self})")


@dataclass(frozen=True)
class Role:
    role_id: str
    archetype: int
    facts: dict[str, str]
    persona_categories: tuple[str, ...]


class PersonaWorld:
    """Samples roles and dialogues; `write(root)` stores them in the paper's JSON format."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.lexicon = LEXICONS[config.language]
        config.validate(self.lexicon)
        self.rng = random.Random(config.seed)
        self.categories = self.lexicon.categories[: config.num_categories]
        # preferred[a][category] = the value archetype a prefers in that category
        self.preferred = []
        perms = {c.name: self.rng.sample(c.values, len(c.values)) for c in self.categories}
        for a in range(config.num_archetypes):
            self.preferred.append({c.name: perms[c.name][a] for c in self.categories})

    def sample_role(self, role_id: str) -> Role:
        archetype = self.rng.randrange(self.config.num_archetypes)
        facts = {}
        for category in self.categories:
            liked = self.preferred[archetype][category.name]
            if self.rng.random() < self.config.archetype_strength:
                facts[category.name] = liked
            else:
                facts[category.name] = self.rng.choice([v for v in category.values if v != liked])
        stated = self.rng.sample([c.name for c in self.categories], self.config.persona_facts)
        return Role(role_id, archetype, facts, tuple(stated))

    def _category(self, name: str):
        return next(c for c in self.categories if c.name == name)

    def dialogue(self, role: Role) -> dict:
        """One example: history revealing some facts, response stating one unrevealed fact."""
        rng, lex = self.rng, self.lexicon
        order = rng.sample(list(role.persona_categories), len(role.persona_categories))
        revealed, asked = order[: self.config.revealed_per_dialogue], order[-1]
        context = [rng.choice(lex.greetings), rng.choice(lex.replies)]
        for i, name in enumerate([*revealed, asked]):
            question = rng.choice(self._category(name).questions)
            context.append(question if i == 0 else f"{rng.choice(lex.acks)} {question}")
            if name != asked:
                context.append(rng.choice(self._category(name).answers).format(v=role.facts[name]))
        asked_category = self._category(asked)
        persona = [
            rng.choice(self._category(n).persona).format(v=role.facts[n])
            for n in role.persona_categories
        ]
        return {
            "persona": persona,
            "context": context,
            "response": rng.choice(asked_category.answers).format(v=role.facts[asked]),
            "role": role.role_id,
            "fact": role.facts[asked],
            "fact_options": list(asked_category.values),
            "revealed": {n: role.facts[n] for n in revealed},
            "asked": asked,
            "facts": {n: role.facts[n] for n in role.persona_categories},
        }

    def generate(self) -> dict[str, list[dict]]:
        sizes = {"train": self.config.train_roles, "val": self.config.val_roles,
                 "test": self.config.test_roles}
        out = {}
        for split in SPLITS:
            roles = [self.sample_role(f"{self.config.language}-{split}-{i:05d}")
                     for i in range(sizes[split])]
            out[split] = [self.dialogue(r) for r in roles for _ in range(self.config.dialogues_per_role)]
        return out

    def bayes_accuracy(self, records: list[dict]) -> float:
        """Accuracy of the exact posterior predictor from the history (the world's ceiling).

        P(v_c | revealed) = sum_a P(a | revealed) P(v_c | a), with the true world parameters.
        """
        q, n_arch = self.config.archetype_strength, self.config.num_archetypes
        correct = 0
        for rec in records:
            log_post = []
            for a in range(n_arch):
                lp = 0.0
                for name, value in rec["revealed"].items():
                    n_other = len(self._category(name).values) - 1
                    lp += math.log(q if self.preferred[a][name] == value else (1 - q) / n_other + 1e-12)
                log_post.append(lp)
            top = max(log_post)
            post = [math.exp(lp - top) for lp in log_post]
            category = self._category(rec["asked"])
            n_other = len(category.values) - 1
            score = {
                value: sum(
                    p * (q if self.preferred[a][rec["asked"]] == value else (1 - q) / n_other)
                    for a, p in enumerate(post)
                )
                for value in category.values
            }
            correct += max(category.values, key=score.__getitem__) == rec["fact"]
        return correct / max(len(records), 1)

    def write(self, root: str | Path) -> dict:
        """Write `{split}_datas_{language}.json` and `world.json` (knobs, sizes, ceilings)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        data = self.generate()
        for split, records in data.items():
            paper_format = [{k: r[k] for k in ("persona", "context", "response", "role", "fact",
                                                "fact_options")} for r in records]
            path = root / split_file(split, self.config.language)
            path.write_text(json.dumps(paper_format, ensure_ascii=False, indent=0), encoding="utf-8")
        stats = {
            "config": asdict(self.config),
            "examples": {split: len(records) for split, records in data.items()},
            "bayes_fact_accuracy_from_history": {
                split: self.bayes_accuracy(records) for split, records in data.items()
            },
            "count_model_fact_accuracy": {
                source: count_model_accuracy(data["train"], data["test"], source)
                for source in ("history", "persona")
            },
            "persona_recall": persona_recall(data["train"], data["test"]),
        }
        (root / "world.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
        return stats


def split_file(split: str, language: str) -> str:
    """The file a world of `language` writes for `split` (the paper's naming)."""
    return f"{split}_datas_{language}.json"


def check_world_dataset(dataset: dict) -> None:
    """Fail, naming the fix, when a synthetic-world dataset config does not match its world's
    language: the files it reads and the separator that splits its persona sentences."""
    language = dataset["world"]["language"]
    if language not in LEXICONS:
        raise ConfigError(
            f"dataset.world.language must be one of {sorted(LEXICONS)}, got {language!r}")
    files = {split: split_file(split, language) for split in ("train", "val", "test")}
    separator = LEXICONS[language].separator
    if dict(dataset["files"]) != files or dataset["separator"] != separator:
        raise ConfigError(
            f"dataset.world.language={language} writes {sorted(files.values())} with persona "
            f"sentences ending in {separator!r}, but dataset.files={dict(dataset['files'])} and "
            f"dataset.separator={dataset['separator']!r}: use dataset=synthetic_zh for Chinese "
            f"(dataset=synthetic for English), or set both to match")
