"""FSD superset: duplicates removed by Freesound id where known, else by a hash of the decoded audio."""

import shutil

import pyarrow.parquet as pq

from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from shards.catalog import read_catalog
from shards.storage import Root
from tests.fixtures import fsd


def test_fsd_duplicates_are_dropped_by_id_then_by_audio_hash(tmp_path):
    root = fsd.build(tmp_path / "src", variant="kaggle")
    # an anonymised Kaggle clip that is really FSD50K's 16399, re-saved under another name
    shutil.copy(root / "FSD50K" / "FSD50K.dev_audio" / "16399.wav", root / "train_noisy" / "00097e21.wav")
    data = tmp_path / "d"
    summary = build_collection([Source("fsd", "fsd", str(root))], IngestConfig(data=str(data), workers=0))
    dups = pq.read_table(data / "catalog" / "pretrain" / "duplicates.parquet").to_pylist()
    reasons = {d["path"]: (d["duplicate_of"], d["reason"]) for d in dups}
    assert reasons == {
        "FSDnoisy18k.audio_train/64760.wav": ("fsd:FSD50K/FSD50K.dev_audio/64760.wav", "same id freesound:64760"),
        "train_noisy/00097e21.wav": ("fsd:FSD50K/FSD50K.dev_audio/16399.wav", "same decoded audio"),
    }
    kept = {r["source"] for r in read_catalog(Root(data), "pretrain").to_pylist()}
    assert "FSD50K/FSD50K.dev_audio/64760.wav" in kept and "train_noisy/00097e21.wav" not in kept
    assert summary.duplicates == 2 and summary.corpora["fsd"]["duplicates"] == 2


def test_a_quarantined_first_copy_does_not_remove_the_healthy_duplicate(tmp_path):
    root = fsd.build(tmp_path / "src", variant="kaggle")
    first = root / "FSD50K" / "FSD50K.dev_audio" / "64760.wav"
    first.write_bytes(first.read_bytes()[:200])  # truncated FSD50K copy of Freesound 64760
    data = tmp_path / "d"
    build_collection([Source("fsd", "fsd", str(root))], IngestConfig(data=str(data), workers=0))
    kept = {r["source"] for r in read_catalog(Root(data), "pretrain").to_pylist()}
    assert "FSDnoisy18k.audio_train/64760.wav" in kept
