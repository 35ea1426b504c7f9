from ingest.corpora import get
from tests.fixtures import librispeech as fixture


def test_librispeech_lists_only_training_parts_with_speaker_and_text(tmp_path):
    fixture.build(tmp_path)
    records = list(get("librispeech").recordings(tmp_path))
    assert [r.path for r in records] == [
        "train-clean-100/19/198/19-198-0000.flac",
        "train-clean-100/19/198/19-198-0001.flac",
        "train-clean-100/26/495/26-495-0000.flac",
    ]
    assert [r.speaker for r in records] == ["19", "19", "26"]
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert records[1].extra["text"] == "HELLO WORLD NUMBER 1"
    assert records[0].subset == "train-clean-100"


def test_root_may_be_the_librispeech_folder_itself(tmp_path):
    fixture.build(tmp_path)
    a = list(get("librispeech").recordings(tmp_path))
    b = list(get("librispeech").recordings(tmp_path / "LibriSpeech"))
    assert a == b


def test_missing_layout_is_one_clear_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="librispeech: expected"):
        list(get("librispeech").recordings(tmp_path))
