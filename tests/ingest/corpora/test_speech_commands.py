import logging

import pytest

from ingest.corpora import get
from ingest.corpora.speech_commands import WORDS
from tests.fixtures import speech_commands as fixture


def test_speech_commands_splits_follow_the_official_lists(tmp_path):
    fixture.build(tmp_path)
    records = list(get("speech_commands").recordings(tmp_path))
    assert [(r.path, r.split, r.label, r.speaker) for r in records] == [
        ("backward/2c6d3924_nohash_0.wav", "train", "backward", "2c6d3924"),
        ("no/0a196374_nohash_0.wav", "test", "no", "0a196374"),
        ("yes/0a196374_nohash_0.wav", "test", "yes", "0a196374"),
        ("yes/0a196374_nohash_1.wav", "train", "yes", "0a196374"),
        ("yes/1b4c9b89_nohash_0.wav", "valid", "yes", "1b4c9b89"),
        ("zero/c1d39ce8_nohash_4.wav", "train", "zero", "c1d39ce8"),
    ]
    assert records[-1].extra == {"utterance": 4}
    assert {r.domain for r in records} == {"speech"}
    assert {r.label for r in records} <= set(WORDS) and len(WORDS) == 35


def test_background_noise_is_excluded(tmp_path):
    fixture.build(tmp_path)
    assert not any("_background_noise_" in r.path for r in get("speech_commands").recordings(tmp_path))


def test_flat_tarball_layout_gives_the_same_records(tmp_path):
    fixture.build(tmp_path)
    corpus = get("speech_commands")
    nested = list(corpus.recordings(tmp_path))
    assert nested == list(corpus.recordings(tmp_path / fixture.INNER))
    assert all((corpus.base_dir(tmp_path) / r.path).is_file() for r in nested)


def test_listed_files_that_are_missing_are_reported(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING):
        list(get("speech_commands").recordings(tmp_path))
    assert "1 file(s) named by the validation/testing lists are missing" in caplog.text


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="speech_commands: expected .*validation_list.txt"):
        list(get("speech_commands").recordings(tmp_path))
