"""`python -m morpheus_pl.chat` with a tiny trained bundle, used as a person would: through a
pseudo-terminal (prompt, replies, /why, /persona, /save, readline's history) and through a
pipe (one reply per line, the same as `respond` on the whole history); the commands directly."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest
import torch

from morpheus_pl.bundle import MorpheusModel
from morpheus_pl.chat import HELP, ChatSession
from morpheus_pl.data.formats import read_paper_json
from morpheus_pl.data.prediction_input import read_prediction_inputs

from conftest import REPO_ROOT

UP = "\x1b[A"  # the up-arrow key


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return MorpheusModel.from_pretrained(tiny_bundle)


def _chat(bundle, *options: str) -> list[str]:
    return [sys.executable, "-m", "morpheus_pl.chat", str(bundle), *options]


class Terminal:
    """A chat process on a pseudo-terminal: `type` a line, `read_until` some output."""

    def __init__(self, command: list[str]) -> None:
        self.fd, child = pty.openpty()
        self.proc = subprocess.Popen(command, stdin=child, stdout=child, stderr=child,
                                     cwd=REPO_ROOT, env={**os.environ, "TERM": "dumb"})
        os.close(child)
        self.seen = ""

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\r").encode())

    def read_until(self, text: str, timeout: float = 120) -> str:
        """Output up to and including the next `text` (everything since the last call)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            ready, _, _ = select.select([self.fd], [], [], max(deadline - time.monotonic(), 0))
            assert ready, f"no {text!r} within {timeout} s; output: {self.seen!r}"
            try:
                self.seen += os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                break
        before, _, self.seen = self.seen.partition(text)
        return before + text

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.fd)
        return code


def test_a_person_at_a_terminal(tiny_bundle, tmp_path):
    term = Terminal(_chat(tiny_bundle, "--seed", "1"))
    try:
        term.read_until("/help lists the commands")
        term.read_until("you> ")
        term.type("hi , what do you do for a living ?")
        assert "morpheus> " in term.read_until("you> ")
        term.type("/why")
        why = term.read_until("you> ")
        assert "codes behind the last reply (5 of 8):" in why and why.count("probability") == 5
        assert why.count("    ~ ") == 15  # three nearest training persona sentences per code
        term.type(UP)  # readline recalls /why
        assert term.read_until("you> ").count("probability") == 5
        term.type("/persona i like dogs | i work as a nurse.")
        assert "true-persona path with 2 persona sentence(s)" in term.read_until("you> ")
        term.type("do you have pets ?")
        assert "true_persona> " in term.read_until("you> ")
        term.type("/why")
        assert "true_persona system, which picks no codes" in term.read_until("you> ")
        term.type(f"/save {tmp_path / 'dialogue.json'}")
        assert f"saved to {tmp_path / 'dialogue.json'}" in term.read_until("you> ")
        term.type("/quit")
    finally:
        code = term.close()
    assert code == 0
    (record,) = read_paper_json(tmp_path / "dialogue.json")
    assert record.persona == ("i like dogs", "i work as a nurse.")
    assert record.context[0] == "hi , what do you do for a living ?"
    assert record.context[-1] == "do you have pets ?" and len(record.context) == 3


def test_a_script_through_a_pipe(tiny_bundle, model, tmp_path):
    turns = ["hi , how are you ?", "what do you like to do ?"]
    script = "\n".join([*turns, "/why", f"/save {tmp_path / 'd.json'}"]) + "\n"
    # sampled (seeded once at the start, as the chat does): a 6-step model's greedy replies can
    # be all special tokens, decoded empty, and an empty reply is no record to save
    done = subprocess.run(_chat(tiny_bundle, "--seed", "5"), input=script, capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    torch.manual_seed(5)
    first = model.respond(turns[:1])
    second = model.respond([turns[0], first.text, turns[1]])
    assert first.text and second.text
    assert lines[:2] == [first.text, second.text]  # codes inferred again from the whole history
    assert lines[2] == "codes behind the last reply (5 of 8):"
    why = [f"  code {c.code}: probability {c.probability:.3f}, usage {c.usage:.2f}" for c in second.codes]
    assert [line for line in lines[3:23] if line.startswith("  code")] == why
    assert [line[6:] for line in lines[4:7]] == list(second.codes[0].nearest[:3])  # the atlas's
    assert lines[23] == f"saved to {tmp_path / 'd.json'}"
    (saved,) = read_prediction_inputs(tmp_path / "d.json")  # no persona: predict's input
    assert saved.example.context == (turns[0], first.text, turns[1]) and not saved.has_persona
    assert saved.example.response == second.text


def test_a_bundle_that_is_not_there_is_one_error_line(tmp_path):
    done = subprocess.run(_chat(tmp_path / "none"), input="", capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'none'}: no such")


def test_the_commands(model, tmp_path):
    chat = ChatSession(model, greedy=True)
    assert chat.handle("   ") is None
    assert chat.handle("/why") == "no reply yet: type a turn first"
    assert chat.handle(f"/save {tmp_path / 'x.json'}") == "nothing to save yet: type a turn first"
    assert chat.handle("/system true_persona").startswith("/system true_persona reads a persona")
    assert chat.handle("/system nonsense").startswith("usage: /system <name>")
    assert chat.handle("/persona ...").startswith("usage: /persona")
    assert chat.handle("/frobnicate") == "unknown command /frobnicate: /help lists the commands"
    assert chat.handle("/help") == HELP
    reply = chat.handle("hello")
    assert chat.turns == ["hello", reply] and chat.last.codes
    assert chat.handle("/persona i am tall. i sing").endswith("i am tall | i sing")
    assert chat.system == "true_persona" and chat.persona == ["i am tall. i sing"]
    assert chat.handle("/system oracle_codes") == "system: oracle_codes"
    chat.handle("do you sing ?")
    assert chat.last.system == "oracle_codes" and len(chat.turns) == 4
    assert chat.handle("/persona off").startswith("persona off")
    assert (chat.system, chat.persona) == ("morpheus", None)
    assert chat.handle("/reset") == "new dialogue" and chat.turns == [] and chat.last is None
    assert chat.handle(f"/save {tmp_path / 'no' / 'dir.json'}") == "nothing to save yet: type a turn first"
    chat.handle("hi")
    assert chat.handle(f"/save {tmp_path / 'no' / 'dir.json'}").startswith("cannot write")
