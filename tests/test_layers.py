"""Imports follow the data's one direction (DESIGN.md): shards <- ingest, training <- featurestore <- analysis."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
OURS = ("shards", "ingest", "training", "featurestore", "analysis")
ALLOWED = {
    "shards": set(),
    "ingest": {"shards"},
    "training": {"shards"},
    "featurestore": {"shards", "training"},
    # the analysis reads the store only; shards.errors is the one CLI error reporter every stage's CLI uses
    "analysis": {"featurestore", "shards.errors"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in OURS}


@pytest.mark.parametrize("package", OURS)
def test_a_package_imports_only_the_layers_below_it(package: str):
    allowed = ALLOWED[package] | {package}
    wrong = {}
    for path in sorted((TOP / package).rglob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] not in allowed and n not in allowed}
        if bad:
            wrong[str(path.relative_to(TOP))] = sorted(bad)
    assert wrong == {}
