"""House rules that keep the code base easy to read: one concept per module, no ../shared."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "morpheus_pl"


def test_modules_stay_short() -> None:
    long = {p.name: n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines: {long}"


def test_package_never_reads_shared() -> None:
    offenders = [p.name for p in SRC.rglob("*.py") if "../shared" in p.read_text()]
    assert not offenders
