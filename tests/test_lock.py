"""The install is reproducible: uv.lock agrees with pyproject.toml, pins every package exactly, and the
uv that bootstraps it (Makefile UV_VERSION) is the locked one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((TOP / "uv.lock").read_text())
    return {p["name"]: p.get("version", "") for p in lock["package"]}


def _check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(UV), "lock", "--check", "--offline"], cwd=folder, capture_output=True, text=True)


@pytest.mark.skipif(not UV.exists(), reason="uv is installed into the venv by `make venv`")
def test_lock_agrees_with_pyproject():
    result = _check(TOP)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not UV.exists(), reason="uv is installed into the venv by `make venv`")
def test_lock_check_fails_when_pyproject_changes(tmp_path: Path):
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(TOP / name, tmp_path / name)
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"rich==15.0.*"', '"rich==14.*"'))
    assert _check(tmp_path).returncode != 0


def test_every_package_has_an_exact_version_and_torch_pairs_match():
    versions = _locked_versions()
    unversioned = [name for name, v in versions.items() if not v and name != "audiodiet"]
    assert unversioned == []
    # torchaudio's compiled library loads only against the torch release it was built with
    assert versions["torch"] == versions["torchaudio"] == "2.11.0"


def test_makefile_bootstraps_the_locked_uv():
    match = re.search(r"^UV_VERSION := (\S+)$", (TOP / "Makefile").read_text(), re.M)
    assert match and match.group(1) == _locked_versions()["uv"]
