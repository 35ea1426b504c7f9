"""Acoustic descriptors: exact values on synthetic signals, and parity with librosa where both compute the
same thing with the same frames (n_fft 1,024, hop 160, periodic Hann, centred, zero padded)."""

from __future__ import annotations

import math

import librosa
import numpy as np
from librosa.core.pitch import _cumulative_mean_normalized_difference as librosa_cmndf  # 0.11, pinned by uv.lock
import pyarrow as pa
import pytest

from featurestore import descriptors as D
from featurestore import yin

SR = 16000
FRAMES = dict(n_fft=1024, hop_length=160, window="hann", center=True, pad_mode="constant")


def tone(hz: float, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def noise(seconds: float = 2.0, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def voice(seconds: float = 2.0, f0: float = 130.0, seed: int = 1) -> np.ndarray:
    """A harmonic tone (8 partials, 1/k) with vibrato, a syllable envelope and a noise floor."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / SR
    y = sum(np.sin(k * phase + k) / k for k in range(1, 9)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    y = 0.2 * y + 0.003 * np.random.default_rng(seed).standard_normal(len(t))
    return y.astype(np.float32)


SIGNALS = {"voice": voice(), "noise": noise(), "noise+tones": noise(amplitude=0.02) + tone(700, amplitude=0.2)
           + tone(2900, amplitude=0.1)}


# --- names, units, bands ---

def test_keys_are_the_descriptors_in_order():
    d = D.describe(voice(0.5))
    assert list(d) == list(D.DESCRIPTORS)
    assert len(D.DESCRIPTORS) == 1 + 32 + 2 + 4 + 2 + 64 + 4
    assert all(name.isidentifier() and name == name.lower() for name in D.DESCRIPTORS)
    assert all(D.DESCRIPTORS.values())
    assert set(D.PITCH_DESCRIPTORS) == {"pitch_midi", "periodicity"} <= set(D.DESCRIPTORS)
    assert [n for n in D.DESCRIPTORS if n.startswith("erb_0")][:2] == ["erb_01", "erb_02"]
    assert D.DESCRIPTORS["rms_dbfs"] == "dBFS" and D.DESCRIPTORS["pitch_midi"] == "MIDI"


def test_erb_bands_are_equal_steps_of_erb_rate_from_50_to_8000_hz():
    edges = D.ERB_EDGES_HZ
    assert len(edges) == 33 and edges[0] == pytest.approx(50) and edges[-1] == pytest.approx(8000)
    steps = np.diff(D.erb_rate(edges))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-12)
    assert D.erb_rate(1000) == pytest.approx(21.4 * math.log10(5.37))  # Glasberg & Moore 1990
    np.testing.assert_allclose(D.erb_rate_to_hz(D.erb_rate(edges)), edges)
    assert D._BAND_MEMBER.sum(axis=0).min() >= 2  # every band holds FFT bins, the narrowest two
    assert D._BAND_MEMBER.sum(axis=1).max() == 1  # rectangular: a bin in one band at most
    assert D.LOW_BANDS.sum() == 10 and D.ERB_EDGES_HZ[10] < 600 < D.ERB_CENTRES_HZ[10]


# --- exact values ---

def test_sine_at_half_scale_reads_minus_9_03_dbfs_and_its_frequency():
    d = D.describe(tone(1000), pitch=False)
    assert d["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=1e-4)  # -9.0309
    assert d["centroid_hz"] == pytest.approx(1000, abs=0.5)
    assert d["rolloff_hz"] == pytest.approx(1000, abs=16)  # within one bin
    assert d["flux_median"] == pytest.approx(0, abs=1e-5)  # a steady tone does not change
    assert d["temporal_centroid_s"] == pytest.approx((2 * SR - 1) / 2 / SR, abs=1e-3)


def test_a_tone_inside_one_band_puts_all_its_level_there():
    # 1062.5 Hz is bin 68; its Hann main lobe (bins 67-69) lies inside band 15 (997-1134 Hz)
    d = D.describe(tone(1062.5), pitch=False)
    assert 997 < 1062.5 - 15.625 and 1062.5 + 15.625 < 1134
    assert d["erb_15"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert d["erb_14"] < -90 and d["erb_16"] < -90


def test_band_powers_add_up_to_the_hann_weighted_mean_square():
    wave = noise(1.0)
    f = D.frames(wave, pitch=False)
    window = librosa.filters.get_window("hann", 1024, fftbins=True)
    frames = librosa.util.frame(np.pad(wave.astype(np.float64), 512), frame_length=1024, hop_length=160)
    weighted = np.sum((frames * window[:, None]) ** 2, axis=0) / np.sum(window**2)
    # the bands cover 50-8000 Hz; add the 4 bins below 50 Hz (DC once, the others twice: one-sided power)
    below = np.abs(librosa.stft(wave.astype(np.float64), **FRAMES)[:4]) ** 2
    below = (below[0] + 2 * below[1:].sum(axis=0)) / (1024 * np.sum(window**2))
    bands = (10 ** (f.band_db.astype(np.float64) / 10)).sum(axis=1)
    np.testing.assert_allclose(bands + below, weighted, rtol=1e-4)


def test_300_hz_tone_is_louder_below_600_hz_than_above():
    low = D.describe(tone(300), pitch=False)
    high = D.describe(tone(3000), pitch=False)
    assert low["erb_low_mean"] > low["erb_high_mean"] + 20  # -65.0 against -99.8 dBFS
    assert high["erb_high_mean"] > high["erb_low_mean"]  # one band of 22 against the -100 dB floor


def test_yin_pitch_of_440_hz_is_midi_69_and_periodic():
    d = D.describe(tone(440, 1.0))
    assert d["pitch_midi"] == pytest.approx(69.0, abs=0.05)
    assert d["periodicity"] == pytest.approx(1.0, abs=1e-3)


def test_white_noise_is_unvoiced_and_aperiodic():
    d = D.describe(noise(1.0))
    assert math.isnan(d["pitch_midi"])  # no CMNDF trough below 0.1 anywhere
    assert d["periodicity"] < 0.4
    assert not math.isnan(d["rms_dbfs"])


def test_pitch_of_a0_the_lowest_note_is_found():
    # why the difference function is written out (featurestore/yin.py): librosa 0.11 leaves this unvoiced
    d = D.describe(tone(27.5, 1.0))
    assert d["pitch_midi"] == pytest.approx(21.0, abs=0.05)
    assert d["periodicity"] > 0.99
    y = np.pad(tone(27.5, 1.0), yin.FRAME // 2)
    frames = librosa.util.frame(y, frame_length=yin.FRAME, hop_length=160)
    theirs = librosa_cmndf(frames, *yin.periods(SR))
    assert np.median(theirs.min(axis=0)) > yin.THRESHOLD


def test_silence_and_quiet_signals_are_nan():
    for wave in (np.zeros(SR, dtype=np.float32), tone(1000, amplitude=1e-4), np.zeros(0, dtype=np.float32)):
        assert all(math.isnan(v) for v in D.describe(wave).values())


def test_gate_is_at_minus_60_dbfs_frame_rms():
    amplitude = lambda dbfs: math.sqrt(2) * 10 ** (dbfs / 20)  # noqa: E731 - sine amplitude for an RMS level
    above = D.describe(tone(1000, 1.0, amplitude(-59.9)), pitch=False)
    below = D.describe(tone(1000, 1.0, amplitude(-60.1)), pitch=False)
    assert above["rms_dbfs"] == pytest.approx(-59.9, abs=1e-3)
    assert math.isnan(below["rms_dbfs"]) and math.isnan(below["centroid_hz"])


def test_only_frames_above_the_gate_count():
    # 1 s of a loud 1-kHz tone, then 1 s of a 3-kHz tone below the gate: the medians see the first only
    wave = np.concatenate([tone(1000, 1.0), tone(3000, 1.0, 1e-4)])
    f = D.frames(wave, pitch=False)
    assert 0.45 < f.gate.mean() < 0.55
    assert np.isnan(f.centroid_hz[~f.gate]).all()
    d = D.describe(wave, pitch=False)
    assert d["centroid_hz"] == pytest.approx(1000, abs=1)
    assert d["temporal_centroid_s"] < 0.51  # energy-weighted: the quiet second adds nothing


def test_temporal_centroid_is_the_energy_weighted_time():
    wave = noise(3.0, amplitude=0.001)
    wave[SR * 2:SR * 2 + 1600] += noise(0.1, amplitude=0.5, seed=2)  # a burst at 2.00-2.10 s
    energy = wave.astype(np.float64) ** 2
    expected = float(np.sum(np.arange(len(wave)) * energy) / energy.sum()) / SR
    assert D.describe(wave, pitch=False)["temporal_centroid_s"] == pytest.approx(expected, rel=1e-9)
    assert 2.0 < expected < 2.1


# --- spectral flux ---

def test_flux_is_the_distance_between_unit_norm_magnitude_spectra():
    wave = SIGNALS["voice"]
    f = D.frames(wave, pitch=False)
    mag = np.abs(librosa.stft(wave, **FRAMES)).T.astype(np.float64)
    unit = mag / np.linalg.norm(mag, axis=1, keepdims=True)
    expected = np.linalg.norm(np.diff(unit, axis=0), axis=1)
    np.testing.assert_allclose(f.flux[1:, 0], expected, rtol=1e-3, atol=1e-5)
    assert np.isnan(f.flux[0]).all()
    assert (f.flux[1:, 0] <= math.sqrt(2)).all()
    # the bands split the flux above 50 Hz: their squares add up to at most the whole
    parts = (f.flux[1:, 1:].astype(np.float64) ** 2).sum(axis=1)
    whole = f.flux[1:, 0].astype(np.float64) ** 2
    assert (parts <= whole * (1 + 1e-4)).all() and (parts >= 0.9 * whole).all()


def test_band_flux_is_largest_where_the_spectrum_changes():
    # 1 kHz steady, 3 kHz switched on and off every 50 ms: flux lives in the 3-kHz band
    t = np.arange(2 * SR) / SR
    gate = (np.floor(t / 0.05) % 2).astype(np.float32)
    wave = tone(1000, 2.0, 0.3) + gate * tone(3000, 2.0, 0.3) + noise(2.0, 0.001)
    d = D.describe(wave, pitch=False)
    iqr = np.array([d[f"flux_erb_{b:02d}_iqr"] for b in range(1, 33)])
    switched, steady = int(np.argmax(D.ERB_EDGES_HZ > 3000)), int(np.argmax(D.ERB_EDGES_HZ > 1000))  # 1-based
    assert np.argmax(iqr) + 1 == switched
    # the steady tone's band moves too (normalised by the whole spectrum, its share changes); empty bands don't
    assert iqr[steady - 1] > 0.01
    assert np.delete(iqr, [switched - 1, steady - 1, steady - 2, switched - 2, switched]).max() < 0.01
    assert d["flux_iqr"] > 0.05


# --- parity with librosa, frame by frame ---

@pytest.mark.parametrize("name", list(SIGNALS))
def test_framewise_parity_with_librosa(name):
    wave = SIGNALS[name]
    f = D.frames(wave, pitch=False)
    assert f.gate.all()
    mag = np.abs(librosa.stft(wave, **FRAMES))
    np.testing.assert_allclose(f.centroid_hz, librosa.feature.spectral_centroid(S=mag, sr=SR)[0], rtol=1e-5)
    np.testing.assert_allclose(f.spread_hz, librosa.feature.spectral_bandwidth(S=mag, sr=SR, p=2)[0], rtol=1e-4)
    # flatness on power with librosa's amin; bins near the floor carry FFT rounding, hence 1e-3
    np.testing.assert_allclose(f.flatness, librosa.feature.spectral_flatness(S=mag, power=2.0, amin=1e-10)[0],
                               rtol=1e-3)
    theirs = librosa.feature.spectral_rolloff(S=mag, sr=SR, roll_percent=0.85)[0]
    assert np.mean(f.rolloff_hz == theirs) > 0.99 and np.abs(f.rolloff_hz - theirs).max() <= SR / 1024
    np.testing.assert_array_equal(f.zcr, librosa.feature.zero_crossing_rate(wave, frame_length=1024,
                                                                            hop_length=160)[0])
    rms = librosa.feature.rms(y=wave, frame_length=1024, hop_length=160, center=True, pad_mode="constant")[0]
    np.testing.assert_allclose(f.rms_dbfs, 20 * np.log10(rms), atol=1e-4)
    assert len(f.gate) == 1 + len(wave) // 160


def test_medians_are_librosa_medians():
    wave = SIGNALS["voice"]
    d = D.describe(wave, pitch=False)
    mag = np.abs(librosa.stft(wave, **FRAMES))
    assert d["centroid_hz"] == pytest.approx(np.median(librosa.feature.spectral_centroid(S=mag, sr=SR)), rel=1e-5)
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=1024, hop_length=160)
    assert d["zcr"] == pytest.approx(np.median(zcr), rel=1e-12)


def test_yin_choice_and_refinement_are_librosas():
    # librosa's own CMNDF through our trough picking and parabolic refinement gives librosa.yin's f0
    wave = np.concatenate([SIGNALS["voice"], tone(440, 0.5), noise(0.5)])
    expected = librosa.yin(wave, fmin=yin.FMIN_HZ, fmax=yin.FMAX_HZ, sr=SR, frame_length=yin.FRAME,
                           hop_length=160, trough_threshold=yin.THRESHOLD, center=True)
    frames = librosa.util.frame(np.pad(wave, yin.FRAME // 2), frame_length=yin.FRAME, hop_length=160)
    theirs = librosa_cmndf(frames, *yin.periods(SR))
    np.testing.assert_allclose(yin.pick(theirs.T, SR).f0_hz, expected, rtol=1e-6)


def test_yin_difference_function_is_the_sum_written_out():
    y = np.random.default_rng(3).standard_normal((3, yin.FRAME))
    y[0] = np.sin(2 * np.pi * 200 * np.arange(yin.FRAME) / SR)
    lo, hi = yin.periods(SR)
    n = yin.FRAME
    d = np.array([[0.0] + [np.sum((row[:n - k] - row[k:]) ** 2) for k in range(1, hi + 1)] for row in y])
    cumulative = np.cumsum(d[:, 1:], axis=1) / np.arange(1, hi + 1)
    expected = d[:, lo:] / cumulative[:, lo - 1:]
    np.testing.assert_allclose(yin.cmndf(y, SR), expected, rtol=1e-7, atol=1e-9)


def test_yin_f0_agrees_with_librosa_on_voiced_frames():
    wave = SIGNALS["voice"]
    f = D.frames(wave)
    expected = librosa.yin(wave, fmin=yin.FMIN_HZ, fmax=yin.FMAX_HZ, sr=SR, frame_length=yin.FRAME,
                           hop_length=160, trough_threshold=yin.THRESHOLD)
    voiced = f.voiced
    assert voiced.mean() > 0.9
    semitones = 12 * np.abs(np.log2(f.f0_hz[voiced] / expected[voiced]))
    assert np.median(semitones) < 0.02 and np.mean(semitones < 0.1) > 0.95


# --- many clips, options, errors ---

def test_describe_many_matches_describe_and_splits_long_clips(monkeypatch):
    waves = [voice(0.3), np.zeros(800, np.float32), tone(440, 1.0), np.zeros(0, np.float32), voice(3.0, 180.0, 4),
             noise(0.01)]
    one = [D.describe(w) for w in waves]
    monkeypatch.setattr(D, "BLOCK_FRAMES", 64)  # forces the 3-s clip (301 frames) across five blocks
    table = D.describe_many(waves)
    assert table.column_names == list(D.DESCRIPTORS)
    assert table.num_rows == len(waves)
    assert all(t == pa.float64() for t in table.schema.types)
    for i, expected in enumerate(one):
        got = {k: v[i] for k, v in table.to_pydict().items()}
        np.testing.assert_allclose([got[k] for k in D.DESCRIPTORS], [expected[k] for k in D.DESCRIPTORS],
                                   rtol=1e-5, atol=1e-6, err_msg=f"wave {i}")
    assert all(math.isnan(v) for v in table.slice(1, 1).to_pylist()[0].values())


def test_pitch_false_leaves_only_pitch_nan():
    wave = SIGNALS["voice"]
    with_pitch, without = D.describe(wave), D.describe(wave, pitch=False)
    for name in D.DESCRIPTORS:
        if name in D.PITCH_DESCRIPTORS:
            assert math.isnan(without[name]) and not math.isnan(with_pitch[name])
        else:
            assert without[name] == with_pitch[name]


@pytest.mark.parametrize("wave, sr, message", [
    (np.zeros(100, np.float32), 22050, "sr=22050"),
    (np.zeros((2, 100), np.float32), 16000, "shape"),
    (np.array([0.0, np.nan], np.float32), 16000, "NaN"),
])
def test_bad_input_is_refused(wave, sr, message):
    with pytest.raises(ValueError, match=message):
        D.describe(wave, sr=sr)
