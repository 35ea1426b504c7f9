"""Loader throughput, one process on one core (torch threads = 1), same shards, against the naive loader.

Naive peer: webdataset over the tars + soundfile decode of each whole clip + a random 0.95-s crop +
torchaudio log-mel per sample (the obvious script). Ours: the sampler's ranged reads (a WAV crop reads
only its 30 KB) + one batched log-mel per 256 crops. Also the DALI loader on CPU (device_id=None).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from bench.common import record
from ingest.config import IngestConfig, Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, speechlike, write_audio
from shards.diets import load_diet, write_diet
from shards.frontend import CROP_SAMPLES, LogMel
from shards.loader import dali_loader, torch_loader
from shards.sampler import LoaderState, Sampler

CLIPS, BATCH = 192, 256


def _shards(work: Path, codec: str) -> str:
    src, data = work / "src", work / f"data-{codec}"
    for i in range(CLIPS):
        p = src / f"c{i:03d}.wav"
        if not p.exists():
            wave = speechlike(10.0, seed=i) if i % 2 else nonspeech(10.0, seed=i)
            write_audio(p, wave, 16000)
    if not (data / "diets" / "all.json").exists():
        build_collection([Source("bench", "folder", str(src), domain="speech")],
                         IngestConfig(data=str(data), workers=0, codec=codec, shard_seconds=600.0))
        write_diet(str(data), "all")
    return str(data)


def naive(data: str, crops: int) -> float:
    import soundfile as sf
    import torch
    import webdataset as wds

    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, f_min=60, f_max=7800, n_mels=64,
        power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk")
    rng = np.random.default_rng(0)
    tars = sorted(str(p) for p in Path(data, "shards", "pretrain").glob("*.tar"))
    t0, done = time.perf_counter(), 0
    while done < crops:
        for sample in wds.WebDataset(tars, shardshuffle=False):
            ext = "flac" if "flac" in sample else "wav"
            wave, _ = sf.read(io.BytesIO(sample[ext]), dtype="float32")
            start = int(rng.integers(0, max(1, len(wave) - CROP_SAMPLES + 1)))
            crop = np.zeros(CROP_SAMPLES, dtype=np.float32)
            piece = wave[start:start + CROP_SAMPLES]
            crop[: len(piece)] = piece
            torch.log(mel(torch.from_numpy(crop)[None]) + 1.1920929e-7)
            done += 1
            if done >= crops:
                break
    return crops / (time.perf_counter() - t0)


def ours(data: str, batches: int, backend: str) -> float:
    table = load_diet(data, "all")
    sampler = Sampler(len(table) * 64, BATCH)  # a virtual epoch long enough to time (indices wrap below)
    table_view = _repeat(table, 64)
    loader = dali_loader(table_view, sampler, LoaderState(), device_id=None, threads=1) if backend == "dali" \
        else iter(torch_loader(table_view, sampler))
    next(loader)  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * BATCH / (time.perf_counter() - t0)


def _repeat(table, times: int):
    from dataclasses import replace

    cols = ("tar_id", "codec_id", "corpus_id", "offset", "size", "frames")
    return replace(table, **{c: np.tile(getattr(table, c), times) for c in cols})


def run(work: Path) -> tuple[list[dict], dict]:
    import torch

    torch.set_num_threads(1)  # per core: one process, one intra-op thread on both sides
    records, profile = [], {}
    for codec in ("wav", "flac"):
        data = _shards(work, codec)
        base = naive(data, 400)
        mine = ours(data, 8, "torch")
        records.append(record(f"loader/{codec}", "crops_per_s_per_core", mine,
                              "webdataset+soundfile+per-sample torchaudio", base))
        dali = ours(data, 8, "dali")
        records.append(record(f"loader-dali-cpu/{codec}", "crops_per_s_per_core", dali,
                              "webdataset+soundfile+per-sample torchaudio", base))
        profile[codec] = _profile(data)
    profile["note"] = f"{CLIPS} x 10-s 16 kHz clips, batch {BATCH}, torch threads 1"
    return records, profile


def _profile(data: str) -> dict:
    """Milliseconds per batch of 256 in each step of the torch loader."""
    from shards.loader import CropWaves

    table = load_diet(data, "all")
    sampler = Sampler(len(table), min(BATCH, len(table)))
    waves = CropWaves(table, sampler, 0)
    indices = sampler.rank_order(0)[:BATCH]
    indices = np.resize(indices, BATCH)
    mel = LogMel()
    mel(waves(indices))  # warm-up: FFT plans, first reads, first-touch of the buffers
    waves.reader.bytes_read = 0
    t0 = time.perf_counter()
    x = waves(indices)
    t1 = time.perf_counter()
    mel(x)
    t2 = time.perf_counter()
    return {"read+decode+crop_ms": round((t1 - t0) * 1000, 2), "logmel_ms": round((t2 - t1) * 1000, 2),
            "bytes_per_crop": waves.reader.bytes_read / BATCH}
