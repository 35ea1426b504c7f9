"""AVA frame pooling (featurestore.frames) against per-window embedding, on one long synthetic recording.

Audio: SECONDS of deterministic synthetic sound (ingest.synth: 5-s pieces, speech-like and non-speech in
turn), windowed as AVA is: 1-s windows at a 10-ms hop (10 min: 59,901 windows). Model: `byola-v2:random`
at full width (3,072-d), fixed stats, on CPU. Threads: one (torch.set_num_threads(1)) and torch's default.

- per-window (the reference, `StoreModel.embed` of each window's span, batched as the store batches them):
  measured on SAMPLE windows spread evenly over the recording and extrapolated to all of them (its
  windows/s is the sample's; the peer name says so);
- frame pooling: `FramePooler.pool` over the whole recording, every window, with the default edge frames
  (the mode embed stores) and, for comparison, with none (recording rows only: outside the tolerance).
Rates are windows per CPU second at one thread (a busy shared machine stretches wall time, not CPU time)
and per wall second at torch's default threads; both clocks and the load average are in the profile, with
the cosine distances to per-window on the sample. Per-window is timed REPEATS times, the least counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.common import record

SECONDS = 600.0  # the recording (issue 8: a 10-min movie stretch at AVA's 10-ms hop)
SAMPLE = 256  # per-window windows measured (spread evenly), extrapolated to all windows
REPEATS = 3  # per-window timings (the least counts); frame pooling runs once (minutes at one thread)
MODEL = "byola-v2:random"
MEAN, STD = -5.0, 3.0  # fixed normalisation (the stats do not change the cost)


def _recording(seconds: float) -> np.ndarray:
    from ingest.synth import nonspeech, speechlike

    pieces = int(seconds // 5)
    return np.concatenate([speechlike(5.0, seed=i) if i % 2 else nonspeech(5.0, seed=i)
                           for i in range(pieces)]).astype(np.float32)


def _timed(fn, *args) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(work: Path, seconds: float = SECONDS) -> tuple[list[dict], dict]:
    import torch

    from featurestore.frames import EDGE_FRAMES, FramePooler, Recording, cosine_distances
    from featurestore.models import ModelSpec, load
    from shards.storage import Root

    work.mkdir(parents=True, exist_ok=True)
    wave = _recording(seconds)
    windows = (len(wave) - 16_000) // 160 + 1
    starts = np.arange(windows, dtype=np.int64) * 10
    sample = np.linspace(0, windows - 1, min(SAMPLE, windows)).astype(np.int64)
    spans = [wave[16 * s: 16 * s + 16_000] for s in starts[sample]]
    model = load(Root(str(work)), ModelSpec(MODEL, MEAN, STD), "cpu")

    def read(first: int, count: int) -> np.ndarray:
        out = np.zeros(count, np.float32)
        piece = wave[first: first + count]
        out[: len(piece)] = piece
        return out

    recording = Recording(read, len(wave), starts, np.full(windows, 1000, np.int64), np.arange(windows))
    default_threads = torch.get_num_threads()
    records, profile = [], {"seconds": seconds, "windows": windows, "sample": len(sample), "model": MODEL,
                            "width": model.width, "edge_frames": EDGE_FRAMES, "cores": os.cpu_count()}
    peer = f"per-window ({len(sample)} sampled windows, extrapolated)"
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        try:
            model.embed(spans[:8])  # warm-up
            timings = [_timed(model.embed, spans) for _ in range(REPEATS)]
            reference = timings[0][0]
            wall_w, cpu_w = min(t[1] for t in timings), min(t[2] for t in timings)
            runs = {}
            for edges in (EDGE_FRAMES, 0):
                pooled, wall, cpu = _timed(FramePooler(model, edges=edges).pool, [recording], windows)
                distance = cosine_distances(pooled[sample], reference)
                runs[edges] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                               "max_cosine_distance": float(distance.max()),
                               "mean_cosine_distance": float(distance.mean())}
        finally:
            torch.set_num_threads(default_threads)
        # one thread: CPU seconds (a busy shared machine stretches wall time, not CPU time); more: wall
        clock = "cpu_s" if threads == 1 else "wall_s"
        rate_w = len(sample) / (cpu_w if threads == 1 else wall_w)
        for run_ in runs.values():
            run_["windows_per_s"] = windows / run_[clock]
        label = "1 thread" if threads == 1 else f"{threads} threads"
        records.append(record(f"frames/{label}", "windows_per_s", runs[EDGE_FRAMES]["windows_per_s"], peer, rate_w))
        records.append(record(f"frames/{label}/no-edges", "windows_per_s", runs[0]["windows_per_s"], peer, rate_w))
        profile[label] = {"clock": clock, "per_window": {"wall_s": round(wall_w, 2), "cpu_s": round(cpu_w, 2),
                                                         "windows_per_s": rate_w},
                          "frames": runs[EDGE_FRAMES], "no_edges": runs[0], "load_average": os.getloadavg()}
    profile["note"] = ("frame pooling with the default edge frames is what embed stores (within tolerance); "
                       "no-edges (recording rows only) is faster but outside the tolerance (featurestore/frames.py)")
    return records, profile
