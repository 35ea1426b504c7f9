import pytest

from ingest.corpora import get
from tests.fixtures import wham as fixture


def test_wham_lists_only_the_training_partition_with_noise_meta(tmp_path):
    fixture.build(tmp_path)
    records = list(get("wham").recordings(tmp_path))
    assert [r.path for r in records] == [
        "tr/01aa010b_0.97482_209a010p_-0.97482.wav",
        "tr/40na010x_1.9295_01xo031a_-1.9295.wav",
    ]
    assert records[0].extra == {"noise_band": "2", "file_id": "18.0_5.0_37", "l_to_r_width": "17.5 cm",
                                "reverberation": "m", "location_id": "12", "location_day_id": "23"}
    assert records[1].extra == {}
    assert {r.subset for r in records} == {"tr"} and {r.split for r in records} == {"train"}
    assert {r.domain for r in records} == {"nonspeech"} and {r.label for r in records} == {None}
    assert get("wham").cut is True


def test_noise_meta_is_optional(tmp_path):
    fixture.build(tmp_path)
    for csv in (tmp_path / "wham_noise" / "metadata").iterdir():
        csv.unlink()
    records = list(get("wham").recordings(tmp_path))
    assert len(records) == 2 and all(r.extra == {} for r in records)


def test_root_may_be_the_wham_noise_folder_itself(tmp_path):
    fixture.build(tmp_path)
    assert list(get("wham").recordings(tmp_path)) == list(get("wham").recordings(tmp_path / "wham_noise"))


def test_missing_layout_is_one_clear_error(tmp_path):
    (tmp_path / "wham_noise" / "cv").mkdir(parents=True)  # no tr/: not usable for pre-training
    with pytest.raises(FileNotFoundError, match="wham: expected .*tr"):
        list(get("wham").recordings(tmp_path))
