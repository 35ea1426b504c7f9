import pytest

from ingest.corpora import get
from tests.fixtures import freefield1010 as fixture


def test_freefield1010_lists_every_clip_with_its_hasbird_flag(tmp_path):
    fixture.build(tmp_path)
    records = list(get("freefield1010").recordings(tmp_path))
    assert [r.path for r in records] == ["wav/100.wav", "wav/2525.wav", "wav/64486.wav"]
    assert [r.label for r in records] == [None, "1", "0"]  # 100 has no CSV row; 44981 has no file
    assert [r.extra["itemid"] for r in records] == ["100", "2525", "64486"]
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"nonspeech"}
    assert {r.speaker for r in records} == {None} and {r.dedup_key for r in records} == {None}
    assert get("freefield1010").cut is False


def test_root_may_be_the_ff1010bird_wav_folder_itself(tmp_path):
    fixture.build(tmp_path)
    a = list(get("freefield1010").recordings(tmp_path))
    b = list(get("freefield1010").recordings(tmp_path / "ff1010bird_wav"))
    assert a == b


def test_2018_metadata_inside_the_folder_is_read_too(tmp_path):
    fixture.build(tmp_path, metadata="inside")
    records = list(get("freefield1010").recordings(tmp_path))
    assert [(r.path, r.label) for r in records] == [
        ("wav/100.wav", None), ("wav/2525.wav", "0"), ("wav/64486.wav", "1")]


def test_missing_metadata_is_one_clear_error(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "ff1010bird_metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match="freefield1010: expected .*ff1010bird_metadata.csv"):
        list(get("freefield1010").recordings(tmp_path))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="freefield1010: expected .*wav"):
        list(get("freefield1010").recordings(tmp_path))
