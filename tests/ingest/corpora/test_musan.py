import pytest

from ingest.corpora import get
from tests.fixtures import musan as fixture

ALL = [
    ("music/fma/music-fma-0000.wav", "music", "fma"),
    ("music/fma/music-fma-0001.wav", "music", "fma"),
    ("music/rfm/music-rfm-0000.wav", "music", "rfm"),
    ("noise/free-sound/noise-free-sound-0000.wav", "noise", "free-sound"),
    ("noise/sound-bible/noise-sound-bible-0000.wav", "noise", "sound-bible"),
    ("speech/librivox/speech-librivox-0000.wav", "speech", "librivox"),
]


def test_musan_lists_all_three_parts_as_nonspeech(tmp_path):
    fixture.build(tmp_path)
    records = list(get("musan").recordings(tmp_path))
    assert [(r.path, r.subset, r.extra["source"]) for r in records] == ALL
    assert {r.domain for r in records} == {"nonspeech"} and {r.split for r in records} == {"train"}
    assert {r.label for r in records} == {None}
    assert get("musan").cut is True


def test_exclude_speech_drops_the_speech_part(tmp_path):
    fixture.build(tmp_path)
    records = list(get("musan").recordings(tmp_path, {"exclude_speech": True}))
    assert [(r.path, r.subset, r.extra["source"]) for r in records] == ALL[:-1]


def test_exclude_speech_must_be_a_bool(tmp_path):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="exclude_speech must be true or false"):
        list(get("musan").recordings(tmp_path, {"exclude_speech": "yes"}))


def test_root_may_be_the_musan_folder_itself(tmp_path):
    fixture.build(tmp_path)
    assert list(get("musan").recordings(tmp_path)) == list(get("musan").recordings(tmp_path / "musan"))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="musan: expected .*music"):
        list(get("musan").recordings(tmp_path))
