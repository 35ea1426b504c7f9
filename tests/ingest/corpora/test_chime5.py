import logging

import pytest
import soundfile as sf

from ingest.corpora import get
from tests.fixtures import chime5 as fixture


def test_chime5_lists_every_training_stream_and_no_dev_session(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.chime5"):
        records = list(get("chime5").recordings(tmp_path))
    assert [r.path for r in records] == [
        "audio/train/S03_P09.wav",
        "audio/train/S03_P10.wav",
        "audio/train/S03_U01.CH1.wav",
        "audio/train/S03_U01.CH2.wav",
        "audio/train/S03_U02.CH1.wav",
        "audio/train/S04_P11.wav",
        "audio/train/S04_U01.CH1.wav",
    ]
    assert [r.speaker for r in records] == ["P09", "P10", None, None, None, "P11", None]
    assert [r.subset for r in records] == ["worn", "worn", "array", "array", "array", "worn", "array"]
    assert records[2].extra == {"session": "S03", "device": "U01", "channel": "CH1"}
    assert records[0].extra == {"session": "S03", "device": "P09"}
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert "ignored 1 wav file" in caplog.text  # the stray S03_U01.CH1.backup.wav
    assert get("chime5").cut is True


def test_fixture_worn_mics_are_binaural_16k(tmp_path):
    fixture.build(tmp_path)
    worn = sf.info(str(tmp_path / "CHiME5/audio/train/S03_P09.wav"))
    array = sf.info(str(tmp_path / "CHiME5/audio/train/S03_U01.CH1.wav"))
    assert (worn.channels, worn.samplerate, array.channels, array.samplerate) == (2, 16000, 1, 16000)


def test_transcriptions_are_not_required(tmp_path):
    fixture.build(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "CHiME5" / "transcriptions")
    assert len(list(get("chime5").recordings(tmp_path))) == 7


def test_root_may_be_the_chime5_folder_itself(tmp_path):
    fixture.build(tmp_path)
    assert list(get("chime5").recordings(tmp_path)) == list(get("chime5").recordings(tmp_path / "CHiME5"))


def test_chime5_takes_no_options(tmp_path):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        list(get("chime5").recordings(tmp_path, {"streams": ["worn"]}))


def test_missing_layout_is_one_clear_error(tmp_path):
    (tmp_path / "CHiME5" / "audio" / "dev").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="chime5: expected .*audio/train"):
        list(get("chime5").recordings(tmp_path))
