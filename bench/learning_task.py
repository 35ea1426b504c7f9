"""The learning bench's synthetic task: four classes that differ only in the direction of their
spectro-temporal modulation, with everything a level meter or a centroid could read randomised.

Every clip is white noise whose STFT magnitude is multiplied by a ripple 1 + m sin(2 pi (w t + W x) + phi)
(t in seconds, x in octaves above the band's lower edge), then band-limited. The class fixes which way the
ripple's crests run in the (time, log-frequency) plane; the magnitudes do not:

- `temporal`: W = 0, the whole band pulses at w Hz (amplitude modulation only);
- `spectral`: w = 0, a static comb of W peaks per octave (spectral modulation only);
- `down`: w, W > 0, crests glide down in frequency; `up`: w > 0, W < 0, crests glide up.

Nuisances, drawn per clip: rate w ~ U(3, 12) Hz, density |W| ~ U(0.5, 2) cycles/octave, depth m ~ U(0.8, 1),
phase phi, band lower edge 100-1000 Hz (log-uniform) and width 2-4 octaves (so the spectral centroid moves
over ~3 octaves whatever the class), level +-20 dB and white noise at 10-30 dB SNR. A clip's level and
centroid therefore carry no class information (the bench measures that), and a classifier must read the
modulation pattern. Crest direction survives BYOL-A's augmentations (a time or frequency stretch changes a
ripple's rate or density, never its direction), so pre-training on unlabelled clips of the same generator
has something to learn that a random network does not already give away.

Why this task (measured, 2-s clips, logistic regression on standardised features, 2/3 : 1/3 splits): the
first try, a moving ripple in four classes {4, 16 Hz} x {0.5, 2 cycles/octave}, was too easy (random-init
tiny 87.5-92.5 %); amplitude-modulation rate alone (3/5/8/12 Hz on a random noise band) was too hard for
both (random-init 26-36 %, pre-trained 30 % after 300 steps, one seed), and rate is what the time-stretching
crops blur. On this generator, with the bench's settings: level + centroid 26 % (chance 25 %), random-init
tiny 51-64 %, pre-trained tiny 67-87 % (bench/learning_bench.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import istft, stft

SR = 16_000
CLASSES = ("temporal", "spectral", "down", "up")
# (temporal rate sign, spectral density sign) per class, in CLASSES order
_SIGNS = ((1, 0), (0, 1), (1, 1), (1, -1))
NPERSEG = 512  # STFT of the carrier: 32 ms windows, hop 8 ms (a 12-Hz ripple gets ~10 hops per cycle)
LEVEL_RMS = 0.01  # -40 dBFS: +20 dB and a crest factor of 10 still fit in 16-bit WAV


@dataclass(frozen=True, slots=True)
class TaskConfig:
    seconds: float = 2.0  # clip length: two 0.95-s training crops' worth and then some
    rate_hz: tuple[float, float] = (3.0, 12.0)  # |w|: the syllable-to-flutter range of natural sounds
    density_cpo: tuple[float, float] = (0.5, 2.0)  # |W|, cycles per octave: broad to fine spectral combs
    depth: tuple[float, float] = (0.8, 1.0)  # ripple depth m
    band_low_hz: tuple[float, float] = (100.0, 1000.0)  # lower band edge, log-uniform
    band_octaves: tuple[float, float] = (2.0, 4.0)  # band width (capped at 7.8 kHz, the front end's top)
    level_db: tuple[float, float] = (-20.0, 20.0)  # around LEVEL_RMS (-40 dBFS): peaks stay below full scale
    snr_db: tuple[float, float] = (10.0, 30.0)  # white noise added over the whole spectrum

    def to_dict(self) -> dict:
        return asdict(self)


def clip(label: int, rng: np.random.Generator, cfg: TaskConfig = TaskConfig()) -> np.ndarray:
    """One float32 16-kHz clip of class `label` (an index into CLASSES), drawn from `rng`."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label={label}, expected 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    n = int(round(cfg.seconds * SR))
    low = float(np.exp(rng.uniform(*np.log(cfg.band_low_hz))))
    high = min(low * 2 ** rng.uniform(*cfg.band_octaves), 7800.0)
    time_sign, freq_sign = _SIGNS[label]
    rate = time_sign * rng.uniform(*cfg.rate_hz)
    density = freq_sign * rng.uniform(*cfg.density_cpo)
    depth = rng.uniform(*cfg.depth)
    phase = rng.uniform(0, 2 * np.pi)
    freqs, times, spec = stft(rng.standard_normal(n), fs=SR, nperseg=NPERSEG, noverlap=NPERSEG - NPERSEG // 4)
    octaves = np.log2(np.maximum(freqs, 1.0) / low)[:, None]
    ripple = 1 + depth * np.sin(2 * np.pi * (rate * times[None] + density * octaves) + phase)
    ripple *= ((freqs >= low) & (freqs <= high))[:, None]
    _, wave = istft(spec * ripple, fs=SR, nperseg=NPERSEG, noverlap=NPERSEG - NPERSEG // 4)
    wave = wave[:n] / (wave[:n].std() + 1e-12)
    wave = wave + rng.standard_normal(n) * 10 ** (-rng.uniform(*cfg.snr_db) / 20)
    wave *= LEVEL_RMS / wave.std() * 10 ** (rng.uniform(*cfg.level_db) / 20)
    return wave.astype(np.float32)


def clips(count: int, seed: int, cfg: TaskConfig = TaskConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(waves (count, samples) float32, labels (count,)): classes in turn, clip i drawn from seed [seed, i],
    so any prefix of a larger set is the smaller set."""
    labels = np.arange(count) % len(CLASSES)
    if count < 1:
        raise ValueError(f"count={count}, expected 1 or more")
    return np.stack([clip(int(k), np.random.default_rng([seed, i]), cfg) for i, k in enumerate(labels)]), labels


def level_and_centroid(waves: np.ndarray) -> np.ndarray:
    """(n, 2): RMS level in dB and spectral centroid in Hz (power-weighted mean frequency of the whole clip):
    the two numbers the task must not let a classifier use."""
    power = np.abs(np.fft.rfft(waves.astype(np.float64), axis=1)) ** 2
    freqs = np.fft.rfftfreq(waves.shape[1], 1 / SR)
    centroid = (power * freqs).sum(1) / np.maximum(power.sum(1), 1e-30)
    rms = np.sqrt(np.mean(waves.astype(np.float64) ** 2, axis=1))
    return np.stack([20 * np.log10(np.maximum(rms, 1e-12)), centroid], axis=1)
