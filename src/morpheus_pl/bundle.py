"""A trained MORPHEUS model outside the framework, without Hydra or `artifacts/`:

    model = MorpheusModel.from_pretrained("outputs/.../model")   # or a hub repository id
    reply = model.respond(["hi , what do you do for a living ?"])
    reply.text, reply.codes   # codes: probability, usage, nearest training persona sentences

Built from the framework's own pieces (the joint stage module, the data module's `encode` and
`collate`, `generation.generate_batch`), so a greedy reply is token for token the one the
framework's evaluation generates for the same example. The bundle's files: bundle_files.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from morpheus_pl.bundle_files import ATLAS, ENCODER_TOKENIZER, WEIGHTS, load_weights, read_config
from morpheus_pl.data.datamodule import PersonaDialogDataModule
from morpheus_pl.data.example import DataFormatError, DialogExample
from morpheus_pl.data.prediction_input import NO_PERSONA
from morpheus_pl.errors import ConfigError, MissingModelError
from morpheus_pl.generation import SYSTEMS, GenerationConfig, generate_batch
from morpheus_pl.modules.decoder import load_tokenizer
from morpheus_pl.stages.joint import JointTrainingStage

PERSONA_SYSTEMS = ("true_persona", "oracle_codes")  # the systems that read the given persona
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class PickedCode:
    """A code MORPHEUS picked: its probability under the code predictor's slot-averaged
    distribution, its usage in joint training (EMA of its share; uniform use = 1), and the
    training persona sentences nearest to it (the bundle's atlas; empty without one)."""

    code: int
    probability: float
    usage: float
    nearest: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A generated reply; `codes` are MORPHEUS's picked codes (empty for the other systems)."""

    text: str
    system: str
    codes: tuple[PickedCode, ...] = ()


def bundle_folder(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local bundle folder, or a hub repository id (`owner/name`) downloaded through
    `huggingface_hub.snapshot_download`."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or not _HUB_ID.fullmatch(str(name_or_path)):
        raise MissingModelError(f"{name_or_path}: no such model bundle folder (expected a folder "
                                f"written by stage=export, or a hub repository id owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(name_or_path), revision=revision))
    except Exception as err:  # offline, unknown repository, no permission: all end here
        raise MissingModelError(f"{name_or_path}: no local folder of that name, and the hub "
                                f"download failed: {type(err).__name__}: {err}") from err


class MorpheusModel:
    """A joint-stage module with its tokenizer, data settings, generation defaults and codebook
    atlas (`atlas`: the atlas.json of atlas_files.py, or {})."""

    def __init__(self, stage: JointTrainingStage, config: dict, segment_tokenizer=None,
                 atlas: dict | None = None) -> None:
        self.stage = stage.eval()
        self.config = config
        self.data = PersonaDialogDataModule(dataset=config["dataset"], **config["data"])
        self.data.set_tokenizers(stage.tokenizer, segment_tokenizer)
        self.generation = GenerationConfig(**config["generation"])
        self.decode = config["decode"]
        self.atlas = atlas or {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, revision: str | None = None,
                        device: str | torch.device = "cpu") -> MorpheusModel:
        """Load a bundle written by `stage=export` (JSON and safetensors: no pickle)."""
        folder = bundle_folder(name_or_path, revision)
        config = read_config(folder)
        arguments = config["stage_arguments"]
        stage = JointTrainingStage(tokenizer_dir=str(folder), **arguments)
        if arguments["model"].get("dtype"):  # a decoder rebuilt from its config starts in float32
            stage.decoder.to(getattr(torch, arguments["model"]["dtype"]))
        load_weights(stage, folder / WEIGHTS)
        encoder_tokenizer = folder / ENCODER_TOKENIZER
        segment_tokenizer = load_tokenizer(encoder_tokenizer) if encoder_tokenizer.is_dir() else None
        atlas = folder / ATLAS
        atlas = json.loads(atlas.read_text(encoding="utf-8")) if atlas.is_file() else None
        return cls(stage.to(device), config, segment_tokenizer, atlas)

    @property
    def separator(self) -> str:
        """The dataset's persona sentence separator ('.' or '。')."""
        return self.config["dataset"]["separator"]

    def respond(self, history: Sequence[str], persona: Sequence[str] | None = None,
                system: str = "morpheus", decode: str | None = None, seed: int | None = None,
                **generation) -> Reply:
        """The reply to `history` (turns, oldest first, the last one the partner's).

        system: morpheus (codes inferred from the history), true_persona (the given persona's
        vectors as the prefix), oracle_codes (the codes nearest to the given persona),
        no_persona (this model's decoder without a prefix). decode: how MORPHEUS picks its
        codes (covering, top_m_distinct, argmax, sample, ...; default the training's). seed: seeds torch
        first, as the evaluation does. Keywords override the generation defaults
        (`do_sample=False` is greedy).
        """
        return self.respond_batch([history], [persona], system, decode, seed, **generation)[0]

    def respond_batch(self, histories: Sequence[Sequence[str]],
                      personas: Sequence[Sequence[str] | None] | None = None,
                      system: str = "morpheus", decode: str | None = None,
                      seed: int | None = None, **generation) -> list[Reply]:
        """`respond` for several histories in one batch."""
        personas = list(personas) if personas is not None else [None] * len(histories)
        if len(personas) != len(histories):
            raise ConfigError(f"respond_batch: {len(histories)} histories but {len(personas)} "
                              f"personas (give one per history, None where there is none)")
        examples = [example(h, p, f"history {i}") for i, (h, p) in enumerate(zip(histories, personas))]
        return self.generate(examples, [p is not None for p in personas], system, decode, seed,
                             **generation)

    def generate(self, examples: Sequence[DialogExample], has_persona: Sequence[bool],
                 system: str = "morpheus", decode: str | None = None, seed: int | None = None,
                 **generation) -> list[Reply]:
        """Replies to `examples` in one batch; `has_persona[i]` says whether example i's
        persona was given (the persona systems need it)."""
        if system not in SYSTEMS:
            raise ConfigError(f"system must be one of {SYSTEMS}, got {system!r}")
        lacking = [ex.source for ex, given in zip(examples, has_persona) if not given]
        if system in PERSONA_SYSTEMS and lacking:
            raise DataFormatError(f"system {system} needs a persona: none given for {lacking[0]}")
        unknown = sorted(set(generation) - {f.name for f in fields(GenerationConfig)})
        if unknown:
            raise ConfigError(f"unknown generation setting(s) {unknown}: expected some of "
                              f"{[f.name for f in fields(GenerationConfig)]}")
        if not examples:
            return []
        config = replace(self.generation, **generation)
        batch = self.data.collate([self.data.encode(ex) for ex in examples])
        batch = self.stage.transfer_batch_to_device(batch, self.stage.device, 0)
        if seed is not None:
            torch.manual_seed(seed)
        texts, codes = generate_batch(self.stage, batch, system, config, decode or self.decode)
        if codes is None:
            return [Reply(text, system) for text in texts]
        with torch.no_grad():
            probs = self.stage.code_logits(batch).float().softmax(-1).mean(1)
        usage = self.stage.codebook.usage
        nearest = {e["code"]: tuple(e["nearest"]) for e in self.atlas.get("codes", [])}
        return [Reply(text, system, tuple(PickedCode(k, float(probs[i, k]), float(usage[k]),
                                                     nearest.get(k, ()))
                                          for k in codes[i].tolist()))
                for i, text in enumerate(texts)]


def example(history: Sequence[str], persona: Sequence[str] | str | None, source: str) -> DialogExample:
    """A `DialogExample` to generate a reply for (no response; a placeholder persona if none)."""
    if isinstance(history, str) or not all(isinstance(turn, str) for turn in history):
        raise DataFormatError(f"{source}: expected the history as a list of strings (turns)")
    if not history:
        raise DataFormatError(f"{source}: empty history: expected at least the partner's turn")
    persona = NO_PERSONA if persona is None else (persona,) if isinstance(persona, str) else tuple(persona)
    return DialogExample(persona, tuple(history), "", "", source)
