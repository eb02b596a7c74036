"""`python -m morpheus_pl.chat DIR` (console script `morpheus-chat`): talk to a model bundle.

Each line you type is the partner's turn; the reply comes from MORPHEUS with its codes inferred
again from the whole history. Lines starting with `/` are commands (`HELP`). With a terminal
attached: a prompt, line editing and history (readline); from a pipe: one turn per line in, one
reply per line out, so that a dialogue can be scripted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from morpheus_pl.bundle import MorpheusModel, Reply
from morpheus_pl.data.persona import persona_segments
from morpheus_pl.errors import UserError
from morpheus_pl.generation import SYSTEMS

HELP = """\
commands:
  /why                  the codes behind the last reply: probability, usage and the three
                        nearest training persona sentences of each
  /persona <sentences>  reply from this persona (the true-persona path); sentences separated
                        by ' | ' or as in the dataset ('.')
  /persona off          back to MORPHEUS: codes inferred from the history
  /system <name>        morpheus | no_persona | true_persona | oracle_codes
  /reset                start a new dialogue (the persona and system stay)
  /save FILE            write the dialogue as a record of the paper's JSON
  /help                 this list
  /quit                 leave (as does end of input)"""
WHY_NEAREST = 3  # training persona sentences shown per code
COMMANDS = ("why", "persona", "system", "reset", "save", "help", "quit")


class EndOfChat(Exception):
    """/quit was typed."""


class ChatSession:
    """The dialogue (turns, oldest first), its persona and system, and the commands; what the
    terminal loop prints is what `handle` returns."""

    def __init__(self, model: MorpheusModel, system: str = "morpheus", greedy: bool = False) -> None:
        self.model = model
        self.system = system
        self.generation = {"do_sample": False} if greedy else {}
        self.persona: list[str] | None = None
        self.turns: list[str] = []
        self.last: Reply | None = None

    def handle(self, line: str) -> str | None:
        """A typed line: a command, or the partner's turn (answered); None for a blank line."""
        line = line.strip()
        if not line:
            return None
        if line.startswith("/"):
            name, _, argument = line[1:].partition(" ")
            if name not in COMMANDS:
                return f"unknown command /{name}: /help lists the commands"
            return getattr(self, f"_{name}")(argument.strip())
        return self.say(line)

    def say(self, turn: str) -> str:
        reply = self.model.respond([*self.turns, turn], self.persona, self.system, **self.generation)
        self.turns += [turn, reply.text]
        self.last = reply
        return reply.text

    def _why(self, _: str) -> str:
        if self.last is None:
            return "no reply yet: type a turn first"
        if not self.last.codes:
            return (f"the last reply came from the {self.last.system} system, which picks no codes "
                    f"(/persona off or /system morpheus for MORPHEUS's)")
        lines = [f"codes behind the last reply ({len(self.last.codes)} of "
                 f"{self.model.config['sizes']['N']}):"]
        for c in self.last.codes:
            lines.append(f"  code {c.code}: probability {c.probability:.3f}, usage {c.usage:.2f}")
            lines += [f"    ~ {sentence}" for sentence in c.nearest[:WHY_NEAREST]]
        return "\n".join(lines)

    def _persona(self, argument: str) -> str:
        if argument == "off":
            self.persona, self.system = None, "morpheus"
            return "persona off: MORPHEUS infers the codes from the history"
        sentences = [s.strip() for s in argument.split("|") if s.strip()]
        if not persona_segments(sentences, self.model.separator):
            return "usage: /persona <sentences> (separated by ' | ' or '.'), or /persona off"
        self.persona, self.system = sentences, "true_persona"
        segments = persona_segments(sentences, self.model.separator)
        return f"true-persona path with {len(segments)} persona sentence(s): " + " | ".join(segments)

    def _system(self, argument: str) -> str:
        if argument not in SYSTEMS:
            return f"usage: /system <name>, one of {' | '.join(SYSTEMS)} (now {self.system})"
        if argument in ("true_persona", "oracle_codes") and self.persona is None:
            return f"/system {argument} reads a persona: give one first with /persona <sentences>"
        self.system = argument
        return f"system: {argument}"

    def _reset(self, _: str) -> str:
        self.turns, self.last = [], None
        return "new dialogue"

    def _save(self, argument: str) -> str:
        if not argument:
            return "usage: /save FILE"
        if self.last is None:
            return "nothing to save yet: type a turn first"
        record = {"context": self.turns[:-1], "response": self.turns[-1]}
        if self.persona is not None:  # the paper's JSON needs one; predict's input does not
            record = {"persona": self.persona, **record}
        path = Path(argument).expanduser()
        try:
            path.write_text(json.dumps([record], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as err:
            return f"cannot write {path}: {err.strerror}"
        return f"saved to {path}"

    def _help(self, _: str) -> str:
        return HELP

    def _quit(self, _: str) -> str:
        raise EndOfChat


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="morpheus-chat", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model bundle folder (stage=export) or a hub repository id")
    parser.add_argument("--system", default="morpheus", choices=SYSTEMS)
    parser.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampling (default 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The chat loop; exit status 2 with `error: ...` when the bundle cannot be loaded."""
    args = _arguments(argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        import readline  # noqa: F401  (importing it gives input() line editing and history)
    try:
        model = MorpheusModel.from_pretrained(args.model, device=args.device)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    session = ChatSession(model, args.system, args.greedy)
    if interactive:
        print(f"MORPHEUS ({args.model}). Type the partner's turn; /help lists the commands.")
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        is_turn = not line.strip().startswith("/")
        try:
            out = session.handle(line)
        except EndOfChat:
            break
        except UserError as err:
            out = f"error: {err}"
        if out is not None:
            print(f"{session.system}> {out}" if interactive and is_turn else out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
