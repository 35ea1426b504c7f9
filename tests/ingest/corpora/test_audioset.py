import logging

import pytest

from ingest.corpora import get
from ingest.corpora.audioset import missing_segments
from tests.fixtures import audioset as fixture


def test_audioset_lists_training_segments_that_have_a_file(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ingest.corpora.audioset"):
        records = list(get("audioset").recordings(tmp_path))
    assert [(r.path, r.subset, r.label) for r in records] == [
        ("audio/bal_train/--PJHxphWEs_30.000.wav", "balanced", "/m/09x0r,/t/dd00088"),  # balanced wins
        ("audio/bal_train/Y--ZhevVpy1s.flac", "balanced", "/m/012xff"),  # Y<ytid> fallback
        ("audio/unbal_train/---1_cCGK4M_0.000.flac", "unbalanced",
         "/m/01g50p,/m/0284vy3,/m/06d_3,/m/07jdr,/m/07rwm0c"),
    ]
    assert records[0].extra == {"ytid": "--PJHxphWEs", "start_seconds": 30.0, "end_seconds": 40.0}
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"nonspeech"}
    assert {r.start for r in records} == {0.0} and {r.duration for r in records} == {None}
    assert get("audioset").cut is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 5 training segments" in warnings[0].getMessage()
    assert "--aE2O5G5WE, -0RWZT-miFs" in warnings[0].getMessage()


def test_missing_segments_names_the_ytids_without_a_file(tmp_path):
    fixture.build(tmp_path)
    assert missing_segments(tmp_path) == ["--aE2O5G5WE", "-0RWZT-miFs"]


def test_name_pattern_selects_other_download_conventions(tmp_path):
    fixture.build(tmp_path)
    dcase = list(get("audioset").recordings(tmp_path, {"name_pattern": "Y{ytid}_{start}_{end}"}))
    assert [r.path for r in dcase] == ["audio/dcase/Y-0RWZT-miFs_420.000_430.000.wav"]
    patterns = ["{ytid}_{start}", "{ytid}_{start_int}", "Y{ytid}", "Y{ytid}_{start}_{end}"]
    assert missing_segments(tmp_path, patterns) == []
    every = list(get("audioset").recordings(tmp_path, {"name_pattern": patterns}))
    assert [r.extra["ytid"] for r in every] == [
        "--PJHxphWEs", "--ZhevVpy1s", "--aE2O5G5WE", "---1_cCGK4M", "-0RWZT-miFs"]
    assert every[2].path == "audio/other/--aE2O5G5WE_0.flac"
    # start 0.000 -> "0" ms: only --aE2O5G5WE_0.flac fits
    assert missing_segments(tmp_path, "{ytid}_{start_ms}") == [
        "--PJHxphWEs", "--ZhevVpy1s", "---1_cCGK4M", "-0RWZT-miFs"]


@pytest.mark.parametrize("bad", ["{start}", "{ytid}_{offset}", "{ytid}_{start:.1f}", [], 3, ["{ytid}", 3]])
def test_bad_name_pattern_is_a_value_error(tmp_path, bad):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="audioset: name_pattern"):
        list(get("audioset").recordings(tmp_path, {"name_pattern": bad}))


def test_either_list_alone_is_enough(tmp_path):
    fixture.build(tmp_path)
    (tmp_path / "balanced_train_segments.csv").unlink()
    records = list(get("audioset").recordings(tmp_path))
    assert [(r.path, r.subset, r.label) for r in records] == [
        ("audio/unbal_train/---1_cCGK4M_0.000.flac", "unbalanced",
         "/m/01g50p,/m/0284vy3,/m/06d_3,/m/07jdr,/m/07rwm0c"),
        ("audio/bal_train/--PJHxphWEs_30.000.wav", "unbalanced", "/m/09x0r"),
    ]


def test_malformed_segment_row_is_a_value_error(tmp_path):
    fixture.build(tmp_path)
    with open(tmp_path / "balanced_train_segments.csv", "a") as f:
        f.write('--PJHxphWEs, thirty, 40.000, "/m/09x0r"\n')
    with pytest.raises(ValueError, match="balanced_train_segments.csv.*expected YTID, start, end, labels"):
        list(get("audioset").recordings(tmp_path))


def test_missing_layout_is_one_clear_error(tmp_path):
    (tmp_path / "eval_segments.csv").write_text("# only eval\n")
    with pytest.raises(FileNotFoundError, match="audioset: expected .*balanced_train_segments.csv"):
        list(get("audioset").recordings(tmp_path))
