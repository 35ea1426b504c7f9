import json
import logging

import pytest
import soundfile as sf

from ingest.corpora import get
from tests.fixtures import commonvoice as fixture

LOGGER = "ingest.corpora.commonvoice"


def test_commonvoice_lists_train_rows_with_clips_and_warns_about_missing_ones(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        records = list(get("commonvoice").recordings(tmp_path))
    assert [r.path for r in records] == ["clips/common_voice_en_17283658.mp3",
                                         "clips/common_voice_en_18518301.mp3"]
    assert [r.speaker for r in records] == [fixture.SPEAKERS[1], fixture.SPEAKERS[0]]
    assert records[1].extra == {"sentence": '"Go home," he said.', "age": "twenties", "gender": "female",
                                "locale": "en"}
    assert [r.subset for r in records] == ["en", "en"]
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert [m for m in caplog.messages if "skipped 1 train.tsv row(s)" in m]  # the missing clip, counted
    assert get("commonvoice").cut is False


def test_newer_release_columns_are_read_by_name(tmp_path):
    fixture.build(tmp_path)
    header = ("client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents "
              "variant locale segment").split()
    rows = [(r[0], r[1], "abc123", r[2], "", r[3], r[4], r[5], r[6], r[7], "", r[8], r[9])
            for r in fixture.TRAIN]
    fixture._tsv(tmp_path / "train.tsv", rows, header)
    records = list(get("commonvoice").recordings(tmp_path))
    assert [r.extra["sentence"] for r in records] == ["The sun is bright.", '"Go home," he said.']
    assert records[1].extra["gender"] == "female" and records[1].speaker == fixture.SPEAKERS[0]


def test_fixture_clips_are_48k_mp3(tmp_path):
    fixture.build(tmp_path)
    info = sf.info(str(tmp_path / "clips" / fixture.TRAIN[0][1]))
    assert (info.format, info.samplerate, info.channels) == ("MP3", 48000, 1)


def test_deepspeech_json_manifest(tmp_path, caplog):
    fixture.build_deepspeech(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        records = list(get("commonvoice").recordings(tmp_path, {"manifest": fixture.TRAIN_MANIFEST}))
    assert [r.path for r in records] == ["train/wav/common_voice_en_17283658.wav",
                                         "train/wav/common_voice_en_18518301.wav"]
    assert records[0].extra == {"transcript_path": "train/txt/common_voice_en_17283658.txt"}
    assert {r.speaker for r in records} == {None} and {r.split for r in records} == {"train"}
    assert [m for m in caplog.messages if "skipped 1 manifest" in m]


def test_deepspeech_manifest_written_elsewhere_is_found_by_its_tail(tmp_path):
    fixture.build_deepspeech(tmp_path)
    manifest = tmp_path / "commonvoice_train_manifest.json"
    data = json.loads(manifest.read_text())
    data["root_path"] = "/home/someone/CommonVoice_dataset/train"
    manifest.write_text(json.dumps(data))
    from_target = list(get("commonvoice").recordings(tmp_path, {"manifest": str(manifest)}))
    from_split = list(get("commonvoice").recordings(tmp_path / "train", {"manifest": str(manifest)}))
    assert [r.path for r in from_target] == ["train/wav/common_voice_en_17283658.wav",
                                             "train/wav/common_voice_en_18518301.wav"]
    assert [r.path for r in from_split] == ["wav/common_voice_en_17283658.wav",
                                            "wav/common_voice_en_18518301.wav"]


def test_deepspeech_legacy_csv_manifest_matches_json(tmp_path):
    fixture.build_deepspeech(tmp_path)
    a = list(get("commonvoice").recordings(tmp_path, {"manifest": "commonvoice_train_manifest.csv"}))
    b = list(get("commonvoice").recordings(tmp_path, {"manifest": "commonvoice_train_manifest.json"}))
    assert a == b and len(a) == 2


def test_bad_manifest_values_are_value_errors(tmp_path):
    fixture.build_deepspeech(tmp_path)
    (tmp_path / "list.txt").write_text("x\n")
    (tmp_path / "other.json").write_text('{"rows": []}')
    for bad in ("list.txt", "other.json", 3, ""):
        with pytest.raises(ValueError, match="commonvoice: "):
            list(get("commonvoice").recordings(tmp_path, {"manifest": bad}))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="commonvoice: expected .*train.tsv"):
        list(get("commonvoice").recordings(tmp_path))
    with pytest.raises(FileNotFoundError, match="commonvoice: expected .*nope.json"):
        list(get("commonvoice").recordings(tmp_path, {"manifest": "nope.json"}))


def test_csv_manifest_with_relative_paths_and_a_header(tmp_path):
    fixture.build_deepspeech(tmp_path)
    stem = "common_voice_en_18518301"
    (tmp_path / "mine.csv").write_text(f"wav_path,txt_path\ntrain/wav/{stem}.wav,train/txt/{stem}.txt\n")
    records = list(get("commonvoice").recordings(tmp_path, {"manifest": "mine.csv"}))
    assert [(r.path, r.extra["transcript_path"]) for r in records] == [
        ("train/wav/common_voice_en_18518301.wav", "train/txt/common_voice_en_18518301.txt")]
