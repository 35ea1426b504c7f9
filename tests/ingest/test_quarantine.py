"""Bad input is quarantined with a reason, never fatal and never silent; exit status 3 says so."""

import os
import struct

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from ingest.__main__ import main as ingest_main
from ingest.synth import nonspeech, write_audio
from shards.catalog import read_catalog, read_quarantine
from shards.storage import Root
from shards.verify import verify


def _wav_header(rate: int, channels: int, data_bytes: int = 3200) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * max(channels, 1) * 2, max(channels, 1) * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_bytes)
    return b"RIFF" + struct.pack("<I", len(body) + data_bytes) + body + bytes(data_bytes)


def build_bad_corpus(folder):
    write_audio(folder / "good.wav", nonspeech(2.0, 16000, seed=1), 16000)
    full = write_audio(folder / "trunc.wav", nonspeech(6.0, 16000, seed=2), 16000).read_bytes()
    (folder / "trunc.wav").write_bytes(full[: len(full) // 2])
    flac = write_audio(folder / "trunc.flac", nonspeech(6.0, 16000, seed=3), 16000).read_bytes()
    (folder / "trunc.flac").write_bytes(flac[: len(flac) // 2])
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.flac").write_bytes(b"this is not audio at all\n" * 40)
    nan = np.full(16000, np.nan, dtype=np.float32)
    nan[:100] = 0.1
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    (folder / "rate0.wav").write_bytes(_wav_header(0, 1))
    (folder / "rate1m.wav").write_bytes(_wav_header(1_000_000, 1))
    (folder / "rate1.wav").write_bytes(_wav_header(1, 1, 1000))  # a 1 KB file that would become 500 s
    (folder / "ch0.wav").write_bytes(_wav_header(16000, 0))
    (folder / "ch100.wav").write_bytes(_wav_header(16000, 100, 6400))
    os.symlink(folder / "gone.wav", folder / "dangling.wav")
    os.mkfifo(folder / "fifo.wav")


def test_every_kind_of_bad_input_is_quarantined_with_a_reason(tmp_path, capsys):
    build_bad_corpus(tmp_path / "bad")
    data = tmp_path / "data"
    rc = ingest_main(["shards", "--corpus", f"bad=folder:{tmp_path / 'bad'}", "--domain", "nonspeech",
                      "--data", str(data), "--workers", "0"])
    out = capsys.readouterr().err
    assert rc == 3, out
    reasons = {r["source"]: r["reason"] for r in read_quarantine(Root(data), "pretrain").to_pylist()}
    assert set(reasons) == {"trunc.wav", "trunc.flac", "empty.wav", "text.flac", "nan.wav", "rate0.wav",
                            "rate1m.wav", "rate1.wav", "ch0.wav", "ch100.wav", "dangling.wav", "fifo.wav"}
    assert reasons["trunc.wav"].startswith("truncated")
    assert reasons["trunc.flac"].startswith(("truncated", "not decodable audio"))  # libsndfile: "lost sync"
    assert reasons["empty.wav"] == "zero-length file"
    assert reasons["text.flac"].startswith("not decodable audio")
    assert reasons["nan.wav"].startswith("non-finite")
    assert reasons["dangling.wav"].startswith("unreadable") and reasons["fifo.wav"].startswith("unreadable")
    # libsndfile itself refuses a zero rate or zero channels; our header check catches what it accepts
    assert reasons["rate0.wav"].startswith("not decodable audio") and "SF_INFO" in reasons["rate0.wav"]
    assert reasons["ch0.wav"].startswith("not decodable audio") and "Channel count is zero" in reasons["ch0.wav"]
    assert reasons["rate1m.wav"] == "absurd sample rate 1000000 Hz (expected 4000..384000)"
    assert reasons["rate1.wav"] == "absurd sample rate 1 Hz (expected 4000..384000)"
    assert reasons["ch100.wav"] == "absurd channel count 100 (expected 1..64)"
    assert [r["source"] for r in read_catalog(Root(data), "pretrain").to_pylist()] == ["good.wav"]
    assert "12 quarantined" in out.replace("\n", " ")
    assert verify(str(data)).ok


def test_decode_stage_quarantine_is_recorded_per_shard(tmp_path):
    build_bad_corpus(tmp_path / "bad")
    ingest_main(["shards", "--corpus", f"bad=folder:{tmp_path / 'bad'}", "--domain", "nonspeech",
                 "--data", str(tmp_path / "d"), "--workers", "0"])
    stages = {r["source"]: r["stage"] for r in read_quarantine(Root(tmp_path / "d"), "pretrain").to_pylist()}
    assert stages["nan.wav"] == "decode" and stages["empty.wav"] == "probe"
    probe = pq.read_table(tmp_path / "d" / "catalog" / "pretrain" / "quarantine" / "probe.parquet")
    assert "nan.wav" not in probe.column("source").to_pylist()
