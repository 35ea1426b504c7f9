"""Careless input ends in one line: every setting checked (type, finite, range); a labelled CSV given for
pre-training gives only its train rows; the resume hint only where a re-run resumes."""

import pytest

from ingest.__main__ import main as ingest_main
from ingest.config import IngestConfig
from ingest.synth import speechlike, write_audio
from shards.catalog import read_catalog
from shards.configs import from_mapping
from shards.errors import one_line
from shards.storage import Root


@pytest.mark.parametrize("flags, message", [
    (["--shard-seconds", "nan"], "shard_seconds=nan should be a finite number"),
    (["--clip-seconds", "inf"], "clip_seconds=inf should be a finite number"),
    (["--shard-seconds", "0"], "shard_seconds=0.0 must be > 0"),
    (["--clip-seconds", "0.2"], "clip_seconds=0.2 must be >= 1.0 (one training crop)"),
    (["--min-tail-seconds", "-1"], "min_tail_seconds=-1.0 must be between 0 and the clip length 10.0"),
    (["--seed", "-3"], "seed=-3 must be between 0 and 2**63 - 1"),
    (["--workers", "-1"], "workers=-1 must be >= 0"),
    (["--probe-batch", "0"], "probe_batch=0 must be >= 1"),
    (["--jobqueue", "kubernetes"], "jobqueue='kubernetes', expected one of"),
    (["--collection", "../up"], "collection name '../up'"),
    (["--data", ""], "data='': expected a folder"),
])
def test_every_flag_is_checked_with_one_line(tmp_path, capsys, flags, message):
    args = ["shards", "--corpus", f"c=folder:{tmp_path}", "--domain", "speech", "--data", str(tmp_path / "d")]
    assert ingest_main(args + flags) == 1
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_toml_settings_and_direct_construction_are_checked_too(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[settings]\nshard_seconds = inf\n[corpora.c]\nadapter = "folder"\nroot = "{tmp_path}"\n'
                    'domain = "speech"\n')
    assert ingest_main(["shards", "--config", str(toml), "--data", str(tmp_path / "d")]) == 1
    assert "[settings]: shard_seconds=inf should be a finite number" in capsys.readouterr().err.replace("\n", "")
    with pytest.raises(ValueError, match="^seed=True: expected int$"):
        IngestConfig(seed=True)
    with pytest.raises(ValueError, match="^workers='2': expected int or None$"):
        IngestConfig(workers="2")
    with pytest.raises(ValueError, match="^segment_seconds=nan: expected a finite number$"):
        IngestConfig(segment_seconds=float("nan"))
    with pytest.raises(ValueError, match="should be a finite number"):
        from_mapping(IngestConfig, {"min_tail_seconds": float("-inf")})
    seconds = IngestConfig(shard_seconds=25).shard_seconds
    assert seconds == 25.0 and isinstance(seconds, float)


def test_a_labelled_csv_gives_pretraining_only_its_train_rows(tmp_path, capsys):
    for name in ("tr1", "tr2", "va", "te"):
        write_audio(tmp_path / "ds" / f"{name}.wav", speechlike(1.5, 16000, seed=len(name)), 16000)
    (tmp_path / "ds" / "labels.csv").write_text(
        "path,label,split\ntr1.wav,a,train\nva.wav,a,valid\ntr2.wav,b,train\nte.wav,b,test\n")
    rc = ingest_main(["shards", "--corpus", f"mine=csv:{tmp_path / 'ds' / 'labels.csv'}", "--domain", "speech",
                      "--data", str(tmp_path / "d"), "--workers", "0"])
    assert rc == 0
    rows = read_catalog(Root(tmp_path / "d"), "pretrain").to_pylist()
    assert sorted((r["source"], r["split"]) for r in rows) == [("tr1.wav", "train"), ("tr2.wav", "train")]
    assert "mine: 2 valid/test recordings left out" in capsys.readouterr().err.replace("\n", " ")
    (tmp_path / "ds" / "held.csv").write_text("path,label,split\nva.wav,a,valid\n")
    rc = ingest_main(["shards", "--corpus", f"held=csv:{tmp_path / 'ds' / 'held.csv'}", "--domain", "speech",
                      "--data", str(tmp_path / "d"), "--collection", "held", "--workers", "0"])
    assert rc == 1 and "held: no recordings in the train split found" in capsys.readouterr().err.replace("\n", "")


def test_the_resume_hint_is_only_for_commands_that_resume():
    err = OSError(5, "Input/output error")
    assert one_line(err) == "[Errno 5] Input/output error"
    assert one_line(err, resumable=True) == \
        "[Errno 5] Input/output error (committed work is kept: re-run the same command to resume)"
    assert one_line(FileNotFoundError(2, "No such file"), resumable=True) == "[Errno 2] No such file"
    assert one_line(ValueError("bad\nsecond line"), resumable=True) == "bad"
