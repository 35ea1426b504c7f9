import pytest
import soundfile as sf

from ingest.corpora import get
from tests.fixtures import urbansound8k as fixture


def test_urbansound8k_splits_by_official_fold(tmp_path):
    fixture.build(tmp_path)
    records = list(get("urbansound8k").recordings(tmp_path))
    assert [(r.path, r.split, r.label) for r in records] == [
        ("audio/fold1/100263-2-0-117.wav", "train", "children_playing"),
        ("audio/fold5/100032-3-0-0.wav", "train", "dog_bark"),
        ("audio/fold8/101415-3-0-2.wav", "train", "dog_bark"),
        ("audio/fold9/102305-6-0-0.wav", "valid", "gun_shot"),
        ("audio/fold10/102857-5-0-15.wav", "test", "engine_idling"),
        ("audio/fold10/103074-7-0-0.wav", "test", "jackhammer"),
    ]
    assert {r.domain for r in records} == {"nonspeech"}
    assert records[3].extra == {"fold": 9, "class_id": 6, "fs_id": "102305", "salience": 2}


def test_paths_exist_and_keep_their_mixed_formats(tmp_path):
    fixture.build(tmp_path)
    corpus = get("urbansound8k")
    base = corpus.base_dir(tmp_path)
    rates = {sf.info(str(base / r.path)).samplerate for r in corpus.recordings(tmp_path)}
    assert rates == {11025, 22050, 44100, 48000, 96000}


def test_unlisted_files_and_debris_are_ignored(tmp_path):
    fixture.build(tmp_path)
    paths = [r.path for r in get("urbansound8k").recordings(tmp_path / "UrbanSound8K")]
    assert len(paths) == len(fixture.ROWS)
    assert not any(p.endswith((".DS_Store", "999999-0-0-0.wav")) for p in paths)


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="urbansound8k: expected .*UrbanSound8K.csv"):
        list(get("urbansound8k").recordings(tmp_path))
