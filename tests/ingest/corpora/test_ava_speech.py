import logging
from collections import Counter

import pytest

from ingest.corpora import get
from ingest.corpora.ava_speech import Window, windows
from tests.fixtures import ava_speech as fixture


def _expected_order(present=24):
    return sorted(fixture.video_ids(present + 2)[:present])


def test_movies_split_by_sorted_id_last_10_test_10_before_valid(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.WARNING):
        records = list(get("ava_speech").recordings(tmp_path))
    order = _expected_order()
    assert [r.extra["video_id"] for r in records] == order
    assert [r.split for r in records] == ["train"] * 4 + ["valid"] * 10 + ["test"] * 10
    assert [r.extra["limited_train"] for r in records] == [True] * 4 + [False] * 20
    assert "2 of 26 annotated movies have no audio" in caplog.text
    missing = set(fixture.missing_ids())
    assert not missing & {r.extra["video_id"] for r in records}


def test_recording_covers_the_annotated_span_of_the_found_file(tmp_path):
    fixture.build(tmp_path)
    corpus = get("ava_speech")
    records = {r.extra["video_id"]: r for r in corpus.recordings(tmp_path)}
    first = records["-5KQ66BBWC4"]
    assert first.path == "more/-5KQ66BBWC4.flac"  # sorted-first of its two files
    assert (first.start, first.duration, first.label, first.domain) == (900.0, 7.24, None, "mixed")
    assert all((corpus.base_dir(tmp_path) / r.path).is_file() for r in records.values())
    assert "not_a_movie" not in {r.path.rsplit("/", 1)[-1].split(".")[0] for r in records.values()}
    trimmed = next(iter(corpus.recordings(tmp_path, {"audio_offset": 900.0})))
    assert (trimmed.start, trimmed.duration) == (0.0, 7.24)


def test_limited_train_marks_only_the_first_n_train_movies(tmp_path):
    fixture.build(tmp_path)
    records = list(get("ava_speech").recordings(tmp_path, {"n_limited": 3, "n_valid": 5, "n_test": 2}))
    assert [r.split for r in records] == ["train"] * 17 + ["valid"] * 5 + ["test"] * 2
    assert [r.extra["limited_train"] for r in records] == [True] * 3 + [False] * 21


def test_windows_count_every_one_second_window_inside_each_annotation(tmp_path):
    fixture.build(tmp_path)
    table = list(windows(tmp_path))
    per_movie = Counter((w.video_id, w.label) for w in table)
    for vid in _expected_order():
        assert per_movie[(vid, "background")] == 151 and per_movie[(vid, "speech")] == 226
    for w in table:
        assert w.end - w.start == pytest.approx(1.0)
    first = [w for w in table if w.video_id == "-5KQ66BBWC4"]
    assert (first[0].start, first[0].end, first[0].label) == (900.0, 901.0, "background")
    assert (first[-1].start, first[-1].end, first[-1].label) == (906.24, 907.24, "speech")
    assert not any(905.0 <= w.start < 905.5 for w in first)  # 0.5-s annotation: no window fits


def test_train_keeps_at_most_n_per_class_and_eval_n_per_movie_evenly_spaced(tmp_path):
    fixture.build(tmp_path)
    table = list(windows(tmp_path, max_train_per_class=10, max_eval=5))
    order = _expected_order()
    counts = Counter((w.video_id, w.split, w.label) for w in table)
    for vid in order[:4]:
        assert counts[(vid, "train", "background")] == 10 and counts[(vid, "train", "speech")] == 10
    for vid in order[4:]:
        assert sum(n for (v, _s, _l), n in counts.items() if v == vid) == 5
    assert {w.split for w in table if w.video_id in order[4:14]} == {"valid"}
    assert {w.split for w in table if w.video_id in order[14:]} == {"test"}
    train = [w for w in table if w.video_id == order[0]]
    assert [w.start for w in train if w.label == "background"] == [
        900.0, 900.15, 900.3, 900.45, 900.6, 900.75, 900.9, 901.05, 901.2, 901.35]
    assert [w.start for w in train if w.label == "speech"][:3] == [902.5, 902.72, 902.95]
    test = [(w.start, w.label) for w in table if w.video_id == order[-1]]
    assert test == [(900.0, "background"), (900.75, "background"), (901.5, "background"),
                    (903.25, "speech"), (904.0, "speech")]
    assert {w.limited_train for w in table if w.split == "train"} == {True}
    assert {w.limited_train for w in table if w.split != "train"} == {False}


def test_windows_are_deterministic_and_shift_with_audio_offset(tmp_path):
    fixture.build(tmp_path)
    a = list(windows(tmp_path, max_train_per_class=3, max_eval=2))
    assert a == list(windows(tmp_path, max_train_per_class=3, max_eval=2))
    b = list(windows(tmp_path, max_train_per_class=3, max_eval=2, audio_offset=900.0))
    assert [(w.start, w.end) for w in b] == [(round(w.start - 900, 6), round(w.end - 900, 6)) for w in a]
    with pytest.raises(ValueError, match="audio_offset"):
        list(windows(tmp_path, audio_offset=901.0))


def test_window_round_trips_through_dicts():
    w = Window("-5KQ66BBWC4", 900.0, 901.0, "speech", "train", True, "audio/-5KQ66BBWC4.wav")
    d = w.to_dict()
    assert Window.from_dict(d) == w and d["label"] == "speech"


def test_bad_arguments_and_rows_are_errors(tmp_path):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="hop"):
        list(windows(tmp_path, hop=0.03))
    with pytest.raises(ValueError, match="max_eval"):
        list(windows(tmp_path, max_eval=-1))
    labels = tmp_path / "ava_speech_labels_v1.csv"
    labels.write_text(labels.read_text() + "-5KQ66BBWC4,907.24,908.0,SINGING\n")
    with pytest.raises(ValueError, match="line 105"):
        list(get("ava_speech").recordings(tmp_path))


def test_missing_layout_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ava_speech: expected .*ava_speech_labels_v1.csv"):
        list(get("ava_speech").recordings(tmp_path))
