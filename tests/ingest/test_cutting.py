"""Users' own audio (folder / csv corpora) is cut into 10-s clips by default, kept whole on request; the
twelve named corpora follow Table I; transfer datasets are never cut."""

import pytest

from ingest.__main__ import main as ingest_main
from ingest.sources import load_config
from ingest.synth import nonspeech, speechlike, write_audio
from shards.catalog import read_catalog
from shards.storage import Root


def _long_recordings(folder):
    """Two long recordings (65 s at 44.1 kHz stereo, 30.5 s at 16 kHz) and one short one (3 s)."""
    write_audio(folder / "meeting.wav", speechlike(65.0, 44100, seed=1), 44100, channels=2)
    write_audio(folder / "sub" / "lecture.flac", speechlike(30.5, 16000, seed=2), 16000)
    write_audio(folder / "short.wav", nonspeech(3.0, 16000, seed=3), 16000)
    return folder


def _clips(data, collection="pretrain"):
    return sorted((r["source"], r["start"], r["seconds"], r["frames"])
                  for r in read_catalog(Root(data), collection).to_pylist())


def test_a_folder_of_long_recordings_becomes_10_s_clips(tmp_path):
    src = _long_recordings(tmp_path / "mine")
    rc = ingest_main(["shards", "--corpus", f"mine=folder:{src}", "--domain", "speech", "--data",
                      str(tmp_path / "d"), "--workers", "0"])
    assert rc == 0
    meeting = [(s, start, sec, n) for s, start, sec, n in _clips(tmp_path / "d") if s == "meeting.wav"]
    assert meeting == [("meeting.wav", 10.0 * i, 10.0, 160000) for i in range(6)] + [
        ("meeting.wav", 60.0, 5.0, 80000)]  # the 5-s tail is kept at its own length (tail=keep)
    rest = [c for c in _clips(tmp_path / "d") if c[0] != "meeting.wav"]
    assert rest == [("short.wav", 0.0, 3.0, 48000), ("sub/lecture.flac", 0.0, 10.0, 160000),
                    ("sub/lecture.flac", 10.0, 10.0, 160000), ("sub/lecture.flac", 20.0, 10.0, 160000)]
    # lecture's 0.5-s tail is shorter than --min-tail-seconds (1 s): dropped, and counted


def test_keep_whole_on_the_cli_and_cut_false_in_the_toml(tmp_path):
    src = _long_recordings(tmp_path / "mine")
    rc = ingest_main(["shards", "--corpus", f"mine=folder:{src}", "--domain", "speech", "--keep-whole", "mine",
                      "--data", str(tmp_path / "cli"), "--workers", "0"])
    assert rc == 0
    whole = [("meeting.wav", 0.0, 65.0, 1040000), ("short.wav", 0.0, 3.0, 48000),
             ("sub/lecture.flac", 0.0, 30.5, 488000)]
    assert _clips(tmp_path / "cli") == whole
    toml = tmp_path / "corpora.toml"
    toml.write_text(f'[corpora.mine]\nadapter = "folder"\nroot = "{src}"\ndomain = "speech"\ncut = false\n')
    assert ingest_main(["shards", "--config", str(toml), "--data", str(tmp_path / "toml"), "--workers", "0"]) == 0
    assert _clips(tmp_path / "toml") == whole


def test_cut_is_for_users_corpora_and_must_be_a_boolean(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('[corpora.librispeech]\nroot = "/x"\ncut = false\n')
    with pytest.raises(ValueError, match="librispeech: cutting of librispeech is fixed by Table I"):
        load_config(toml)
    toml.write_text('[corpora.mine]\nadapter = "folder"\nroot = "/x"\ndomain = "speech"\ncut = "no"\n')
    with pytest.raises(ValueError, match="mine: cut='no', expected true or false"):
        load_config(toml)
    rc = ingest_main(["shards", "--corpus", "mine=folder:/x", "--domain", "speech", "--keep-whole", "other",
                      "--data", str(tmp_path / "d")])
    assert rc == 1 and "--keep-whole ['other']: no such corpus" in capsys.readouterr().err


def test_a_csv_transfer_dataset_is_never_cut(tmp_path):
    write_audio(tmp_path / "ds" / "long.wav", speechlike(25.0, 16000, seed=4), 16000)
    write_audio(tmp_path / "ds" / "short.wav", speechlike(2.0, 16000, seed=5), 16000)
    (tmp_path / "ds" / "labels.csv").write_text("path,label,split\nlong.wav,a,train\nshort.wav,b,test\n")
    rc = ingest_main(["transfer", "--dataset", f"mine=csv:{tmp_path / 'ds' / 'labels.csv'}", "--data",
                      str(tmp_path / "d"), "--workers", "0"])
    assert rc == 0
    assert _clips(tmp_path / "d", "mine") == [("long.wav", 0.0, 25.0, 400000), ("short.wav", 0.0, 2.0, 32000)]
