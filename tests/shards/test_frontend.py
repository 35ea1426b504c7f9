"""Front-end parity: torch vs a float64 librosa reference, DALI (CPU) vs torch, on the same crops.

Test signals carry a -40 dB noise floor, as recorded audio does: float32 FFT rounding is ~1e-7 of a
frame's peak, so bins 90+ dB below the peak of a noiseless synthetic tone are rounding noise in any
float32 implementation, not a front-end difference.
"""

import librosa
import numpy as np
import pytest

from ingest.synth import nonspeech, speechlike
from shards.frontend import BYOLA, CROP_SAMPLES, LogMel, dali_power_spectrogram, hann_periodic


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    x = np.stack([speechlike(1.0, seed=1), nonspeech(1.0, seed=2), nonspeech(1.0, seed=3),
                  nonspeech(1.0, seed=4), speechlike(1.0, seed=5)])[:, :CROP_SAMPLES]
    return (x + 3e-3 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)


def librosa_reference(wave: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=wave.astype(np.float64), sr=16000, n_fft=1024, win_length=1024, hop_length=160,
        window=hann_periodic(1024).astype(np.float64), center=True, pad_mode="reflect", power=2.0,
        n_mels=64, fmin=60, fmax=7800, htk=True, norm=None)
    return np.log(mel + BYOLA.eps)


def test_crop_is_64_by_96(crops):
    assert LogMel()(crops).shape == (5, 64, 96) and BYOLA.frames(CROP_SAMPLES) == 96


def test_torch_front_end_matches_float64_librosa_within_1e4(crops):
    ours = LogMel()(crops).numpy()
    reference = np.stack([librosa_reference(w) for w in crops])
    mask = reference > np.log(1e-6)
    assert mask.mean() > 0.9
    assert np.abs(ours - reference)[mask].max() < 1e-4


def _dali_power(crops, **spectrogram):
    import torch
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=len(crops), num_threads=1, device_id=None)
    def pipe():
        audio = fn.external_source(source=lambda: list(crops), batch=True, dtype=types.FLOAT)
        if spectrogram:
            return fn.spectrogram(audio, **spectrogram)
        return dali_power_spectrogram(audio)

    p = pipe()
    p.build()
    return torch.from_numpy(np.stack([np.array(t) for t in p.run()[0]]))


def test_dali_cpu_matches_torch_within_2e4(crops):
    dali = LogMel().from_power(_dali_power(crops)).numpy()
    assert dali.shape == (5, 64, 96)
    assert np.abs(dali - LogMel()(crops).numpy()).max() < 2e-4


def test_dali_own_mel_filter_bank_is_less_exact_on_tones():
    """Why DALI's fn.mel_filter_bank is not used: its float32-built filters put a pure tone on a filter's
    tail ~5e-4 (log) away from the float64-built filters every other path uses."""
    import torch
    from nvidia.dali import fn, pipeline_def, types

    t = np.arange(CROP_SAMPLES) / 16000
    tones = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in np.linspace(500, 7000, 40)]).astype(np.float32)
    power = _dali_power(tones)

    @pipeline_def(batch_size=len(tones), num_threads=1, device_id=None)
    def pipe():
        spec = fn.external_source(source=lambda: [p.numpy() for p in power], batch=True, dtype=types.FLOAT,
                                  layout="ft")
        return fn.mel_filter_bank(spec, sample_rate=16000, nfilter=64, freq_low=60, freq_high=7800,
                                  mel_formula="htk", normalize=False)

    p = pipe()
    p.build()
    dali_mel = torch.log(torch.from_numpy(np.stack([np.array(x) for x in p.run()[0]])) + BYOLA.eps)
    ours = LogMel().from_power(power)
    reference = LogMel()(tones)
    within_40db = reference > reference.amax(dim=1, keepdim=True) - np.log(1e4)
    assert float((ours - reference).abs()[within_40db].max()) < 1e-4
    assert float((dali_mel - reference).abs()[within_40db].max()) > 2e-4


def test_dali_default_window_would_break_parity(crops):
    """Guards the reason for passing torch's window: DALI's own Hann is shifted by half a sample."""
    power = _dali_power(crops, nfft=1024, window_length=1024, window_step=160, center_windows=True,
                        reflect_padding=True, power=2, layout="ft")
    default = LogMel().from_power(power).numpy()
    assert np.abs(default - LogMel()(crops).numpy()).max() > 1e-3


def test_cpu_and_torch_paths_match_torchaudio_melspectrogram(crops):
    """LogMel's CPU (scipy) path and its torch path (what runs on a GPU) are torchaudio's numbers."""
    import torch
    import torchaudio

    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, f_min=60, f_max=7800, n_mels=64,
        window_fn=torch.hann_window, power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk")
    expected = torch.log(reference(torch.from_numpy(crops)) + BYOLA.eps)
    cpu, via_torch = LogMel()(crops), LogMel().torch_path(crops)
    audible = expected > np.log(1e-6)
    for ours in (cpu, via_torch):  # torchaudio builds its filters in float32, ours in float64: ~1e-4 apart
        assert ours.shape == expected.shape == (5, 64, 96)
        assert float((ours - expected).abs()[audible].max()) < 2e-4
    assert float((cpu - via_torch).abs()[audible].max()) < 1e-4  # scipy vs torch FFT rounding


def test_window_is_torchs_periodic_hann():
    import torch

    from shards.frontend import hann_periodic

    n = np.arange(1024)
    exact = (0.5 - 0.5 * np.cos(2 * np.pi * n / 1024)).astype(np.float32)  # the definition, float64 -> float32
    np.testing.assert_array_equal(hann_periodic(1024), exact)
    # torch computes it in float32: within two float32 ulps of 1.0
    np.testing.assert_allclose(hann_periodic(1024), torch.hann_window(1024).numpy(), rtol=0, atol=2.5e-7)
    assert hann_periodic(1024)[0] == 0.0 and hann_periodic(1024)[512] == 1.0  # periodic: peak at n/2, no end zero
