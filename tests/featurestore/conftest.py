"""Shared store fixtures: a small transfer collection ingested the way users do, then stored and embedded.

`transfer_set` (session) ingests four fixture trees in their corpora's real layouts into one data root:
ESC-50 (44.1 kHz, files rewritten to several lengths so that short files are padded and equal lengths
batch together; several shards), NSynth (pitch), VCTK (gender; shards in FLAC, so the FLAC reading path is used) through
`python -m ingest transfer`, and AVA-Speech (windows of long recordings) through the engine with the
adapter options the CLI has no flags for (audio cut to the annotated region: 900 s of the movie = 0 s
of the file). Tests never write to it: they take `copy_of(...)`.

`embedded_set` (session) is a copy with the items of every dataset and `byola-v2:random:tiny`
embeddings of the three file datasets (default stats: each dataset's train split), for SQL and kNN.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.__main__ import main as ingest_main
from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, speechlike, write_audio
from ingest.windows import write_windows
from tests.fixtures import ava_speech, esc50, nsynth, vctk

TINY = "byola-v2:random:tiny"
TINY_NAME = "byola-v2-random-tiny"
FILE_DATASETS = ("esc50", "nsynth", "vctk")
# ESC-50 file lengths (seconds, 44.1 kHz), in esc50.ROWS order: two under 1 s (padded), three equal
ESC50_SECONDS = (0.5, 1.25, 2.0, 1.25, 0.75, 1.25, 3.0)
ESC50_SHARD_SECONDS = 3.0  # several shards: embed runs one job per shard (and resumes by shard)
# AVA: 4 movies, the last test, the one before it valid, two train of which the first is "limited";
# 4 s of audio per movie holds 151 background + 51 speech windows of the fixture's annotation
VCTK_MALE = (2, 60)  # utterances of p226 added to the fixture tree: valid and train
AVA_OPTIONS = {"audio_offset": 900.0, "n_test": 1, "n_valid": 1, "n_limited": 1}
AVA_MOVIES = 4
AVA_SECONDS = 4.0
AVA_WINDOWS = {"background": 151, "speech": 51}


@dataclass(frozen=True)
class TransferSet:
    data: Path  # the data root (read-only: copy it before writing)
    sources: Path  # the fixture corpora


def copy_of(data: Path, target: Path) -> Path:
    """A writable copy of a data root."""
    shutil.copytree(data, target)
    return target


def build_sources(base: Path) -> dict[str, Path]:
    esc = esc50.build(base / "esc50")
    for seed, ((name, *_rest), seconds) in enumerate(zip(esc50.ROWS, ESC50_SECONDS)):
        write_audio(esc / "ESC-50-master" / "audio" / name, nonspeech(seconds, 44100, seed=seed), 44100,
                    subtype="PCM_16")
    ava = ava_speech.build(base / "ava", present=AVA_MOVIES, missing=1)
    for path in sorted(ava.rglob("*")):
        if path.suffix in (".wav", ".flac"):
            write_audio(path, speechlike(AVA_SECONDS, 16000, seed=len(path.name)), 16000)
    speakers = vctk.build(base / "vctk")
    for n in VCTK_MALE:  # p226 (M) is listed in the fixture's speaker-info.txt; give him audio too
        write_audio(speakers / "VCTK-Corpus-0.92" / "wav48_silence_trimmed" / "p226" / f"p226_{n:03d}_mic1.flac",
                    speechlike(0.6, 48000, seed=100 + n), 48000)
    return {"esc50": esc, "nsynth": nsynth.build(base / "nsynth"), "vctk": speakers, "ava": ava}


def ingest_transfer(sources: dict[str, Path], data: Path) -> None:
    rc = ingest_main(["transfer", "--dataset", f"esc50=esc50:{sources['esc50']}", "--data", str(data),
                      "--workers", "0", "--shard-seconds", str(ESC50_SHARD_SECONDS)])
    assert rc == 0
    rc = ingest_main(["transfer", "--dataset", f"nsynth=nsynth:{sources['nsynth']}", "--data", str(data),
                      "--workers", "0"])
    assert rc == 0
    rc = ingest_main(["transfer", "--dataset", f"vctk=vctk:{sources['vctk']}", "--data", str(data),
                      "--workers", "0", "--codec", "flac"])
    assert rc == 0
    source = Source("ava", "ava_speech", str(sources["ava"]), options=AVA_OPTIONS)
    cfg = IngestConfig(data=str(data), collection="ava", workers=0)
    summary = build_collection([source], cfg, purpose="transfer")
    assert summary.quarantined == 0
    assert write_windows(source, cfg) == AVA_MOVIES * sum(AVA_WINDOWS.values())


@pytest.fixture(scope="session")
def transfer_set(tmp_path_factory) -> TransferSet:
    base = tmp_path_factory.mktemp("transfer")
    sources = build_sources(base / "src")
    ingest_transfer(sources, base / "data")
    return TransferSet(base / "data", base / "src")


@pytest.fixture(scope="session")
def embedded_set(transfer_set, tmp_path_factory) -> Path:
    from featurestore.config import EmbedConfig
    from featurestore.embed import embed
    from featurestore.items import datasets, write_items
    from shards.storage import Root

    data = copy_of(transfer_set.data, tmp_path_factory.mktemp("embedded") / "data")
    for dataset in datasets(Root(data)):
        write_items(Root(data), dataset)
    embed(EmbedConfig(data=str(data), models=(TINY,), datasets=FILE_DATASETS, device="cpu"))
    return data
