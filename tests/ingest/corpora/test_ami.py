import logging

import pytest

from ingest.corpora import ami, get
from tests.fixtures import ami as fixture

ALL = [
    "ES2002a/audio/ES2002a.Array1-01.wav",
    "ES2002a/audio/ES2002a.Array1-02.wav",
    "ES2002a/audio/ES2002a.Array2-01.wav",
    "ES2002a/audio/ES2002a.Headset-0.wav",
    "ES2002a/audio/ES2002a.Headset-1.wav",
    "ES2002a/audio/ES2002a.Mix-Headset.wav",
    "IN1001/audio/IN1001.Headset-0.wav",
    "IN1001/audio/IN1001.Mix-Headset.wav",
]


def test_ami_lists_all_streams_of_training_meetings_only(tmp_path, caplog):
    fixture.build(tmp_path)
    with caplog.at_level(logging.INFO, logger="ingest.corpora.ami"):
        records = list(get("ami").recordings(tmp_path))
    assert [r.path for r in records] == ALL
    assert [r.subset for r in records] == ["Array1", "Array1", "Array2", "Headset", "Headset", "Mix-Headset",
                                           "Headset", "Mix-Headset"]
    assert records[3].extra == {"meeting": "ES2002a", "stream": "Headset-0"}
    assert {r.speaker for r in records} == {None}
    assert {r.split for r in records} == {"train"} and {r.domain for r in records} == {"speech"}
    assert ("read 2 of 136 training meetings; skipped 2 non-training meeting folder(s) and 1 file(s)"
            in caplog.text)
    assert get("ami").cut is True


def test_streams_option_restricts_families(tmp_path):
    fixture.build(tmp_path)
    records = list(get("ami").recordings(tmp_path, {"streams": ["Mix-Headset", "Array2"]}))
    assert [r.path for r in records] == [ALL[2], ALL[5], ALL[7]]


@pytest.mark.parametrize("bad", ["Headset", ["Lapel"], [], 3, [["Headset"]]])
def test_bad_streams_are_value_errors(tmp_path, bad):
    fixture.build(tmp_path)
    with pytest.raises(ValueError, match="ami: streams"):
        list(get("ami").recordings(tmp_path, {"streams": bad}))


def test_shipped_partition_is_the_full_corpus_asr_train_list():
    meetings = ami.train_meetings()
    assert len(meetings) == len(set(meetings)) == 136
    assert {"ES2002a", "IN1001", "EN2001e", "TS3012d", "ES2014a", "TS3006a"} <= set(meetings)
    # dev (ES2011, IS1008, TS3004, IB40xx) and test (ES2004, IS1009, TS3003, EN2002) are not train
    held_out = {"ES2011a", "IS1008b", "TS3004c", "IB4001", "ES2004a", "IS1009d", "TS3003a", "EN2002a"}
    assert not held_out & set(meetings)


def test_root_may_be_the_amicorpus_folder_itself(tmp_path):
    fixture.build(tmp_path)
    assert list(get("ami").recordings(tmp_path)) == list(get("ami").recordings(tmp_path / "amicorpus"))


def test_missing_layout_is_one_clear_error(tmp_path):
    (tmp_path / "amicorpus" / "ES2011a" / "audio").mkdir(parents=True)  # only a dev meeting
    with pytest.raises(FileNotFoundError, match="ami: expected .*EN2001a/audio"):
        list(get("ami").recordings(tmp_path))
