"""Every flag a Makefile target passes to a stage's CLI exists on that CLI (a renamed flag once broke make demo)."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "shards", "training", "featurestore", "analysis")


def _recipes() -> list[tuple[str, str, str]]:
    """(stage, verb, recipe text with continuation lines joined) for every `$(PY) -m <stage> <verb>` in the Makefile."""
    text = (TOP / "Makefile").read_text().replace("\\\n", " ")
    return [(m.group(1), m.group(2), m.group(3))
            for m in re.finditer(r"\$\(PY\) -m (\w+) (\w+)([^\n]*)", text) if m.group(1) in STAGES]


def _options(stage: str, verb: str) -> set[str]:
    parser = importlib.import_module(f"{stage}.__main__").build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {option for action in sub.choices[verb]._actions for option in action.option_strings}


def test_the_makefile_calls_every_stage():
    assert {stage for stage, _, _ in _recipes()} == set(STAGES)


@pytest.mark.parametrize("stage, verb, recipe", _recipes(), ids=lambda v: v if isinstance(v, str) and " " not in v
                         else None)
def test_every_flag_a_target_passes_exists(stage: str, verb: str, recipe: str):
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", recipe))
    assert flags - _options(stage, verb) == set(), f"python -m {stage} {verb} has no {flags - _options(stage, verb)}"
