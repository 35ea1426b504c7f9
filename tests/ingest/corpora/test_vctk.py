import pytest

from ingest.corpora import get
from ingest.corpora.vctk import speaker_info
from tests.fixtures import vctk as fixture


def test_vctk_splits_each_speaker_by_utterance_number(tmp_path):
    fixture.build(tmp_path)
    records = list(get("vctk").recordings(tmp_path))
    assert [(r.path, r.split) for r in records] == [
        ("wav48_silence_trimmed/p225/p225_001_mic1.flac", "valid"),
        ("wav48_silence_trimmed/p225/p225_025_mic1.flac", "valid"),
        ("wav48_silence_trimmed/p225/p225_026_mic1.flac", "test"),
        ("wav48_silence_trimmed/p225/p225_050_mic1.flac", "test"),
        ("wav48_silence_trimmed/p225/p225_051_mic1.flac", "train"),
        ("wav48_silence_trimmed/p225/p225_366_mic1.flac", "train"),
        ("wav48_silence_trimmed/p248/p248_003_mic1.flac", "valid"),
        ("wav48_silence_trimmed/p248/p248_120_mic1.flac", "train"),
        ("wav48_silence_trimmed/p280/p280_030_mic1.flac", "test"),
    ]
    assert all(r.label == r.speaker == r.path.split("/")[1] for r in records)
    assert {r.domain for r in records} == {"speech"}


def test_only_mic1_and_only_speakers_with_audio(tmp_path):
    fixture.build(tmp_path)
    records = list(get("vctk").recordings(tmp_path))
    assert not any("mic2" in r.path for r in records)
    assert {r.speaker for r in records} == {"p225", "p248", "p280"}  # p226, p343: listed, no audio
    assert all((tmp_path / "VCTK-Corpus-0.92" / r.path).is_file() for r in records)


def test_speaker_metadata_goes_to_extra(tmp_path):
    fixture.build(tmp_path)
    by_speaker = {r.speaker: r.extra for r in get("vctk").recordings(tmp_path / "VCTK-Corpus-0.92")}
    assert by_speaker["p225"] == {"utterance": 366, "gender": "F", "age": 23, "accent": "English",
                                  "region": "Southern England"}
    assert by_speaker["p248"]["region"] == "" and by_speaker["p248"]["accent"] == "Indian"
    assert by_speaker["p280"]["region"] == "Paris"


def test_speaker_info_reads_comments_and_old_ids(tmp_path):
    path = tmp_path / "speaker-info.txt"
    path.write_text("ID  AGE  GENDER  ACCENTS  REGION\n225  23  F    English    Southern  England\n"
                    "p280  25  F    France     Paris  (mic2 files unavailable)\n")
    info = speaker_info(path)
    assert sorted(info) == ["p225", "p280"]
    assert info["p280"]["comment"] == "mic2 files unavailable"


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vctk: expected .*speaker-info.txt"):
        list(get("vctk").recordings(tmp_path))
