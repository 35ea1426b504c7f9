import pytest

from ingest.corpora import get
from tests.fixtures import nsynth as fixture


def test_nsynth_uses_the_official_partitions_and_family_labels(tmp_path):
    fixture.build(tmp_path)
    records = list(get("nsynth").recordings(tmp_path))
    assert [(r.path, r.split, r.label) for r in records] == [
        ("nsynth-train/audio/bass_synthetic_033-022-050.wav", "train", "bass"),
        ("nsynth-train/audio/guitar_acoustic_001-060-127.wav", "train", "guitar"),
        ("nsynth-train/audio/vocal_synthetic_003-072-075.wav", "train", "vocal"),
        ("nsynth-valid/audio/keyboard_electronic_012-040-025.wav", "valid", "keyboard"),
        ("nsynth-test/audio/brass_acoustic_046-064-100.wav", "test", "brass"),
        ("nsynth-test/audio/reed_acoustic_023-057-127.wav", "test", "reed"),
    ]
    assert records[0].extra == {"pitch": 22, "velocity": 50, "instrument_source_str": "synthetic",
                                "instrument_str": "bass_synthetic_033", "qualities_str": ["dark"]}
    assert {r.subset for r in records} == {"nsynth-train", "nsynth-valid", "nsynth-test"}
    assert all((tmp_path / r.path).is_file() for r in records)
    assert "nsynth-train/audio/organ_electronic_007-030-025.wav" not in {r.path for r in records}


def test_splits_option_selects_partitions(tmp_path):
    fixture.build(tmp_path)
    records = list(get("nsynth").recordings(tmp_path, {"splits": ["test"]}))
    assert {r.split for r in records} == {"test"} and len(records) == 2
    with pytest.raises(ValueError, match="unknown split"):
        list(get("nsynth").recordings(tmp_path, {"splits": ["validation"]}))


def test_a_missing_partition_is_an_error_not_an_empty_split(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "nsynth-valid" / "examples.json").unlink()
    with pytest.raises(FileNotFoundError, match="nsynth: expected .*nsynth-valid"):
        list(get("nsynth").recordings(tmp_path))
