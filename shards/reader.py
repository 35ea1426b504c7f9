"""Random access to shard members by (offset, size), locally (pread) or over HTTP(S)/S3 (ranged GETs).

A diet reads only its own clips' bytes, and a WAV member only the bytes of its 0.95-s crop: the
canonical 44-byte header puts sample n at byte 44 + 2n. FLAC members are read whole and decoded.
Remote ranges of a batch are fetched concurrently (fsspec `cat_ranges`). Transient failures (connection
errors, timeouts, 429, 5xx) are retried with backoff (`shards.config.RemoteConfig`); a range past the end
of a shard is `ShortRead`, and permission or not-found errors are raised at once: a truncated stream is
an error, never a short batch. Every clip read is checked cheaply against the index (`check_member_head`:
its tar header and WAV header), so a damaged or swapped shard raises `DamagedShard` instead of streaming
wrong audio.
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

from shards.config import DEFAULT_LOADER, DEFAULT_REMOTE, RemoteConfig
from shards.storage import filesystem

log = logging.getLogger(__name__)

WAV_HEADER = 44  # the canonical header ingest writes: RIFF, fmt (PCM 16-bit mono 16 kHz), data
TAR_HEADER = 512  # the USTAR header right before every member's data
MEMBER_HEAD = TAR_HEADER + WAV_HEADER  # what `member_head_range` reads: both headers, ~0.5 KB


class ShortRead(IOError):
    """Fewer bytes came back than the index promised: a truncated shard or stream."""


class DamagedShard(ValueError):
    """A member's bytes do not match the index (zero-filled, overwritten or swapped shard)."""


def _status(err: BaseException) -> int | None:
    """The HTTP status behind a remote error: botocore's ClientError (also as the cause of the OSError
    s3fs raises), aiohttp's ClientResponseError (fsspec's HTTP filesystem), found by type, not by text."""
    from botocore.exceptions import ClientError

    try:
        from aiohttp import ClientResponseError
    except ImportError:  # pragma: no cover - aiohttp comes with fsspec[http]/s3fs
        ClientResponseError = ()  # noqa: N806
    seen = err
    for _ in range(4):  # the error and its causes
        if isinstance(seen, ClientError):
            return seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if ClientResponseError and isinstance(seen, ClientResponseError):
            return seen.status
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            return None
    return None


def permanent(err: BaseException) -> BaseException | None:
    """The error to raise at once (not retry), or None for a transient one (connection errors, timeouts,
    429, 5xx). Decided by exception type and HTTP status."""
    if isinstance(err, (FileNotFoundError, PermissionError, ShortRead, IsADirectoryError)):
        return err
    status = _status(err)
    if status == 416:
        return ShortRead(f"range past the end of the shard ({err})")
    if status in (401, 403):
        return PermissionError(str(err))
    if status == 404:
        return FileNotFoundError(str(err))
    if status is not None and 400 <= status < 500 and status != 429:
        return err
    return None


@dataclass
class RangeReader:
    """Reads byte ranges of shard files; counts what it read (tests and `stream` report it)."""

    remote: RemoteConfig = DEFAULT_REMOTE
    open_files: int = DEFAULT_LOADER.open_files
    bytes_read: int = 0
    requests: int = 0
    _fds: OrderedDict = field(default_factory=OrderedDict)
    _sizes: dict = field(default_factory=dict)

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

    def size(self, url: str) -> int:
        """Bytes of the shard at `url` (fstat locally, one HEAD remotely), remembered per reader."""
        if url not in self._sizes:
            if "://" in url:
                fs, path = filesystem(url, self.remote)
                self._sizes[url] = self._retrying(url, lambda: fs.size(path))
            else:
                self._sizes[url] = os.fstat(self._fd(url)).st_size
        return self._sizes[url]

    def _fd(self, path: str) -> int:
        fd = self._fds.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            if len(self._fds) >= self.open_files:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[path] = fd  # most recently used last
        return fd

    def _remote(self, ranges: list[tuple[str, int, int]]) -> list[bytes]:
        fs, _ = filesystem(ranges[0][0], self.remote)
        paths = [filesystem(url, self.remote)[1] for url, _, _ in ranges]
        starts = [offset for _, offset, _ in ranges]
        ends = [offset + size for _, offset, size in ranges]

        def fetch() -> list[bytes]:
            results = fs.cat_ranges(paths, starts, ends, on_error="return")
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                raise failure
            return results

        return self._retrying(f"{ranges[0][0]} (+{len(ranges) - 1} ranges)", fetch)

    def _retrying(self, what: str, call):
        """call(), retried with backoff on transient errors (see `permanent`), at most remote.retries times."""
        cfg, attempt = self.remote, 1
        while True:
            try:
                return call()
            except Exception as err:  # noqa: BLE001 - classified just below by type and status
                fatal = permanent(err)
                if fatal is not None:
                    raise fatal from err
                if attempt >= cfg.retries:
                    raise OSError(f"{what}: still failing after {cfg.retries} tries: {err}") from err
                delay = min(cfg.backoff_s * 2 ** (attempt - 1), cfg.backoff_cap_s)
                log.warning("%s: %s; retrying in %.1fs", what, err, delay)
                time.sleep(delay)
                attempt += 1

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:  # file descriptors do not travel to worker processes
        return {"remote": self.remote, "open_files": self.open_files, "bytes_read": 0, "requests": 0,
                "_fds": OrderedDict(), "_sizes": {}}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)


def crop_range(codec: str, offset: int, size: int, frames: int, start: int, crop: int) -> tuple[int, int]:
    """(offset, size) of the bytes a crop needs: just the crop for WAV, the whole member otherwise."""
    if codec == "wav":
        count = max(0, min(crop, frames - start))
        return offset + WAV_HEADER + 2 * start, 2 * count
    return offset, size


def member_head_range(offset: int) -> tuple[int, int]:
    """(offset, size) of a member's tar header and the first bytes of its data (the WAV header)."""
    return offset - TAR_HEADER, MEMBER_HEAD


def _octal(field: bytes) -> int | None:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    try:
        return int(text, 8) if text else None
    except ValueError:
        return None


def wav_header_problem(data: bytes, frames: int, size: int) -> str | None:
    """Why `data` (a WAV member's first 44 bytes or more, `size` bytes in all) is not the canonical header
    of 16-bit mono 16 kHz PCM holding exactly `frames` frames (None: it is)."""
    if data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt " or data[36:40] != b"data":
        return "not a canonical WAV header"
    fmt = np.frombuffer(data[20:36], dtype="<u2")
    if fmt[0] != 1 or fmt[1] != 1 or int.from_bytes(data[24:28], "little") != 16000 or fmt[7] != 16:
        return "not 16-bit mono 16 kHz PCM"
    length = int.from_bytes(data[40:44], "little")
    if length != 2 * frames or size != WAV_HEADER + length:
        return f"WAV data holds {length // 2} frames in {size} bytes, the catalog says {frames} frames"
    return None


def check_member_head(head: bytes, codec: str, size: int, frames: int) -> str | None:
    """Why the bytes `member_head_range` named are not the member the index promises (None: they are).

    The tar header must be a valid USTAR header (checksum) of a regular `<key>.<codec>` file of `size`
    bytes; a WAV member must start with the canonical 44-byte header of 16-bit mono 16 kHz PCM holding
    exactly `frames` frames; a FLAC member with `fLaC`. Cheap: ~0.5 KB per clip read."""
    tar, data = head[:TAR_HEADER], head[TAR_HEADER:]
    stored = _octal(tar[148:156])
    if stored is None or stored != sum(tar[:148]) + 8 * 32 + sum(tar[156:]):
        return "no tar header before the member (bad checksum)"
    name = tar[:100].split(b"\0", 1)[0].decode("ascii", "replace")
    if not name.endswith(f".{codec}") or tar[156:157] not in (b"0", b"\0"):
        return f"tar member here is {name!r}, not a .{codec} file"
    if _octal(tar[124:136]) != size:
        return f"tar member {name!r} holds {_octal(tar[124:136])} bytes, the index says {size}"
    if codec == "wav":
        problem = wav_header_problem(data, frames, size)
        if problem is not None:
            return f"{name}: {problem}"
    elif codec == "flac" and data[:4] != b"fLaC":
        return f"{name}: not a FLAC stream"
    return None


def decode_crop(data: bytes, codec: str, start: int, crop: int, frames: int | None = None) -> np.ndarray:
    """`crop` float32 samples from the bytes `crop_range` named, zero-padded at the end. For whole FLAC
    members, `frames` (the catalog's length) is checked against the decoded length."""
    if codec == "wav":
        pcm = np.frombuffer(data, dtype="<i2")
    else:
        pcm, _ = sf.read(io.BytesIO(data), dtype="int16")
        if frames is not None and len(pcm) != frames:
            raise DamagedShard(f"FLAC member decodes to {len(pcm)} frames, the catalog says {frames}")
        pcm = pcm[start:start + crop]
    out = np.zeros(crop, dtype=np.float32)
    out[: len(pcm)] = pcm * np.float32(1 / 32768)
    return out
