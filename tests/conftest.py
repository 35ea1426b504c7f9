"""Shared test helpers: a small mixed source tree (speech + cut non-speech) built from synthesized audio."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import IngestConfig, Source
from ingest.synth import nonspeech, write_audio
from tests.fixtures import librispeech


def build_mixed(root: Path) -> list[Source]:
    """LibriSpeech fixture (3 utterances, not cut: Table I) + a folder corpus of long 44.1 kHz stereo WAVs
    (cut into 10-s clips, as every folder corpus is by default)."""
    librispeech.build(root / "ls")
    for i, seconds in enumerate((23.5, 12.0, 4.0)):
        write_audio(root / "noise" / f"n{i}.wav", nonspeech(seconds, 44100, seed=i), 44100, channels=2)
    return [Source("librispeech", "librispeech", str(root / "ls")),
            Source("noise", "folder", str(root / "noise"), domain="nonspeech")]


@pytest.fixture
def mixed_sources(tmp_path: Path) -> list[Source]:
    return build_mixed(tmp_path / "src")


def small_config(data: Path | str, **overrides) -> IngestConfig:
    """Default cutting (folder corpora into 10-s clips), in-process, 25 s of audio per shard."""
    values = {"data": str(data), "workers": 0, "shard_seconds": 25.0}
    values.update(overrides)
    return IngestConfig(**values)


def build_small_collection(base: Path) -> Path:
    """The mixed sources cut into 2-s clips, several shards of 8 s, with the `all` diet: a collection that
    readers and loaders can be tested on. Returns the data root."""
    from ingest.engine import build_collection
    from shards.diets import write_diet

    data = base / "data"
    build_collection(build_mixed(base / "src"), small_config(data, clip_seconds=2.0, shard_seconds=8.0))
    write_diet(str(data), "all")
    return data
