"""A zoo of persona worlds written independently of the embedded world (`synthetic_world.py`):
its own kinds of fact, invented value words, sentence templates and dialogue shapes. They are
the yardstick of whether the framework's defaults learn on persona data they were not chosen
on; they are never the default dataset.

Each role holds one value for every kind of fact; values cluster around latent archetypes
(`archetype_strength`: the chance that a fact is its archetype's value; each archetype's value
of a kind is drawn independently, so archetypes may share one, unless `distinct_preferences`,
where one revealed fact names the archetype as in the embedded world). The persona states
`persona_facts` of them in shuffled order, with the value at the start, middle or end of the
sentence. A dialogue of 1 to ~10 turns has small talk, reveals `revealed` other facts of the
role, and ends with the partner asking about a stated fact that the history does not reveal;
the reply states that fact (recorded as `fact`, its kind's values as `fact_options`).

    python -m morpheus_pl.data.persona_zoo --list
    python -m morpheus_pl.data.persona_zoo WORLD OUT_DIR [--seed S] [--set KNOB=VALUE ...]

writes `{train,val,test}_datas_en.json` in the paper's JSON (+ role, fact, fact_options), read
by `dataset=convai2 dataset.root=OUT_DIR`, and `world.json`: the world's knobs, sizes and the
count-model references on the test split (`data/world_ceilings.py`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from morpheus_pl.data.world_ceilings import count_model_accuracy, persona_recall
from morpheus_pl.errors import ConfigError

KINDS = (
    "city", "car", "flower", "tree", "bird", "board game", "novel", "dessert", "season",
    "instrument", "fabric", "gemstone", "spice", "boat", "dance", "cheese", "fruit", "planet",
    "tool", "perfume", "tea blend", "font", "river", "painter", "bakery", "festival", "hat",
    "soup", "train line", "card game",
)
SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "vel", "zo", "dar", "pi", "quen", "sa", "bor",
             "fi", "gal", "ny", "or", "wes", "xan", "ju", "hol", "ep", "cra", "mun", "tiv")
PERSONA = (
    "my favourite {k} is {v}", "{v} is the {k} i like best", "i would pick {v} as my {k}",
    "when it comes to {k} , {v} wins for me", "{v} , that is my {k}", "i am a big fan of the {k} {v}",
    "nothing beats {v} for a {k}", "my {k} has always been {v}",
)
QUESTION = (
    "what is your favourite {k} ?", "do you have a {k} you like ?", "which {k} do you prefer ?",
    "tell me about your {k} .", "so , any {k} you love ?", "what {k} would you choose ?",
)
ANSWER = (
    "{v} , no doubt .", "i would say {v} .", "oh , {v} for sure , it is my {k} .",
    "my {k} ? {v} .", "definitely {v} .", "{v} every time , love that {k} .",
)
PARTNER_SMALL_TALK = (
    "hey , how is it going ?", "long day today .", "the weather is odd this week .",
    "i just got back from the shop .", "did you sleep well ?", "my neighbour is loud again .",
    "what a week it has been .", "are you busy later ?",
)
SELF_SMALL_TALK = (
    "not bad , you ?", "same here , honestly .", "ha , i know the feeling .", "yes , quite tired .",
    "i am fine , thanks for asking .", "tell me more .", "oh no , sorry to hear .", "pretty good .",
)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ZooWorld:
    """The knobs of one zoo world."""

    kinds: int = 10
    values_per_kind: int = 5
    archetypes: int = 5
    archetype_strength: float = 0.8
    persona_facts: int = 5
    revealed: int = 1
    dialogues_per_role: int = 1
    train_roles: int = 2000
    val_roles: int = 100
    test_roles: int = 300
    small_talk_pairs: tuple[int, int] = (0, 2)
    templates: int = 4  # templates of each kind (persona, question, answer) this world draws from
    # true: the archetypes prefer distinct values of every kind (needs archetypes <=
    # values_per_kind); false: each archetype's value drawn independently (they may share one)
    distinct_preferences: bool = False

    def validate(self) -> None:
        if not 1 <= self.kinds <= len(KINDS):
            raise ConfigError(f"kinds must be 1..{len(KINDS)}, got {self.kinds}")
        if not 1 <= self.persona_facts <= self.kinds:
            raise ConfigError(
                f"persona_facts must be 1..kinds ({self.kinds}), got {self.persona_facts}")
        if not 0 <= self.revealed <= self.kinds - 1:
            raise ConfigError(
                f"revealed must be 0..kinds-1 ({self.kinds - 1}), got {self.revealed}")
        if self.values_per_kind < 2 or self.archetypes < 1 or self.dialogues_per_role < 1:
            raise ConfigError("values_per_kind >= 2, archetypes >= 1 and dialogues_per_role >= 1")
        if self.distinct_preferences and self.archetypes > self.values_per_kind:
            raise ConfigError(f"distinct_preferences needs archetypes <= values_per_kind "
                              f"({self.values_per_kind}), got {self.archetypes}")
        most = min(len(PERSONA), len(QUESTION), len(ANSWER))
        if not 1 <= self.templates <= most:
            raise ConfigError(f"templates must be 1..{most}, got {self.templates}")


# The members of the role-awareness protocol (experiments/persona_zoo.py); sizes are training
# roles x dialogues per role. `issue16` is the world of the report.
WORLDS = {
    "issue16": ZooWorld(kinds=20, values_per_kind=4, archetypes=4, persona_facts=5, revealed=1,
                        train_roles=3000, small_talk_pairs=(0, 1)),
    "few_kinds": ZooWorld(kinds=5, values_per_kind=6, archetypes=6, archetype_strength=0.9,
                          persona_facts=5, revealed=2, train_roles=1500, templates=3),
    "wide": ZooWorld(kinds=30, values_per_kind=3, archetypes=3, archetype_strength=0.7,
                     persona_facts=8, revealed=0, train_roles=1000, val_roles=40, test_roles=100,
                     dialogues_per_role=5),
    "long_history": ZooWorld(kinds=12, values_per_kind=5, archetypes=4, persona_facts=6,
                             revealed=3, train_roles=1200, dialogues_per_role=2,
                             small_talk_pairs=(1, 3), templates=6),
    "many_values": ZooWorld(kinds=8, values_per_kind=10, archetypes=8, archetype_strength=0.6,
                            persona_facts=4, revealed=2, train_roles=5000, test_roles=400),
}


def invented_words(count: int, rng: random.Random) -> list[str]:
    """`count` distinct made-up words of 2-3 syllables (no word in any English list)."""
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
    return sorted(words)


class ZooGenerator:
    """Samples one zoo world's roles and dialogues (deterministic by seed)."""

    def __init__(self, world: ZooWorld, seed: int = 0) -> None:
        world.validate()
        self.world = world
        self.rng = random.Random(seed)
        self.kinds = self.rng.sample(KINDS, world.kinds)
        words = invented_words(world.kinds * world.values_per_kind, self.rng)
        self.rng.shuffle(words)
        n = world.values_per_kind
        self.values = {k: words[i * n:(i + 1) * n] for i, k in enumerate(self.kinds)}
        if world.distinct_preferences:
            order = {k: self.rng.sample(self.values[k], world.archetypes) for k in self.kinds}
            self.preferred = [{k: order[k][a] for k in self.kinds} for a in range(world.archetypes)]
        else:
            self.preferred = [{k: self.rng.choice(self.values[k]) for k in self.kinds}
                              for _ in range(world.archetypes)]
        pick = world.templates
        self.persona_templates = self.rng.sample(PERSONA, pick)
        self.question_templates = self.rng.sample(QUESTION, pick)
        self.answer_templates = self.rng.sample(ANSWER, pick)

    def role(self) -> tuple[dict[str, str], list[str]]:
        """All facts of a new role, and the kinds its persona states (shuffled)."""
        liked = self.rng.choice(self.preferred)
        facts = {}
        for kind in self.kinds:
            if self.rng.random() < self.world.archetype_strength:
                facts[kind] = liked[kind]
            else:
                facts[kind] = self.rng.choice([v for v in self.values[kind] if v != liked[kind]])
        return facts, self.rng.sample(self.kinds, self.world.persona_facts)

    def dialogue(self, role_id: str, facts: dict[str, str], stated: list[str]) -> dict:
        rng = self.rng
        asked = rng.choice(stated)
        revealed = rng.sample([k for k in self.kinds if k != asked], self.world.revealed)
        turns: list[str] = []
        for _ in range(rng.randint(*self.world.small_talk_pairs)):
            turns += [rng.choice(PARTNER_SMALL_TALK), rng.choice(SELF_SMALL_TALK)]
        for kind in revealed:
            turns += [rng.choice(self.question_templates).format(k=kind),
                      rng.choice(self.answer_templates).format(k=kind, v=facts[kind])]
        turns.append(rng.choice(self.question_templates).format(k=asked))
        persona = [rng.choice(self.persona_templates).format(k=k, v=facts[k]) + " ." for k in stated]
        return {
            "persona": persona, "context": turns,
            "response": rng.choice(self.answer_templates).format(k=asked, v=facts[asked]),
            "role": role_id, "fact": facts[asked], "fact_options": list(self.values[asked]),
            "asked": asked, "revealed": {k: facts[k] for k in revealed},
            "facts": {k: facts[k] for k in stated},
        }

    def generate(self) -> dict[str, list[dict]]:
        sizes = {"train": self.world.train_roles, "val": self.world.val_roles,
                 "test": self.world.test_roles}
        out = {}
        for split in SPLITS:
            records = []
            for i in range(sizes[split]):
                facts, stated = self.role()
                records += [self.dialogue(f"zoo-{split}-{i:05d}", facts, stated)
                            for _ in range(self.world.dialogues_per_role)]
            out[split] = records
        return out


def write_world(world: ZooWorld, root: str | Path, seed: int = 0) -> dict:
    """Write the three splits and `world.json` (knobs, sizes, count-model references on test)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data = ZooGenerator(world, seed).generate()
    for split, records in data.items():
        rows = [{k: r[k] for k in ("persona", "context", "response", "role", "fact", "fact_options")}
                for r in records]
        (root / f"{split}_datas_en.json").write_text(json.dumps(rows, indent=0), encoding="utf-8")
    stats = {
        "world": asdict(world), "seed": seed,
        "examples": {split: len(records) for split, records in data.items()},
        "chance_fact_accuracy": 1.0 / world.values_per_kind,
        "count_model_fact_accuracy": {
            source: count_model_accuracy(data["train"], data["test"], source)
            for source in ("history", "persona")},
        "persona_recall": persona_recall(data["train"], data["test"]),
    }
    (root / "world.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats


KNOB_VALUES = {int: "an integer", float: "a number", bool: "true or false",
               tuple: "two comma-separated integers"}


def with_knobs(world: ZooWorld, assignments: list[str]) -> ZooWorld:
    """`world` with each "knob=value" applied, the value read as the knob's type (bool: true or
    false; the small-talk range: two comma-separated ints)."""
    defaults = asdict(ZooWorld())
    changes = {}
    for assignment in assignments:
        knob, sep, text = assignment.partition("=")
        if not sep or knob not in defaults:
            raise ValueError(f"--set {assignment!r}: expected KNOB=VALUE with KNOB one of "
                             f"{', '.join(defaults)}")
        kind = type(defaults[knob])
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                changes[knob] = text.lower() == "true"
            elif kind is tuple:
                low, high = (int(part) for part in text.split(","))
                changes[knob] = (low, high)
            else:
                changes[knob] = kind(text)
        except ValueError:
            raise ValueError(f"--set {assignment!r}: {knob} takes {KNOB_VALUES[kind]}") from None
    return replace(world, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m morpheus_pl.data.persona_zoo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", help=f"one of {', '.join(WORLDS)}")
    parser.add_argument("out", nargs="?", help="folder to write the splits and world.json into")
    parser.add_argument("--seed", type=int, default=0, help="the world's sampling seed")
    parser.add_argument("--train-roles", type=int, help="override the world's training roles")
    parser.add_argument("--set", nargs="+", default=[], metavar="KNOB=VALUE",
                        help="override any of the world's knobs (--list shows them), e.g. "
                             "--set revealed=3 distinct_preferences=true small_talk_pairs=0,2")
    parser.add_argument("--list", action="store_true", help="list the worlds and their knobs")
    args = parser.parse_args(argv)
    if args.list:
        for name, world in WORLDS.items():
            print(name, json.dumps(asdict(world)))
        return 0
    if args.world not in WORLDS or not args.out:
        parser.error(f"give a world ({', '.join(WORLDS)}) and an output folder")
    world = WORLDS[args.world]
    if args.train_roles:
        world = replace(world, train_roles=args.train_roles)
    try:
        world = with_knobs(world, args.set)
        world.validate()
    except ValueError as err:  # ConfigError is one: a bad knob or an impossible world
        parser.error(str(err))
    stats = write_world(world, args.out, args.seed)
    print(json.dumps({k: stats[k] for k in ("examples", "chance_fact_accuracy",
                                            "count_model_fact_accuracy")}))
    print(Path(args.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
