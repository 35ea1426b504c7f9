"""`python -m ingest transfer`: one collection per labelled dataset, never cut, labels and splits kept."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.__main__ import main as ingest_main
from ingest.config import IngestConfig, Source
from ingest.corpora import PRETRAIN
from ingest.engine import build_collection
from ingest.windows import write_windows
from ingest.sources import DEFAULT_CONFIG, load_config
from ingest.synth import speechlike, write_audio
from shards.catalog import read_catalog, read_quarantine
from shards.storage import Root
from shards.verify import verify
from tests.fixtures import ava_speech, esc50


def test_esc50_transfer_keeps_one_sample_per_file_with_label_and_split(tmp_path):
    esc50.build(tmp_path / "src")
    rc = ingest_main(["transfer", "--dataset", f"esc50=esc50:{tmp_path / 'src'}", "--data", str(tmp_path / "d"),
                      "--workers", "0"])
    assert rc == 0
    rows = read_catalog(Root(tmp_path / "d"), "esc50").to_pylist()
    from ingest.corpora import get
    expected = {r.path: (r.split, r.label) for r in get("esc50").recordings(tmp_path / "src")}
    assert {r["source"]: (r["split"], r["label"]) for r in rows} == expected
    assert all(r["start"] == 0.0 for r in rows)
    assert verify(str(tmp_path / "d")).ok


def test_ava_windows_point_into_whole_movie_samples(tmp_path):
    src = ava_speech.build(tmp_path / "src")
    for path in sorted(src.rglob("*")):  # audio cut to the annotated region: 900 s in the movie = 0 s here
        if path.suffix in (".wav", ".flac"):
            write_audio(path, speechlike(8.0, 16000, seed=len(path.name)), 16000)
    source = Source("ava", "ava_speech", str(src), options={"audio_offset": 900.0})
    cfg = IngestConfig(data=str(tmp_path / "d"), collection="ava", workers=0)
    summary = build_collection([source], cfg, purpose="transfer")  # every split (pre-training takes train only)
    assert summary.quarantined == 0 and summary.corpora["ava"]["clips"] == 24
    assert write_windows(source, cfg) > 0
    samples = {r["key"]: r for r in read_catalog(Root(tmp_path / "d"), "ava").to_pylist()}
    windows = pq.read_table(tmp_path / "d" / "catalog" / "ava" / "windows.parquet").to_pylist()
    assert {w["key"] for w in windows} == set(samples)
    for w in windows:
        sample = samples[w["key"]]
        assert 0 <= w["offset"] and w["offset"] + 1.0 <= sample["seconds"] + 1e-6
        assert sample["split"] == w["split"] and w["end"] - w["start"] == pytest.approx(1.0)


def test_default_config_documents_all_twelve_corpora():
    text = DEFAULT_CONFIG.read_text()
    assert all(f"[corpora.{name}]" in text for name in PRETRAIN)
    settings, sources = load_config(DEFAULT_CONFIG)
    assert settings["collection"] == "pretrain" and sources == []  # all disabled until the user sets roots
    assert isinstance(DEFAULT_CONFIG, Path)


def test_ava_audio_shorter_than_its_annotations_is_quarantined_with_the_reason(tmp_path):
    src = ava_speech.build(tmp_path / "src")  # 0.2-s files, but annotations start 900 s into each movie
    source = Source("ava", "ava_speech", str(src))
    cfg = IngestConfig(data=str(tmp_path / "d"), collection="ava", workers=0)
    summary = build_collection([source], cfg, purpose="transfer")
    assert summary.quarantined == 24 and summary.corpora["ava"]["clips"] == 0
    reasons = {r["reason"] for r in read_quarantine(Root(tmp_path / "d"), "ava").to_pylist()}
    assert len(reasons) == 1 and reasons.pop().startswith("region starts at 900.00s but the file lasts 0.20s")
    assert write_windows(source, cfg) == 0  # no window points at audio that was not written
