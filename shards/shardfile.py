"""The shard format: an uncompressed, reproducible WebDataset tar plus its DALI index.

Members are written per sample in sorted extension order with a fixed mtime, uid/gid and mode, so the
same samples give byte-identical tars. The DALI `.idx` (format v1.2, as NVIDIA's `wds2idx` writes it)
is produced while writing, from the offsets we already know, instead of re-reading the tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

IDX_VERSION = "v1.2"
TAR_MTIME = 0  # fixed: reproducible tars
_BLOCK = 512


class _HashingSink:
    """Counts bytes and hashes them on the way to the real file (tarfile only needs write/tell)."""

    def __init__(self, out: IO[bytes]):
        self.out, self.sha = out, hashlib.sha256()
        self.pos = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.out.write(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos


MAX_KEY = 95  # USTAR's 100-char name field minus ".flac": no long-name headers, which wds2idx mis-indexes


_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def check_key(key: str) -> str:
    """Keys are ASCII letters, digits, '_' and '-': no '.' or '/' (webdataset splits there), no spaces (the
    DALI index is space-separated), and at most MAX_KEY bytes (USTAR names hold 100)."""
    if not _KEY.match(key) or len(key) > MAX_KEY:
        raise ValueError(f"sample key {key!r} must be 1..{MAX_KEY} of [A-Za-z0-9_-]")
    return key


def sample_json(row: Mapping[str, Any]) -> bytes:
    """The `<key>.json` member: the catalog row, keys sorted, compact, UTF-8."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class TarWriter:
    """Write samples (key -> {ext: bytes}) to `out`; `idx_lines` collects the DALI index as we go."""

    out: IO[bytes]
    idx_lines: list[str] = field(default_factory=list)
    clips: int = 0
    _sink: _HashingSink = field(init=False)
    _tar: tarfile.TarFile = field(init=False)

    def __post_init__(self) -> None:
        self._sink = _HashingSink(self.out)
        self._tar = tarfile.open(fileobj=self._sink, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, key: str, members: Mapping[str, bytes]) -> str:
        """Append one sample; returns its DALI index line."""
        check_key(key)
        parts = []
        for ext in sorted(members):
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
            data_offset = self._tar.offset - _padded(len(data))
            parts.append(f"{ext} {data_offset} {len(data)} {info.name}")
        line = " ".join(parts)
        self.idx_lines.append(line)
        self.clips += 1
        return line

    def close(self) -> tuple[int, str]:
        """Finish the tar; returns (bytes, sha256 hex)."""
        self._tar.close()
        return self._sink.pos, self._sink.sha.hexdigest()

    def index_text(self) -> str:
        return index_text(self.idx_lines)


def _padded(size: int) -> int:
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def index_text(lines: Iterable[str]) -> str:
    """A DALI webdataset index: `v1.2 <n>` then one line per sample (a subset is allowed)."""
    lines = list(lines)
    return f"{IDX_VERSION} {len(lines)}\n" + "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    key: str
    members: dict[str, tuple[int, int]]  # ext -> (offset, size)


def parse_index(text: str) -> list[IndexEntry]:
    """Parse a v1.2 index back into entries (readers use this for ranged reads)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith(IDX_VERSION + " "):
        raise ValueError(f"not a DALI {IDX_VERSION} index: first line {lines[:1]!r}")
    count = int(lines[0].split()[1])
    entries = []
    for line in lines[1:]:
        fields = line.split()
        members, key = {}, None
        for i in range(0, len(fields), 4):
            ext, offset, size, name = fields[i:i + 4]
            members[ext] = (int(offset), int(size))
            key = name[: -(len(ext) + 1)] if key is None else key
        entries.append(IndexEntry(key=key or "", members=members))
    if len(entries) != count:
        raise ValueError(f"index header says {count} clips, found {len(entries)} lines")
    return entries
