"""Ingest of 44.1 kHz stereo WAV to 16 kHz shards, one process, against a warm naive per-file path.

Naive peer (the obvious script): `librosa.load(sr=16000, mono=True)` (soxr 'HQ', the same resampler quality
as ours) + `soundfile.write` per clip + `tarfile`. Both produce the same codec; metric is realtime factor
(audio seconds per wall second) in one process on one core.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np

from bench.common import record
from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, write_audio
from ingest.write import clip_pcm
from shards import audio

FILES, SECONDS, RATE = 48, 10.0, 44100


def _corpus(folder: Path) -> list[Path]:
    paths = []
    for i in range(FILES):
        p = folder / f"clip{i:03d}.wav"
        if not p.exists():
            write_audio(p, nonspeech(SECONDS, RATE, seed=i), RATE, channels=2)
        paths.append(p)
    return paths


def naive(paths: list[Path], out: Path, codec: str) -> float:
    import librosa
    import soundfile as sf

    t0 = time.perf_counter()
    with tarfile.open(out, "w") as tar:
        for p in paths:
            y, _ = librosa.load(p, sr=16000, mono=True)
            buf = io.BytesIO()
            sf.write(buf, y, 16000, format=codec.upper(), subtype="PCM_16")
            info = tarfile.TarInfo(f"{p.stem}.{codec}")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    return time.perf_counter() - t0


def ours(src: Path, data: Path, codec: str) -> float:
    shutil.rmtree(data, ignore_errors=True)
    cfg = IngestConfig(data=str(data), workers=0, codec=codec, shard_seconds=1e9)
    t0 = time.perf_counter()
    build_collection([Source("bench", "folder", str(src), domain="nonspeech")], cfg)
    return time.perf_counter() - t0


def profile(paths: list[Path], codec: str) -> dict:
    """Milliseconds per 10-s clip in each step of our path."""
    steps = {"read": 0.0, "downmix+resample": 0.0, "pcm16": 0.0, "encode": 0.0}
    for p in paths:
        t0 = time.perf_counter()
        data, rate = audio.read(p)
        t1 = time.perf_counter()
        mono = audio.to_mono_16k(data, rate)
        t2 = time.perf_counter()
        pcm = audio.to_pcm16(mono)
        t3 = time.perf_counter()
        audio.encode(pcm, codec)
        t4 = time.perf_counter()
        for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            steps[k] += v
    return {k: round(v / len(paths) * 1000, 3) for k, v in steps.items()}


def run(work: Path) -> tuple[list[dict], dict]:
    src = work / "src"
    paths = _corpus(src)
    audio_seconds = FILES * SECONDS
    naive(paths[:4], work / "warm.tar", "flac")  # warm: librosa/numba imports and first-call costs
    ours(src, work / "warm", "flac")
    clip_pcm({"source_path": str(paths[0]), "start": 0.0, "seconds": 10.0, "stored_seconds": 10.0})
    records, profiles = [], {}
    for codec in ("flac", "wav"):
        best_ours = min(ours(src, work / f"data-{codec}", codec) for _ in range(3))
        best_naive = min(naive(paths, work / f"naive.{codec}.tar", codec) for _ in range(3))
        records.append(record(f"ingest/{codec}", "x_realtime_per_core", audio_seconds / best_ours,
                              "librosa.load+soundfile.write+tarfile", audio_seconds / best_naive))
        profiles[codec] = {"ms_per_10s_clip": profile(paths, codec),
                           "total_ms_per_clip": round(best_ours / FILES * 1000, 3)}
    profiles["note"] = "one process (workers=0), 48 x 10-s 44.1 kHz stereo WAV; best of 3"
    return records, profiles


if __name__ == "__main__":
    print(run(Path("bench/work/ingest")), np.__version__)
