import logging

import pytest

from ingest.corpora import get
from tests.fixtures import fsd as fixture


def test_fsd_lists_training_parts_in_priority_order_with_freesound_keys(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.fsd"):
        records = list(get("fsd").recordings(tmp_path))
    assert [(r.path, r.subset, r.dedup_key) for r in records] == [
        ("FSD50K.dev_audio/16399.wav", "fsd50k", "freesound:16399"),
        ("FSD50K.dev_audio/64760.wav", "fsd50k", "freesound:64760"),
        ("FSDnoisy18k.audio_train/17.wav", "fsdnoisy18k", "freesound:17"),
        ("FSDnoisy18k.audio_train/64760.wav", "fsdnoisy18k", "freesound:64760"),  # engine drops: FSD50K has it
        ("FSDKaggle2019.audio_train_curated/0006ae4e.wav", "fsdkaggle2019_curated", "freesound:16399"),
        ("FSDKaggle2019.audio_train_curated/0019ef41.wav", "fsdkaggle2019_curated", "freesound:140395"),
        ("FSDKaggle2019.audio_train_noisy/00097e21.wav", "fsdkaggle2019_noisy", None),
    ]
    assert {r.dedup_group for r in records} == {"fsd"} and {r.split for r in records} == {"train"}
    assert {r.domain for r in records} == {"nonspeech"} and get("fsd").cut is False
    assert records[0].label == "Bark,Dog,Domestic_animals_and_pets,Animal"
    assert records[0].extra == {"mids": "/m/05tny_,/m/0bt9lr,/m/068hy,/m/0jbk"}
    assert records[2].label == "Walk_or_footsteps"
    assert records[2].extra == {"aso_id": "/m/07pbtc8", "manually_verified": "1", "noisy_small": "0"}
    assert records[4].label == "Bark" and records[4].extra == {"license": "CC-BY"}
    assert records[6].extra == {"flickr_video_URL": "http://www.flickr.com/videos/1/2/", "license": "CC-BY"}
    # FSD50K 40515, FSDnoisy18k 1234.wav and Kaggle ffffffff.wav are listed but have no audio
    assert caplog.text.count("have no file") == 3


def test_kaggle_competition_layout_has_no_freesound_ids(tmp_path):
    fixture.build(tmp_path, variant="kaggle")
    records = list(get("fsd").recordings(tmp_path))
    assert [(r.path, r.subset, r.dedup_key, r.label) for r in records] == [
        ("FSD50K/FSD50K.dev_audio/16399.wav", "fsd50k", "freesound:16399",
         "Bark,Dog,Domestic_animals_and_pets,Animal"),
        ("FSD50K/FSD50K.dev_audio/64760.wav", "fsd50k", "freesound:64760",
         "Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music"),
        ("FSDnoisy18k.audio_train/17.wav", "fsdnoisy18k", "freesound:17", "Walk_or_footsteps"),
        ("FSDnoisy18k.audio_train/64760.wav", "fsdnoisy18k", "freesound:64760", "Acoustic_guitar"),
        ("train_curated/0006ae4e.wav", "fsdkaggle2019_curated", None, "Bark"),
        ("train_noisy/00097e21.wav", "fsdkaggle2019_noisy", None, "Bathtub_(filling_or_washing)"),
    ]
    assert {r.dedup_group for r in records} == {"fsd"}


def test_any_single_part_is_enough(tmp_path):
    fixture.build(tmp_path)
    for folder in ("FSD50K.ground_truth", "FSDKaggle2019.meta"):
        for csv in (tmp_path / folder).iterdir():
            csv.unlink()
    records = list(get("fsd").recordings(tmp_path))
    assert [r.path for r in records] == ["FSDnoisy18k.audio_train/17.wav", "FSDnoisy18k.audio_train/64760.wav"]


def test_metadata_without_its_audio_folder_is_an_error(tmp_path):
    fixture.build(tmp_path)
    for wav in (tmp_path / "FSDnoisy18k.audio_train").iterdir():
        wav.unlink()
    (tmp_path / "FSDnoisy18k.audio_train").rmdir()
    with pytest.raises(FileNotFoundError, match="fsd: expected .*FSDnoisy18k.audio_train"):
        list(get("fsd").recordings(tmp_path))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="fsd: expected .*FSD50K.ground_truth/dev.csv"):
        list(get("fsd").recordings(tmp_path))
