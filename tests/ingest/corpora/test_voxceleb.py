import av
import pytest

from ingest.corpora import get
from tests.fixtures import voxceleb as fixture

VOX1_TRAIN = ["wav/id10001/1zcIwhmdeo4/00001.wav", "wav/id10001/1zcIwhmdeo4/00002.wav",
              "wav/id10002/0_laIeN-Q44/00001.wav"]
VOX2_DEV = ["dev/aac/id00012/21Uxsk56VDQ/00001.m4a", "dev/aac/id00012/21Uxsk56VDQ/00002.m4a",
            "dev/aac/id00015/0fijmz4vTVU/00001.m4a"]


def test_voxceleb_keeps_vox1_iden_train_and_vox2_dev_only(tmp_path):
    fixture.build(tmp_path)
    records = list(get("voxceleb").recordings(tmp_path))
    assert [r.path for r in records] == VOX1_TRAIN + VOX2_DEV
    assert [r.speaker for r in records] == ["id10001", "id10001", "id10002", "id00012", "id00012", "id00015"]
    assert [r.subset for r in records] == ["vox1"] * 3 + ["vox2"] * 3
    assert records[2].extra == {"gender": "m", "nationality": "India"}
    assert records[5].extra == {"gender": "f"}
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert get("voxceleb").cut is False


def test_without_split_files_every_file_is_used(tmp_path):
    fixture.build(tmp_path)
    for name in ("iden_split.txt", "vox1_meta.csv", "vox2_meta.csv"):
        (tmp_path / name).unlink()
    records = list(get("voxceleb").recordings(tmp_path))
    assert len([r for r in records if r.subset == "vox1"]) == 5
    assert [r.path for r in records if r.subset == "vox2"] == ["aac/id00017/01dfn2spqyE/00001.m4a"] + VOX2_DEV
    assert {tuple(r.extra) for r in records} == {()}


def test_subsets_option_and_vox2_alone(tmp_path):
    fixture.build(tmp_path)
    records = list(get("voxceleb").recordings(tmp_path, {"subsets": ["vox2"]}))
    assert [r.path for r in records] == VOX2_DEV
    import shutil

    shutil.rmtree(tmp_path / "wav")
    assert [r.path for r in get("voxceleb").recordings(tmp_path)] == VOX2_DEV


def test_fixture_vox2_is_aac_in_mp4_16k_mono(tmp_path):
    fixture.build(tmp_path)
    with av.open(str(tmp_path / VOX2_DEV[0])) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("aac", 16000, 1)
        assert "mp4" in container.format.name


@pytest.mark.parametrize("bad", ["vox1", ["vox3"], [], 3, [["vox1"]]])
def test_bad_subsets_are_value_errors(tmp_path, bad):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="subsets"):
        list(get("voxceleb").recordings(tmp_path, {"subsets": bad}))


def test_requested_subset_that_is_missing_is_one_clear_error(tmp_path):
    fixture.build(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "aac")
    shutil.rmtree(tmp_path / "dev")
    with pytest.raises(FileNotFoundError, match="voxceleb: expected .*aac"):
        list(get("voxceleb").recordings(tmp_path, {"subsets": ["vox1", "vox2"]}))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="voxceleb: expected .*wav"):
        list(get("voxceleb").recordings(tmp_path))


def test_iden_train_files_missing_on_disk_are_reported(tmp_path, caplog):
    import logging

    fixture.build(tmp_path)
    (tmp_path / VOX1_TRAIN[1]).unlink()
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.voxceleb"):
        records = list(get("voxceleb").recordings(tmp_path, {"subsets": ["vox1"]}))
    assert [r.path for r in records] == [VOX1_TRAIN[0], VOX1_TRAIN[2]]
    assert "1 file(s) of iden_split.txt set 1 are missing" in caplog.text


def test_vox2_moved_up_to_a_plain_aac_folder(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "dev" / "aac" / "id00012").rename(tmp_path / "aac" / "id00012")
    records = list(get("voxceleb").recordings(tmp_path, {"subsets": ["vox2"]}))
    assert [r.path for r in records] == ["aac/id00012/21Uxsk56VDQ/00001.m4a",
                                         "aac/id00012/21Uxsk56VDQ/00002.m4a",
                                         "dev/aac/id00015/0fijmz4vTVU/00001.m4a"]
