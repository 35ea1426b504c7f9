"""Random access to shard members by (offset, size), locally (pread) or over HTTP(S)/S3 (ranged GETs).

A diet reads only its own samples' bytes, and a WAV member only the bytes of its 0.95-s crop: the
canonical 44-byte header puts sample n at byte 44 + 2n. FLAC members are read whole and decoded.
Transient network errors are retried with backoff; a short read is an error, never a short batch.
"""

from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from shards.storage import filesystem

log = logging.getLogger(__name__)

WAV_HEADER = 44
RETRIES = 8  # backoff 0.2, 0.4 ... capped at 4 s: ~17 s of patience, enough for a server restart


class ShortRead(IOError):
    """Fewer bytes came back than the index promised: a truncated shard or stream."""


@dataclass
class RangeReader:
    """Reads byte ranges of shard files; counts what it read (tests and `stream` report it)."""

    bytes_read: int = 0
    requests: int = 0
    _fds: dict = field(default_factory=dict)

    def read(self, url: str, offset: int, size: int) -> bytes:
        self.requests += 1
        if "://" not in url:
            fd = self._fds.get(url)
            if fd is None:
                fd = self._fds[url] = os.open(url, os.O_RDONLY)
            data = os.pread(fd, size, offset)
        else:
            data = self._remote(url, offset, size)
        if len(data) != size:
            raise ShortRead(f"{url}: wanted {size} bytes at {offset}, got {len(data)} (truncated shard?)")
        self.bytes_read += size
        return data

    def _remote(self, url: str, offset: int, size: int) -> bytes:
        fs, path = filesystem(url)
        for attempt in range(RETRIES):
            try:
                return fs.cat_file(path, start=offset, end=offset + size)
            except FileNotFoundError:
                raise  # a missing shard is not transient
            except Exception as err:  # noqa: BLE001 - resets, refusals, 5xx: fsspec backends raise variously
                if attempt == RETRIES - 1:
                    raise OSError(f"{url}: range {offset}+{size} still failing after {RETRIES} tries: {err}") from err
                delay = min(0.2 * 2**attempt, 4.0)
                log.warning("%s: %s; retrying in %.1fs", url, err, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __getstate__(self) -> dict:  # file descriptors do not travel to worker processes
        return {"bytes_read": 0, "requests": 0, "_fds": {}}


def read_crop(reader: RangeReader, url: str, codec: str, offset: int, size: int, samples: int,
              start: int, crop: int) -> np.ndarray:
    """`crop` float32 samples from `start` of a member, zero-padded at the end if the sample is shorter."""
    if codec == "wav":
        count = max(0, min(crop, samples - start))
        raw = reader.read(url, offset + WAV_HEADER + 2 * start, 2 * count)
        pcm = np.frombuffer(raw, dtype="<i2")
    else:
        data = reader.read(url, offset, size)
        pcm, _ = sf.read(io.BytesIO(data), dtype="int16")
        pcm = pcm[start:start + crop]
    out = np.zeros(crop, dtype=np.float32)
    out[: len(pcm)] = pcm * np.float32(1 / 32768)
    return out
