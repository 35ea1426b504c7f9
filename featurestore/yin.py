"""YIN pitch (de Cheveigné & Kawahara 2002) on chosen frames, with the CMNDF minimum for periodicity.

Why not call `librosa.yin` (0.11): it returns f0 only, and the periodicity descriptor needs the minimum of
the cumulative mean normalised difference function (CMNDF) it throws away; it analyses every frame, while
the descriptors need only frames above the level gate; and its difference function 2·(r(0) − r(τ)) −
Σ_{m<τ} y_m² leaves out the energy of the frame's last τ samples, so a pure tone's CMNDF never reaches 0.
Measured (2-s sines, median over frames): librosa's CMNDF minimum is 0.15 at 27.5 Hz and 0.14 at 30 Hz,
above the 0.1 threshold, so A0 (NSynth's lowest notes) comes out unvoiced; 1 − min is 0.96 at 100 Hz and
0.989 at 440 Hz; a 55-Hz tone reads 33.07 MIDI instead of 33.00. With the term restored (the exact
d(τ) = Σ_{m<N−τ} (y_m − y_{m+τ})² over the whole frame, librosa's own choice of a shrinking window) every
sine from 27.5 to 3,000 Hz is voiced, 1 − min is 1.000 and 55 Hz reads 33.000. Everything after the
difference function is librosa's, step for step (cumulative-mean normalisation, "first trough below the
threshold, else the global minimum", parabolic refinement); the tests feed librosa's own CMNDF to `pick`
and get `librosa.yin`'s f0 back, and check `cmndf` against the sum written out.

The autocorrelation FFT is `next_fast_len(FRAME + max lag, real=True)` = 2,700 points, the shortest fast
size that is still linear (not circular) for every lag used, where librosa pads to 2·FRAME − 1 = 4,095
(rfft of 2,048 rows: 23 ms at 2,700 points, 40 ms at 4,096).

Frame length: at 16 kHz the period of 27.5 Hz (A0) is 582 samples; FRAME = 2,048 (128 ms) holds two
periods plus room (librosa refuses fewer than one and warns below two). Frames are centred like the
1,024-sample spectral frames (zero padding of FRAME // 2), so YIN frame t and spectral frame t share a centre.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

log = logging.getLogger(__name__)

FMIN_HZ = 27.5  # A0, the lowest piano key
FMAX_HZ = 4186.0  # C8, the highest piano key
THRESHOLD = 0.1  # YIN's absolute threshold on the CMNDF (the paper's and librosa's default)
FRAME = 2048  # samples; two periods of FMIN_HZ at 16 kHz are 1,164


@dataclass(frozen=True, slots=True)
class Pitch:
    """Per analysed frame: librosa.yin's f0 (Hz), whether a trough fell below THRESHOLD, min CMNDF."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    cmndf_min: np.ndarray


def periods(sr: int) -> tuple[int, int]:
    """The lag range in samples, as librosa.yin rounds it: floor(sr / fmax) .. ceil(sr / fmin)."""
    return int(math.floor(sr / FMAX_HZ)), min(int(math.ceil(sr / FMIN_HZ)), FRAME - 1)


def frame_view(wave: np.ndarray, hop: int) -> np.ndarray:
    """All FRAME-sample frames centred on samples t * hop (zero padded), as a strided view (no copy)."""
    return np.lib.stride_tricks.sliding_window_view(np.pad(wave, FRAME // 2), FRAME)[::hop]


def frames(wave: np.ndarray, index: np.ndarray, hop: int) -> np.ndarray:
    """The frames centred on samples index * hop, as a (len(index), FRAME) copy."""
    return frame_view(wave, hop)[np.asarray(index)]


def autocorrelation(y: np.ndarray, sr: int) -> np.ndarray:
    """r(τ) = Σ_m y_m·y_{m+τ} for τ = 0..max period, each row of `y`, by FFT."""
    max_period = periods(sr)[1]
    n_fft = scipy.fft.next_fast_len(y.shape[1] + max_period, real=True)
    power = np.abs(scipy.fft.rfft(y, n=n_fft, axis=1))
    power *= power  # |X|^2 via abs: 5 ms against 11 ms for re^2 + im^2 on strided views (2,048 frames)
    return scipy.fft.irfft(power, n=n_fft, axis=1)[:, : max_period + 1]


def normalise(y: np.ndarray, acf: np.ndarray, sr: int) -> np.ndarray:
    """CMNDF over lags min..max period from the frames and their autocorrelation."""
    min_period, max_period = periods(sr)
    square = y * y
    # column k-1: energy of the first k plus the last k samples (one running sum instead of two)
    edges = np.cumsum(square[:, :max_period] + square[:, :-max_period - 1:-1], axis=1)
    diff = 2 * (acf[:, :1] - acf[:, 1:]) - edges  # lags 1..max_period
    np.maximum(diff, 0, out=diff)  # a sum of squares; float32 rounding leaves about -1e-6 r(0) at a period
    mean = np.cumsum(diff, axis=1) / np.arange(1, max_period + 1, dtype=diff.dtype)
    return diff[:, min_period - 1:] / (mean[:, min_period - 1:] + np.finfo(diff.dtype).tiny)


def cmndf(y: np.ndarray, sr: int) -> np.ndarray:
    """CMNDF over lags min..max period for each row of `y` (n, FRAME), in y's precision (float32 here)."""
    return normalise(y, autocorrelation(y, sr), sr)


def pick(d: np.ndarray, sr: int) -> Pitch:
    """librosa.yin's choice of period per row of a CMNDF matrix, refined by parabolic interpolation."""
    min_period, _ = periods(sr)
    n = d.shape[1]
    trough = np.empty(d.shape, dtype=bool)
    trough[:, 1:-1] = (d[:, 1:-1] < d[:, :-2]) & (d[:, 1:-1] <= d[:, 2:])
    trough[:, 0] = d[:, 0] < d[:, 1]
    trough[:, -1] = d[:, -1] < d[:, -2]
    below = trough & (d < THRESHOLD)
    voiced = below.any(axis=1)
    lowest = d.argmin(axis=1)
    idx = np.where(voiced, below.argmax(axis=1), lowest)
    rows = np.arange(len(d))
    inner = np.clip(idx, 1, n - 2)
    left, mid, right = d[rows, inner - 1], d[rows, inner], d[rows, inner + 1]
    a = right + left - 2 * mid
    b = (right - left) / 2
    shift = np.divide(-b, a, out=np.zeros_like(a), where=np.abs(b) < np.abs(a))
    shift[(idx == 0) | (idx == n - 1)] = 0  # librosa's stencil leaves the ends unrefined
    f0 = sr / (min_period + idx + shift.astype(np.float64))
    return Pitch(f0_hz=f0, voiced=voiced, cmndf_min=d[rows, lowest].astype(np.float64))


def yin(y: np.ndarray, sr: int) -> Pitch:
    """YIN on each row of `y` (n, FRAME)."""
    if y.ndim != 2 or y.shape[1] != FRAME:
        raise ValueError(f"yin: frames of shape {y.shape}, expected (n, {FRAME})")
    if len(y) == 0:
        empty = np.zeros(0)
        return Pitch(f0_hz=empty, voiced=np.zeros(0, dtype=bool), cmndf_min=empty)
    return pick(cmndf(y, sr), sr)
