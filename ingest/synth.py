"""Deterministic synthetic audio: the demo corpus and every test build their sounds here.

Nothing is downloaded: "speech-like" audio is a glottal pulse train through formant resonators with a
syllable-rate envelope; "non-speech" is coloured noise, chirps and tones. Same seed, same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Voiced pulse train (f0 90-220 Hz with drift) through 3 formants, 4-Hz syllable envelope."""
    rng = _rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = np.cumsum(f0 / sr)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    out = np.zeros(n)
    for formant, bw in ((rng.uniform(300, 800), 80), (rng.uniform(900, 2200), 120), (2800, 200)):
        b, a = signal.iirpeak(formant, formant / bw, fs=sr)
        out += signal.lfilter(b, a, pulses)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, np.pi)))
    out = out * envelope + 0.003 * rng.standard_normal(n)
    return (0.3 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def nonspeech(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """One of: low-passed noise, a chirp, or a harmonic tone, picked by seed."""
    rng = _rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    kind = seed % 3
    if kind == 0:
        b, a = signal.butter(2, rng.uniform(500, 4000), fs=sr)
        out = signal.lfilter(b, a, rng.standard_normal(n))
    elif kind == 1:
        out = signal.chirp(t, f0=rng.uniform(100, 500), t1=max(seconds, 1e-3), f1=rng.uniform(1000, 6000))
    else:
        f = rng.uniform(200, 1000)
        out = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6))
    out = np.asarray(out, dtype=np.float64)
    return (0.3 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def write_audio(path: str | Path, mono: np.ndarray, sr: int, channels: int = 1, subtype: str | None = None,
                format: str | None = None) -> Path:  # noqa: A002 - soundfile's own keyword
    """Write `mono` (duplicated to `channels`, slightly decorrelated) at `sr`; format from the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = mono if channels == 1 else np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1)
    sf.write(str(path), data, sr, subtype=subtype, format=format)
    return path
