"""Random access to shard members by (offset, size), locally (pread) or over HTTP(S)/S3 (ranged GETs).

A diet reads only its own clips' bytes, and a WAV member only the bytes of its 0.95-s crop: the
canonical 44-byte header puts sample n at byte 44 + 2n. FLAC members are read whole and decoded.
Remote ranges of a batch are fetched concurrently (fsspec `cat_ranges`). Transient failures (connection
errors, timeouts, 5xx) are retried with backoff; a range past the end of a shard is `ShortRead`, and
permission or not-found errors are raised at once: a truncated stream is an error, never a short batch.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from shards.storage import filesystem

log = logging.getLogger(__name__)

WAV_HEADER = 44
RETRIES = 8  # backoff 0.2, 0.4 ... capped at 4 s: ~14 s of patience, enough for a server restart
OPEN_FILES = 64  # local shard files kept open (an LRU): 1,200 shards must not exhaust the fd limit


class ShortRead(IOError):
    """Fewer bytes came back than the index promised: a truncated shard or stream."""


def _permanent(err: BaseException) -> BaseException | None:
    """The error to raise at once (not retry), or None for a transient one."""
    if isinstance(err, (FileNotFoundError, PermissionError, ShortRead)):
        return err
    status = getattr(err, "status", None) or getattr(err, "code", None)
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", status)
        if response.get("Error", {}).get("Code") in ("InvalidRange", "NoSuchKey", "AccessDenied",
                                                     "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            status = status or 400
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        if status == 416:
            return ShortRead(f"range past the end of the shard ({err})")
        return PermissionError(str(err)) if status in (401, 403) else err
    text = str(err)
    if "InvalidRange" in text or "416" in text.split("(")[0]:
        return ShortRead(f"range past the end of the shard ({err})")
    if "AccessDenied" in text or "SignatureDoesNotMatch" in text or "InvalidAccessKeyId" in text:
        return PermissionError(text)
    return None


@dataclass
class RangeReader:
    """Reads byte ranges of shard files; counts what it read (tests and `stream` report it)."""

    bytes_read: int = 0
    requests: int = 0
    _fds: OrderedDict = field(default_factory=OrderedDict)

    def read(self, url: str, offset: int, size: int) -> bytes:
        return self.read_many([(url, offset, size)])[0]

    def read_many(self, ranges: list[tuple[str, int, int]]) -> list[bytes]:
        """The bytes of each (url, offset, size); remote ranges are fetched concurrently."""
        out: list[bytes | None] = [None] * len(ranges)
        remote = [i for i, (url, _, _) in enumerate(ranges) if "://" in url]
        for i, (url, offset, size) in enumerate(ranges):
            if "://" not in url:
                out[i] = os.pread(self._fd(url), size, offset)
        if remote:
            for i, data in zip(remote, self._remote([ranges[i] for i in remote])):
                out[i] = data
        for (url, offset, size), data in zip(ranges, out):
            if data is None or len(data) != size:
                got = 0 if data is None else len(data)
                raise ShortRead(f"{url}: wanted {size} bytes at {offset}, got {got} (truncated shard?)")
        self.requests += len(ranges)
        self.bytes_read += sum(size for _, _, size in ranges)
        return out  # type: ignore[return-value]

    def _fd(self, path: str) -> int:
        fd = self._fds.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            if len(self._fds) >= OPEN_FILES:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[path] = fd  # most recently used last
        return fd

    def _remote(self, ranges: list[tuple[str, int, int]]) -> list[bytes]:
        fs, _ = filesystem(ranges[0][0])
        paths = [filesystem(url)[1] for url, _, _ in ranges]
        starts = [offset for _, offset, _ in ranges]
        ends = [offset + size for _, offset, size in ranges]
        for attempt in range(RETRIES):
            try:
                results = fs.cat_ranges(paths, starts, ends, on_error="return")
                failure = next((r for r in results if isinstance(r, BaseException)), None)
                if failure is None:
                    return results
                raise failure
            except Exception as err:  # noqa: BLE001 - resets, refusals, 5xx: fsspec backends raise variously
                permanent = _permanent(err)
                if permanent is not None:
                    raise permanent from err
                if attempt == RETRIES - 1:
                    raise OSError(f"{ranges[0][0]} (+{len(ranges) - 1} ranges): still failing after "
                                  f"{RETRIES} tries: {err}") from err
                delay = min(0.2 * 2**attempt, 4.0)
                log.warning("%s: %s; retrying in %.1fs", ranges[0][0], err, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:  # file descriptors do not travel to worker processes
        return {"bytes_read": 0, "requests": 0, "_fds": OrderedDict()}


def crop_range(codec: str, offset: int, size: int, frames: int, start: int, crop: int) -> tuple[int, int]:
    """(offset, size) of the bytes a crop needs: just the crop for WAV, the whole member otherwise."""
    if codec == "wav":
        count = max(0, min(crop, frames - start))
        return offset + WAV_HEADER + 2 * start, 2 * count
    return offset, size


def decode_crop(data: bytes, codec: str, start: int, crop: int) -> np.ndarray:
    """`crop` float32 samples from the bytes `crop_range` named, zero-padded at the end."""
    if codec == "wav":
        pcm = np.frombuffer(data, dtype="<i2")
    else:
        pcm, _ = sf.read(io.BytesIO(data), dtype="int16")
        pcm = pcm[start:start + crop]
    out = np.zeros(crop, dtype=np.float32)
    out[: len(pcm)] = pcm * np.float32(1 / 32768)
    return out


def read_crop(reader: RangeReader, url: str, codec: str, offset: int, size: int, frames: int,
              start: int, crop: int) -> np.ndarray:
    """One crop (see `crop_range`, `decode_crop`); loaders fetch a whole batch with `read_many`."""
    return decode_crop(reader.read(url, *crop_range(codec, offset, size, frames, start, crop)), codec, start, crop)
