"""A run killed at any point and re-run yields byte-identical shards: none lost, none duplicated."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.config import Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, write_audio
from shards.catalog import read_catalog
from shards.storage import Root
from shards.verify import verify
from tests.conftest import small_config

FILES = 24


def _corpus(folder: Path) -> Source:
    for i in range(FILES):
        write_audio(folder / f"f{i:02d}.wav", nonspeech(10.0, 44100, seed=i), 44100, channels=2)
    return Source("noise", "folder", str(folder), domain="nonspeech")


def _outputs(data: Path) -> dict[str, bytes]:
    keep = (".tar", ".idx", ".parquet", ".json")
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file() and p.suffix in keep}


def _kill_when(data: Path, source: Source, ready) -> None:
    cmd = [sys.executable, "-m", "ingest", "shards", "--corpus", f"noise=folder:{source.root}", "--domain",
           "nonspeech", "--data", str(data), "--workers", "1", "--shard-seconds", "20"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not ready(data) and time.monotonic() < deadline:
        time.sleep(0.002)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job: driver and pool workers, as an OOM kill would
    proc.wait()


def _parts(data: Path) -> int:
    return len(list((data / "catalog" / "pretrain" / "clips").glob("shard-*.parquet")))


KILL_POINTS = {
    "after-plan": lambda d: (d / "catalog" / "pretrain" / "plan.parquet").exists(),
    "mid-first-tar": lambda d: any((d / "shards" / "pretrain").glob(".tmp-*")),
    "after-3-shards": lambda d: _parts(d) >= 3,
    "after-9-shards": lambda d: _parts(d) >= 9,
}


@pytest.mark.slow
def test_killed_runs_resume_to_byte_identical_shards(tmp_path):
    source = _corpus(tmp_path / "src")
    reference = tmp_path / "reference"
    build_collection([source], small_config(reference, shard_seconds=20.0, collection="pretrain"))
    expected = _outputs(reference)
    assert sum(1 for k in expected if k.endswith(".tar")) == 12
    for name, ready in KILL_POINTS.items():
        data = tmp_path / name
        _kill_when(data, source, ready)
        # killed means incomplete: a reader trusts nothing until the completion record exists
        assert not (data / "shards" / "pretrain" / "_COMPLETE.json").exists(), name
        summary = build_collection([source], small_config(data, shard_seconds=20.0, collection="pretrain"))
        got = _outputs(data)
        assert got.keys() == expected.keys(), name
        assert [k for k in got if got[k] != expected[k]] == [], name
        assert not list(data.rglob(".tmp-*")), name
        keys = read_catalog(Root(data), "pretrain").column("key").to_pylist()
        assert len(keys) == len(set(keys)) == FILES, name
        assert summary.corpora["noise"]["clips"] == FILES
        assert verify(str(data)).ok, name
