"""The BYOL-A front end (SPEC §2), defined once, implemented twice: torch (CPU/GPU) and NVIDIA DALI.

16 kHz, n_fft = win = 1024, hop 160, 64 HTK mel bands 60-7800 Hz with unnormalised filters, power 2,
periodic Hann, centred frames with reflect padding, log(mel + eps), eps = float32 machine epsilon.
A 0.95-s crop (15,200 samples) gives 96 frames. DALI matches torchaudio only with the HTK formula,
`normalize=False` and torch's own periodic Hann passed as the window (its default window is shifted half a
sample); the parity tests hold both to that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CROP_SAMPLES = 15_200  # 0.95 s at 16 kHz -> 96 centred frames at hop 160
EPS = float(np.finfo(np.float32).eps)  # 1.1920929e-07


@dataclass(frozen=True, slots=True)
class FrontEnd:
    sample_rate: int = 16_000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    mel_scale: str = "htk"  # recorded with every checkpoint: normalisation stats do not carry across
    eps: float = EPS

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


BYOLA = FrontEnd()


def hann_periodic(length: int) -> np.ndarray:
    """torch.hann_window(length) (periodic), as float32 numpy: the window both implementations use."""
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / length)).astype(np.float32)


def mel_filters(fe: FrontEnd = BYOLA):
    """torchaudio's HTK filterbank (n_freqs, n_mels), computed in float64."""
    import torch
    import torchaudio

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # melscale_fbanks makes its frequency grid in the default dtype
    try:
        return torchaudio.functional.melscale_fbanks(fe.n_fft // 2 + 1, fe.f_min, fe.f_max, fe.n_mels,
                                                      fe.sample_rate, norm=None, mel_scale=fe.mel_scale)
    finally:
        torch.set_default_dtype(previous)


class TorchLogMel:
    """Batched log-mel on CPU or GPU: (B, samples) float waveforms -> (B, n_mels, frames)."""

    def __init__(self, fe: FrontEnd = BYOLA, device: str = "cpu"):
        import torch
        import torchaudio

        self.fe, self.device = fe, device
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=fe.sample_rate, n_fft=fe.n_fft, win_length=fe.win_length, hop_length=fe.hop_length,
            f_min=fe.f_min, f_max=fe.f_max, n_mels=fe.n_mels, window_fn=torch.hann_window, power=2.0,
            center=True, pad_mode="reflect", norm=None, mel_scale=fe.mel_scale)
        # torchaudio builds the filters in float32; the same function in float64, then rounded once,
        # removes ~1e-4 of log-domain error in quiet bands (parity with a float64 reference).
        self.mel.mel_scale.fb.copy_(mel_filters(fe).to(torch.float32))
        self.mel = self.mel.to(device)
        self._torch = torch

    def __call__(self, waves):
        torch = self._torch
        if not isinstance(waves, torch.Tensor):
            waves = torch.from_numpy(np.ascontiguousarray(waves))
        with torch.no_grad():
            return torch.log(self.mel(waves.to(self.device, torch.float32)) + self.fe.eps)


def dali_logmel(audio, fe: FrontEnd = BYOLA):
    """DALI graph: 1-D float audio node -> (n_mels, frames) log-mel node, on the node's device."""
    from nvidia.dali import fn
    from nvidia.dali import math as dmath

    spec = fn.spectrogram(audio, nfft=fe.n_fft, window_length=fe.win_length, window_step=fe.hop_length,
                          window_fn=hann_periodic(fe.win_length).tolist(), center_windows=True,
                          reflect_padding=True, power=2, layout="ft")
    mel = fn.mel_filter_bank(spec, sample_rate=fe.sample_rate, nfilter=fe.n_mels, freq_low=fe.f_min,
                             freq_high=fe.f_max, mel_formula=fe.mel_scale, normalize=False)
    return dmath.log(mel + fe.eps)
