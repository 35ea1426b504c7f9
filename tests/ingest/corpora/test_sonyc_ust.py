import logging
import shutil

import pytest

from ingest.corpora import get
from tests.fixtures import sonyc_ust as fixture


def test_sonyc_lists_each_training_recording_once(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.sonyc_ust"):
        records = list(get("sonyc_ust").recordings(tmp_path))
    # 5 annotator rows for 00_000066 and 3 for 01_000006 give one record each; validate/test dropped;
    # 02_000123 has no audio; audio/99_999999.wav is in no row.
    assert [r.path for r in records] == ["audio/00_000066.wav", "audio/01_000006.wav"]
    assert [r.extra for r in records] == [{"sensor_id": "0"}, {"sensor_id": "1"}]
    assert {r.label for r in records} == {None} and {r.split for r in records} == {"train"}
    assert {r.domain for r in records} == {"nonspeech"}
    assert "1 training recording(s)" in caplog.text and "02_000123.wav" in caplog.text
    assert get("sonyc_ust").cut is False


def test_audio_left_in_per_archive_folders_is_found(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "audio-3").mkdir()
    shutil.move(tmp_path / "audio" / "01_000006.wav", tmp_path / "audio-3" / "01_000006.wav")
    records = list(get("sonyc_ust").recordings(tmp_path))
    assert [r.path for r in records] == ["audio/00_000066.wav", "audio-3/01_000006.wav"]


def test_missing_annotations_is_one_clear_error(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "annotations.csv").unlink()
    with pytest.raises(FileNotFoundError, match="sonyc_ust: expected .*annotations.csv"):
        list(get("sonyc_ust").recordings(tmp_path))


def test_missing_audio_folder_is_one_clear_error(tmp_path):
    fixture.build(tmp_path)
    shutil.rmtree(tmp_path / "audio")
    with pytest.raises(FileNotFoundError, match="sonyc_ust: expected .*audio"):
        list(get("sonyc_ust").recordings(tmp_path))
