"""Descriptor throughput per core against the obvious librosa script, and where YIN's time goes.

Audio: one minute of deterministic synthetic sound (ingest.synth: speech-like and non-speech in turn), as
12 files of 5 s and as 60 windows of 1 s (AVA's shape).
Per core: one process, BLAS/OpenMP pools limited to one thread (scipy.fft uses one worker by default).
Time is the process's CPU time, least of REPEATS rounds in which the compared ways take turns, so that a
busy machine (this one is shared) weighs on all of them alike. Realtime factor = audio s / CPU s.

Naive peer: per clip, one librosa call per descriptor, each computing its own STFT (rms, spectral_centroid,
spectral_bandwidth, spectral_flatness, spectral_rolloff, zero_crossing_rate), the ERB band levels and
flux from one more librosa.stft with a loop over bands, medians over gated frames; with pitch, plus
librosa.yin (f0 only: librosa offers no periodicity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import record

SECONDS, REPEATS = 60.0, 5
STFT = dict(n_fft=1024, hop_length=160, window="hann", center=True, pad_mode="constant")


def _audio(seconds_per_clip: float) -> list[np.ndarray]:
    from ingest.synth import nonspeech, speechlike

    n = int(SECONDS / seconds_per_clip)
    return [speechlike(seconds_per_clip, seed=i) if i % 2 else nonspeech(seconds_per_clip, seed=i)
            for i in range(n)]


def _best(ways: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Least CPU seconds of each way over REPEATS rounds, the ways taking turns within each round."""
    for fn in ways.values():
        fn()  # warm-up: FFT plans, numba compilation on the librosa side
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(REPEATS):
        for name, fn in ways.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return best


def naive(waves: list[np.ndarray], pitch: bool) -> list[dict]:
    import librosa

    from featurestore.descriptors import ERB_EDGES_HZ, LOW_BANDS

    sr, rows = 16000, []
    freqs = librosa.fft_frequencies(sr=sr, n_fft=1024)
    band_of_bin = np.minimum(np.searchsorted(ERB_EDGES_HZ, freqs, side="right") - 1, 31)
    window = librosa.filters.get_window("hann", 1024)
    scale = np.where((freqs == 0) | (freqs == sr / 2), 1.0, 2.0) / (1024 * np.sum(window**2))
    for y in waves:
        rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=160)[0]
        gate = 20 * np.log10(np.maximum(rms, 1e-20)) > -60
        row = {"rms_dbfs": np.median(20 * np.log10(rms[gate]))}
        row["centroid_hz"] = np.median(librosa.feature.spectral_centroid(y=y, sr=sr, **STFT)[0][gate])
        row["spread_hz"] = np.median(librosa.feature.spectral_bandwidth(y=y, sr=sr, **STFT)[0][gate])
        row["flatness"] = np.median(librosa.feature.spectral_flatness(y=y, **STFT)[0][gate])
        rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=0.85, **STFT)[0]
        row["rolloff_hz"] = np.median(rolloff[gate])
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=1024, hop_length=160)[0]
        row["zcr"] = np.median(zcr[gate])
        mag = np.abs(librosa.stft(y, **STFT))
        power, levels = mag**2 * scale[:, None], []
        for b in range(32):
            levels.append(10 * np.log10(np.maximum(power[band_of_bin == b].sum(axis=0), 1e-10)))
        levels = np.array(levels)[:, gate]
        row.update({f"erb_{b + 1:02d}": np.median(v) for b, v in enumerate(levels)})
        row["erb_low_mean"] = np.median(levels[LOW_BANDS].mean(axis=0))
        row["erb_high_mean"] = np.median(levels[~LOW_BANDS].mean(axis=0))
        unit = mag / np.linalg.norm(mag, axis=0, keepdims=True)
        step = np.diff(unit, axis=1) ** 2
        pairs = gate[1:] & gate[:-1]
        fluxes = [np.sqrt(step.sum(axis=0))] + [np.sqrt(step[band_of_bin == b].sum(axis=0)) for b in range(32)]
        for name, flux in zip(["flux"] + [f"flux_erb_{b:02d}" for b in range(1, 33)], fluxes):
            q25, q50, q75 = np.percentile(flux[pairs], [25, 50, 75])
            row[f"{name}_median"], row[f"{name}_iqr"] = q50, q75 - q25
        energy = y.astype(np.float64) ** 2
        row["temporal_centroid_s"] = float(np.sum(np.arange(len(y)) * energy) / energy.sum()) / sr
        if pitch:
            f0 = librosa.yin(y, fmin=27.5, fmax=4186.0, sr=sr, frame_length=2048, hop_length=160)
            row["pitch_midi"] = np.median(librosa.hz_to_midi(f0[gate]))
        rows.append(row)
    return rows


def _yin_profile(waves: list[np.ndarray]) -> dict:
    """CPU milliseconds per minute of audio in each step of the pitch path, on the frames above the gate."""
    from featurestore import descriptors, yin

    counted = [np.flatnonzero(descriptors.frames(w, pitch=False).gate) for w in waves]
    framed = np.concatenate([yin.frames(w, index, descriptors.HOP) for w, index in zip(waves, counted)])
    acf = yin.autocorrelation(framed, 16000)
    d = yin.normalise(framed, acf, 16000)
    steps = _best({
        "framing": lambda: [yin.frames(w, index, descriptors.HOP) for w, index in zip(waves, counted)],
        "cmndf_fft_autocorrelation": lambda: yin.autocorrelation(framed, 16000),
        "cmndf_normalisation": lambda: yin.normalise(framed, acf, 16000),
        "pick_and_refine": lambda: yin.pick(d, 16000)})
    whole = _best({"no_pitch": lambda: descriptors.describe_many(waves, pitch=False),
                   "pitch": lambda: descriptors.describe_many(waves, pitch=True)})
    total = sum(steps.values())
    lo, hi = yin.periods(16000)
    return {"frames": len(framed), "lags": hi - lo + 1,
            "ms_per_audio_minute": {k: round(v * 60_000 / SECONDS, 1) for k, v in steps.items()},
            "fraction_of_yin": {k: round(v / total, 3) for k, v in steps.items()},
            "fraction_in_cmndf": round((steps["cmndf_fft_autocorrelation"] + steps["cmndf_normalisation"]) / total,
                                       3),
            "share_of_describe_with_pitch": round(1 - whole["no_pitch"] / whole["pitch"], 3)}


def _loop(describe: Callable, waves: list[np.ndarray]) -> list[dict]:
    return [describe(w, pitch=False) for w in waves]


def run(work: Path) -> tuple[list[dict], dict]:
    from threadpoolctl import threadpool_limits

    from featurestore.descriptors import describe, describe_many

    records, profile = [], {}
    with threadpool_limits(1):
        for label, seconds in (("5s-files", 5.0), ("1s-windows", 1.0)):
            waves = _audio(seconds)
            for pitch in (False, True):
                t = _best({"ours": partial(describe_many, waves, pitch=pitch), "naive": partial(naive, waves, pitch)})
                records.append(record(f"descriptors/{'pitch' if pitch else 'no-pitch'}/{label}",
                                      "realtime_x_per_core", SECONDS / t["ours"],
                                      "per-descriptor librosa calls" + (" + librosa.yin" if pitch else ""),
                                      SECONDS / t["naive"]))
            t = _best({"describe_many": partial(describe_many, waves, pitch=False),
                       "describe_loop": partial(_loop, describe, waves)})
            profile[f"{label}_no_pitch_realtime_x"] = {k: round(SECONDS / v, 1) for k, v in t.items()}
        profile["yin"] = _yin_profile(_audio(5.0))
    profile["note"] = ("one minute of ingest.synth audio; CPU seconds of one process with one BLAS/FFT thread, "
                       f"least of {REPEATS} alternating rounds; realtime factor = audio s / CPU s")
    return records, profile
