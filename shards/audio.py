"""Audio in and out: probe headers, read regions, downmix, resample to 16 kHz, check, encode.

soundfile (libsndfile) reads WAV, FLAC, OGG/Opus, MP3 and NIST SPHERE with frame-accurate seeking, so a
10-s clip of a 3-hour meeting reads only its own bytes. PyAV is used only for what libsndfile lacks
(m4a/aac, VoxCeleb2). Every failure becomes `BadAudio(reason)`, which the engine quarantines.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from shards.storage import filesystem

SAMPLE_RATE = 16000
RESAMPLE_QUALITY = "HQ"  # soxr 'HQ' = librosa.load's default 'soxr_hq': same quality as the naive path
# The lowest rate of any recording format in real use is 8 kHz (telephony: G.711, GSM, AMR-NB); old Mac
# and Flash audio went down to 5,512 Hz. Below 4 kHz a file could hold nothing above 2 kHz: such a header
# is corrupt, not a recording (a 1 Hz header once turned a 1 KB file into a 490-s sample).
MIN_RATE, MAX_RATE, MAX_CHANNELS = 4_000, 384_000, 64
# How much audio one input may expand to, in seconds per KiB of file. Real audio needs far more bytes: speech
# codecs at their lowest bitrates (AMR-NB 4.75 kbit/s, MP3 8 kbit/s) hold ~1-2 s per KiB, PCM at 4 kHz 8-bit
# mono 0.25 s. The extreme is digital silence in FLAC (libsndfile's default blocks, measured): 7.5 s per KiB
# at 44.1 kHz, 22 at 16 kHz, 81 at 4 kHz. A header claiming more than 256 s per KiB lies about the length
# (one KiB may then become at most 256 s, 8 MB of 16 kHz PCM16).
MAX_SECONDS_PER_KIB = 256.0
PYAV_SUFFIXES = (".m4a", ".aac", ".mp4")
CODECS = ("flac", "wav")


class BadAudio(Exception):
    """An input file that cannot become a clip; `reason` is short and stable (used in reports)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AudioInfo:
    samplerate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate


def _check_header(info: AudioInfo, size: int) -> AudioInfo:
    """The header's facts are plausible for a file of `size` bytes, else BadAudio saying which is not."""
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise BadAudio(f"absurd sample rate {info.samplerate} Hz (expected {MIN_RATE}..{MAX_RATE})")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise BadAudio(f"absurd channel count {info.channels} (expected 1..{MAX_CHANNELS})")
    if info.frames <= 0:
        raise BadAudio("no audio frames")
    if info.seconds > MAX_SECONDS_PER_KIB * size / 1024:
        raise BadAudio(f"implausible length: header declares {info.seconds:.1f} s of audio in {size} bytes "
                       f"(more than {MAX_SECONDS_PER_KIB:g} s per KiB)")
    return info


def _is_url(path: str | Path) -> bool:
    return "://" in str(path)


# What a decoder raises for bad bytes. An OSError (a dropped connection, an I/O error) is *not* bad audio:
# it propagates and fails the shard job, so a re-run retries the clip instead of quarantining it forever.
SNDFILE_ERRORS = (RuntimeError, TypeError, ValueError)
MP3_PREROLL = 4608  # libsndfile's MP3 decoder needs ~2-4k samples of run-up after a seek


def _pyav_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, ValueError, IndexError)


def _decode_error(err: Exception) -> BadAudio:
    return BadAudio(f"not decodable audio: {str(err).splitlines()[0][:160] if str(err) else type(err).__name__}")


def _checked_size(path: str | Path) -> int:
    """Size in bytes of a readable regular file or object; else the reason it cannot be read.

    Local FIFOs, sockets and dangling links are refused before any open (a FIFO would block)."""
    if _is_url(path):
        fs, key = filesystem(str(path))
        try:
            size = int(fs.info(key).get("size") or 0)
        except FileNotFoundError:
            raise BadAudio("unreadable: object missing") from None
        except PermissionError:
            raise BadAudio("unreadable: access denied") from None
    else:
        local = Path(path)
        if not local.exists():
            raise BadAudio("unreadable: file missing or dangling link")
        if not local.is_file():
            raise BadAudio("unreadable: not a regular file")
        if not os.access(local, os.R_OK):
            raise BadAudio("unreadable: permission denied")
        size = local.stat().st_size
    if size == 0:
        raise BadAudio("zero-length file")
    return size


@contextmanager
def _opened(path: str | Path) -> Iterator[Any]:
    """What soundfile/PyAV open: the local path, or a seekable fsspec file (ranged GETs) for a URL."""
    if _is_url(path):
        fs, key = filesystem(str(path))
        with fs.open(key, "rb", block_size=1 << 20) as f:
            yield f
    else:
        yield str(path)


def probe(path: str | Path) -> AudioInfo:
    """Header facts without decoding samples (PyAV formats: decoded frame count via stream metadata)."""
    size = _checked_size(path)
    if Path(str(path)).suffix.lower() in PYAV_SUFFIXES:
        # containers such as ADTS carry no exact length: count the decoded frames (cheap for short clips)
        data, rate = _read_pyav(path)
        return _check_header(AudioInfo(rate, data.shape[1], len(data)), size)
    try:
        with _opened(path) as src:
            with (open(src, "rb") if isinstance(src, str) else nullcontext(src)) as f:
                fast = probe_header(f.read(HEADER_BYTES), size)
            if fast is not None:
                return fast
            info = sf.info(src)
            if info.format == "WAV":
                _check_wav_complete(src, size)
    except SNDFILE_ERRORS as err:
        raise _decode_error(err) from None
    return _check_header(AudioInfo(int(info.samplerate), int(info.channels), int(info.frames)), size)


HEADER_BYTES = 4096  # what the fast path reads: a plain WAV's or FLAC's header fits (else libsndfile probes)
_PLAIN_WAV = {1: (8, 16, 24, 32), 3: (32, 64)}  # WAVE format tag (PCM, IEEE float) -> bit depths


def probe_header(head: bytes, size: int) -> AudioInfo | None:
    """`probe`'s answer from a file's first HEADER_BYTES and its size, when it is a plain WAV or a FLAC with its
    length in STREAMINFO (checked as `probe` checks, BadAudio included); None when `probe` must open the file.
    For callers that already hold those bytes (ingest's planning probes millions of local files)."""
    info = _plain_header(head, size)
    return None if info is None else _check_header(info, size)


def _plain_header(head: bytes, size: int) -> AudioInfo | None:
    """Header facts of a plain PCM/float WAV or a FLAC with its length in STREAMINFO, read from the first
    bytes (~10x faster than `sf.info`, which planning runs once per recording: millions of times); None
    for anything else, which libsndfile then probes. The facts are the ones libsndfile reports."""
    if head[:4] == b"fLaC" and len(head) >= 42 and head[4] & 0x7F == 0:
        bits = int.from_bytes(head[18:26], "big")  # rate 20 | channels-1 3 | bits-1 5 | frames 36
        rate, channels, frames = bits >> 44, ((bits >> 41) & 0x7) + 1, bits & ((1 << 36) - 1)
        return AudioInfo(rate, channels, frames) if rate and frames else None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    at, fmt = 12, None
    while at + 8 <= len(head):
        chunk, length = head[at:at + 4], struct.unpack("<I", head[at + 4:at + 8])[0]
        if chunk == b"fmt " and length >= 16 and at + 24 <= len(head):
            fmt = struct.unpack("<HHIIHH", head[at + 8:at + 24])
        elif chunk == b"data":
            if fmt is None or length == 0xFFFFFFFF:
                return None
            tag, channels, rate, _, block, bits = fmt
            if bits not in _PLAIN_WAV.get(tag, ()) or not rate or not channels or block != channels * bits // 8:
                return None
            held = size - (at + 8)
            if held < length:
                raise BadAudio(f"truncated: header declares {length} bytes of audio, file holds {held}")
            return AudioInfo(rate, channels, length // block)
        at += 8 + length + (length & 1)
    return None


def _check_wav_complete(src: Any, size: int) -> None:
    """libsndfile quietly shortens a truncated WAV to what is there; a short download must not pass."""
    with (open(src, "rb") if isinstance(src, str) else nullcontext(src)) as f:
        f.seek(0)
        if f.read(4) != b"RIFF":
            return
        f.seek(12)
        while True:
            head = f.read(8)
            if len(head) < 8:
                return
            chunk, length = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk == b"data":
                held = size - f.tell()
                if length != 0xFFFFFFFF and held < length:
                    raise BadAudio(f"truncated: header declares {length} bytes of audio, file holds {held}")
                return
            f.seek(length + (length & 1), 1)


def read(path: str | Path, start: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Samples of [start, start+duration) as (frames, channels) float32, or int16 for PCM16 files.

    Local files and URLs alike: soundfile seeks, so a URL costs ranged reads of just the clip's bytes."""
    _checked_size(path)
    if Path(str(path)).suffix.lower() in PYAV_SUFFIXES:
        data, rate = _read_pyav(path)
        first = int(round(start * rate))
        last = None if duration is None else first + int(round(duration * rate))
        return data[first:last], rate
    try:
        with _opened(path) as src, sf.SoundFile(src) as f:
            rate = f.samplerate
            first = int(round(start * rate))
            count = -1 if duration is None else int(round(duration * rate))
            preroll = min(first, MP3_PREROLL) if f.format == "MP3" else 0
            if first:
                f.seek(first - preroll)
            # PCM16 sources: read int16 (half the bytes, no libsndfile float pass); exact, as libsndfile's
            # own float conversion is int/32768.
            dtype = "int16" if f.subtype == "PCM_16" else "float32"
            data = f.read(count if count < 0 else count + preroll, dtype=dtype, always_2d=True)[preroll:]
    except SNDFILE_ERRORS as err:
        raise _decode_error(err) from None
    return data, rate


def _read_pyav(path: str | Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with _opened(path) as src, av.open(src) as container:
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate)
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
            chunks = [plane for frame in container.decode(stream) for plane in resampler.resample(frame)]
            chunks += list(resampler.resample(None))
    except _pyav_errors() as err:
        raise _decode_error(err) from None
    if not chunks:
        raise BadAudio("no audio frames")
    return np.concatenate([c.to_ndarray() for c in chunks], axis=1).T.astype(np.float32), rate


def read_all_pcm16(path: str | Path) -> np.ndarray:
    """The whole file as int16 (frames, channels): what the dedup hash is taken over."""
    data, _ = read(path)
    return data if data.dtype == np.int16 else to_pcm16(data)


def downmix(data: np.ndarray) -> np.ndarray:
    """Mean of the channels as float32 in [-1, 1). Channel-by-channel adds: numpy's mean over a short
    last axis is ~10x slower than this for (frames, 2) arrays."""
    scale = np.float32(1 / 32768) if data.dtype == np.int16 else np.float32(1)
    mono = data[:, 0].astype(np.float32)
    for c in range(1, data.shape[1]):
        mono += data[:, c]
    mono *= scale / np.float32(data.shape[1])
    return mono


def to_mono_16k(data: np.ndarray, rate: int) -> np.ndarray:
    """Downmix then resample with soxr: downmixing first halves the resampler's work."""
    mono = downmix(data)
    if not np.isfinite(mono).all():
        raise BadAudio("non-finite samples (NaN or inf)")
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, RESAMPLE_QUALITY)
    return np.ascontiguousarray(mono, dtype=np.float32)


def to_pcm16(mono: np.ndarray) -> np.ndarray:
    """float -> int16 as x * 32768, rounded and clipped: the inverse of reading int16 as int/32768, so a
    16 kHz mono PCM16 source (LibriSpeech, MUSAN) passes through bit-exactly."""
    return np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)


def fit_length(pcm: np.ndarray, samples: int) -> np.ndarray:
    """Exactly `samples` long: trim resampler overshoot or zero-pad at the end (tail policy 'pad')."""
    if len(pcm) >= samples:
        return pcm[:samples]
    return np.concatenate([pcm, np.zeros(samples - len(pcm), dtype=pcm.dtype)])


def wav_bytes(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A canonical 44-byte-header PCM16 mono WAV: readers can seek to sample n at 44 + 2n."""
    payload = pcm.astype("<i2", copy=False).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(payload))
    return header + payload


def encode(pcm: np.ndarray, codec: str) -> bytes:
    """PCM16 mono 16 kHz as `codec` bytes (flac|wav)."""
    if codec == "wav":
        return wav_bytes(pcm)
    if codec == "flac":
        buf = io.BytesIO()
        sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return buf.getvalue()
    raise ValueError(f"codec={codec!r}, expected one of {CODECS}")


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a shard member (flac/wav) to int16 mono; used by verify and the loaders."""
    pcm, rate = sf.read(io.BytesIO(data), dtype="int16")
    return pcm, rate


def clip_starts(seconds: float, length: float) -> list[float]:
    """Non-overlapping clip starts over `seconds`, tails included (the caller applies the tail policy)."""
    return [i * length for i in range(max(1, math.ceil(seconds / length - 1e-9)))]
