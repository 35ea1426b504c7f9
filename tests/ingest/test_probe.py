"""The planning probe: its one-stat fast path says exactly what `audio.probe` says, for every kind of file;
probe jobs carry their own paths (not the listing's column) and never span two sources."""

import hashlib
import os
import pickle
import struct

import numpy as np
import pyarrow as pa
import soundfile as sf

from ingest.config import Source
from ingest.listing import list_sources
from ingest.probe import ProbeJob, probe_batch, probe_jobs, probe_local
from shards import audio
from shards.executor import InlineExecutor
from tests.conftest import small_config

RATE = 16000


def _wav_header(rate: int, channels: int, bits: int, frames: int, tag: int = 1, extra_chunk: bytes = b"") -> bytes:
    block = channels * bits // 8
    data = frames * block
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + extra_chunk + b"data" + struct.pack("<I", data)
    return b"RIFF" + struct.pack("<I", len(body) + data) + body


def _files(folder) -> list[str]:
    """One file of each kind the probe meets: plain and odd WAVs, FLAC, Ogg, broken and special files."""
    folder.mkdir()
    noise = (np.random.default_rng(0).standard_normal((RATE, 2)) * 0.1).astype(np.float32)
    sf.write(folder / "pcm16.wav", noise[:, 0], RATE, subtype="PCM_16")
    sf.write(folder / "pcm24_stereo.wav", noise, 44100, subtype="PCM_24")
    sf.write(folder / "float.wav", noise, 22050, subtype="FLOAT")
    sf.write(folder / "a.flac", noise[:, 0], RATE)
    sf.write(folder / "a.ogg", noise[:, 0], RATE)
    (folder / "list_chunk.wav").write_bytes(
        _wav_header(RATE, 1, 16, 800, extra_chunk=b"LIST" + struct.pack("<I", 4) + b"INFO") + bytes(1600))
    (folder / "extensible.wav").write_bytes(_wav_header(RATE, 1, 16, 800, tag=0xFFFE) + bytes(1600))
    (folder / "truncated.wav").write_bytes(_wav_header(RATE, 1, 16, 8000) + bytes(100))
    (folder / "one_hz.wav").write_bytes(_wav_header(1, 1, 16, 500) + bytes(1000))
    (folder / "no_frames.wav").write_bytes(_wav_header(RATE, 1, 16, 0))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_bytes(b"not audio at all " * 10)
    (folder / "dir.wav").mkdir()
    os.mkfifo(folder / "fifo.wav")
    os.symlink(folder / "gone.wav", folder / "dangling.wav")
    os.symlink(folder / "pcm16.wav", folder / "link.wav")
    return sorted(str(p) for p in folder.iterdir()) + [str(folder / "missing.wav")]


def _outcome(probe, path: str):
    try:
        return probe(path)
    except audio.BadAudio as bad:
        return bad.reason


def test_the_fast_path_says_what_audio_probe_says_for_every_kind_of_file(tmp_path):
    paths = _files(tmp_path / "f")
    got = {os.path.basename(p): _outcome(probe_local, p) for p in paths}
    assert got == {os.path.basename(p): _outcome(audio.probe, p) for p in paths}
    assert got["pcm24_stereo.wav"] == audio.AudioInfo(44100, 2, RATE)
    assert got["list_chunk.wav"] == audio.AudioInfo(RATE, 1, 800)
    assert got["fifo.wav"] == "unreadable: not a regular file" and got["empty.wav"] == "zero-length file"
    assert got["truncated.wav"].startswith("truncated") and got["one_hz.wav"].startswith("absurd sample rate")


def test_probe_jobs_carry_only_their_own_paths_and_one_source_each(tmp_path):
    for corpus, count in (("a", 5), ("b", 3)):
        (tmp_path / corpus).mkdir()
        for i in range(count):
            sf.write(tmp_path / corpus / f"{i}.wav", np.zeros(RATE // 10 * (i + 1), np.float32), RATE)
    sources = [Source(c, "folder", str(tmp_path / c), domain="speech") for c in ("a", "b")]
    listing = list_sources(sources, small_config(tmp_path / "d"), "pretrain", InlineExecutor())
    jobs = list(probe_jobs(listing, batch=2))
    assert [(j.begin, len(j.paths), j.base) for j in jobs] == [
        (0, 2, str(tmp_path / "a")), (2, 2, str(tmp_path / "a")), (4, 1, str(tmp_path / "a")),
        (5, 2, str(tmp_path / "b")), (7, 1, str(tmp_path / "b"))]
    assert all(j.want_hash is None for j in jobs)  # no dedup group: nothing to hash, nothing sent
    assert len(pickle.dumps(jobs[0])) < 2_000  # its two paths, not the listing's column
    begin, batch = probe_batch(jobs[3])
    assert begin == 5 and batch.column("frames").to_pylist() == [1600, 3200]


def test_a_job_asks_for_hashes_only_where_dedup_needs_them(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(800, np.float32), RATE)
    job = ProbeJob(0, str(tmp_path), pa.array(["x.wav", "x.wav"]), np.array([False, True]))
    _, batch = probe_batch(job)
    assert batch.column("audio_hash").to_pylist()[0] is None
    assert batch.column("audio_hash").to_pylist()[1] == hashlib.sha256(bytes(1600)).hexdigest()


def test_urls_go_to_audio_probe(monkeypatch):
    base = "s3://bucket/prefix"
    seen = []
    monkeypatch.setattr(audio, "probe", lambda path: seen.append(path) or audio.AudioInfo(RATE, 1, 10))
    _, batch = probe_batch(ProbeJob(0, base, pa.array(["a/b.wav"]), None))
    assert seen == ["s3://bucket/prefix/a/b.wav"] and batch.column("frames").to_pylist() == [10]
