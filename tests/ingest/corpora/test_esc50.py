import pytest

from ingest.corpora import get
from tests.fixtures import esc50 as fixture


def test_esc50_splits_by_official_fold(tmp_path):
    fixture.build(tmp_path)
    records = list(get("esc50").recordings(tmp_path))
    assert [(r.path, r.split, r.label) for r in records] == [
        ("audio/1-100032-A-0.wav", "train", "dog"),
        ("audio/1-100038-A-14.wav", "train", "chirping_birds"),
        ("audio/2-102414-B-17.wav", "train", "pouring_water"),
        ("audio/3-103050-A-41.wav", "train", "chainsaw"),
        ("audio/4-102844-A-49.wav", "valid", "hand_saw"),
        ("audio/4-110828-C-42.wav", "valid", "siren"),
        ("audio/5-103415-A-2.wav", "test", "pig"),
    ]
    assert {r.domain for r in records} == {"nonspeech"} and {r.corpus for r in records} == {"esc50"}
    assert records[0].extra == {"fold": 1, "target": 0, "esc10": True}
    assert records[-1].extra == {"fold": 5, "target": 2, "esc10": False}


def test_only_files_listed_in_the_csv_are_used(tmp_path):
    fixture.build(tmp_path)
    paths = {r.path for r in get("esc50").recordings(tmp_path)}
    assert "audio/5-999999-A-0.wav" not in paths and len(paths) == len(fixture.ROWS)


def test_every_listed_path_exists_and_root_may_be_the_top_folder(tmp_path):
    fixture.build(tmp_path)
    corpus = get("esc50")
    records = list(corpus.recordings(tmp_path))
    assert all((corpus.base_dir(tmp_path) / r.path).is_file() for r in records)
    assert records == list(corpus.recordings(tmp_path / "ESC-50-master"))
    assert not corpus.cut and corpus.kind == "transfer"


def test_records_round_trip_through_dicts(tmp_path):
    from ingest.records import Recording

    fixture.build(tmp_path)
    for record in get("esc50").recordings(tmp_path):
        assert Recording.from_dict(record.to_dict()) == record


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="esc50: expected .*esc50.csv"):
        list(get("esc50").recordings(tmp_path))


def test_unknown_fold_is_an_error(tmp_path):
    fixture.build(tmp_path)
    meta = tmp_path / "ESC-50-master" / "meta" / "esc50.csv"
    meta.write_text(meta.read_text() + "6-1-A-0.wav,6,0,dog,True,1,A\n")
    with pytest.raises(ValueError, match="fold=6"):
        list(get("esc50").recordings(tmp_path))
