"""The shard format: an uncompressed, reproducible WebDataset tar plus its DALI index.

Members are written per clip in sorted extension order with a fixed mtime, uid/gid and mode (webdataset's
`TarWriter`, configured for it), so the same clips give byte-identical tars. The DALI `.idx` (format v1.2,
as NVIDIA's `wds2idx` writes it) is produced while writing, from the offsets we already know, instead of
re-reading the tar.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

IDX_VERSION = "v1.2"
TAR_MTIME = 0  # fixed: reproducible tars
_BLOCK = 512


class _HashingSink:
    """Counts bytes and hashes them on the way to the real file (the tar stream only needs write)."""

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


class TarWriter:
    """Write clips (key -> {ext: bytes}) as one tar through webdataset's own `TarWriter`, fixed so the same
    clips give byte-identical tars (mtime 0, mode 0644, uid/gid 0, empty user/group, USTAR), and collect
    the DALI index as we go from the tar stream's offsets instead of re-reading the tar."""

    def __init__(self, out: IO[bytes]):
        import webdataset  # here, not at the top: it imports torch (7.5 s, ~775 MB), which index readers never need

        self._sink = _HashingSink(out)
        self._writer = webdataset.TarWriter(self._sink, user="", group="", mode=0o644, encoder=False,
                                            mtime=TAR_MTIME, format="USTAR_FORMAT")
        self.idx_lines: list[str] = []
        self.clips = 0

    def write(self, key: str, members: Mapping[str, bytes]) -> str:
        """Append one clip; returns its DALI index line."""
        check_key(key)
        tar = self._writer.tarstream
        parts = []
        for ext in sorted(members):  # webdataset writes members in sorted order too
            start = tar.offset  # the member's 512-byte header starts here, its data one block later
            self._writer.write({"__key__": key, ext: members[ext]})
            parts.append(f"{ext} {start + _BLOCK} {len(members[ext])} {key}.{ext}")
        line = " ".join(parts)
        self.idx_lines.append(line)
        self.clips += 1
        return line

    def close(self) -> tuple[int, str]:
        """Finish the tar; returns (bytes, sha256 hex)."""
        self._writer.close()
        return self._sink.pos, self._sink.sha.hexdigest()

    def index_text(self) -> str:
        return index_text(self.idx_lines)


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
