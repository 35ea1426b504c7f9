"""Items' audio, read from the dataset's shards (never from the original files): one shard at a time.

A shard's catalog part gives each clip's member (offset, size) and codec; an item's span is read by a
ranged read (WAV: only the span's bytes, so a 1-s AVA window of a 15-min movie reads 32 KB; FLAC: the
member, decoded once per shard job and sliced).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shards import layout
from shards.catalog import read_part
from shards.diets import member_ranges
from shards.reader import RangeReader, crop_range, decode_crop
from shards.storage import Root

SAMPLES_PER_MS = 16  # 16 kHz shards


class ShardAudio:
    """The clips of one shard of a collection, addressable by key."""

    def __init__(self, root: Root, collection: str, shard: str, reader: RangeReader | None = None):
        part = read_part(root, collection, shard, ["key", "codec", "idx_line", "frames"])
        offset, size = member_ranges(part["idx_line"], part["codec"], where=f"{collection}/{shard}")
        self.url = root.url_of(layout.tar_path(collection, shard))
        if root.is_local:
            self.url = root.path(layout.tar_path(collection, shard))
        self.keys = part["key"].to_pylist()
        self.rows = {k: (c, int(o), int(s), int(f)) for k, c, o, s, f in
                     zip(self.keys, part["codec"].to_pylist(), offset, size, part["frames"].to_pylist())}
        self.reader = reader or RangeReader()
        self._decoded: dict[str, np.ndarray] = {}

    def span(self, key: str, start_ms: int = 0, duration_ms: int | None = None) -> np.ndarray:
        """float32 samples of clip `key` from `start_ms` for `duration_ms` (None: to the end), zero-padded
        where the span runs past the clip's end."""
        codec, offset, size, frames = self.rows[key]
        start = start_ms * SAMPLES_PER_MS
        count = frames - start if duration_ms is None else duration_ms * SAMPLES_PER_MS
        if codec == "wav":
            at, length = crop_range(codec, offset, size, frames, start, count)
            return decode_crop(self.reader.read(self.url, at, length), codec, 0, count)
        if key not in self._decoded:  # FLAC: decode the member once, slice every window of it
            self._decoded = {key: decode_crop(self.reader.read(self.url, offset, size), codec, 0, frames, frames)}
        out = np.zeros(count, np.float32)
        piece = self._decoded[key][start:start + count]
        out[: len(piece)] = piece
        return out

    def waves(self, items: pa.Table) -> list[np.ndarray]:
        """The audio of `items` (columns key, clip, start_ms, duration_ms), in row order: a file item (its key
        is its clip's) is the whole clip, exactly its catalog length; a window item is its span."""
        columns = (items[c].to_pylist() for c in ("key", "clip", "start_ms", "duration_ms"))
        return [self.span(c) if k == c else self.span(c, s, d) for k, c, s, d in zip(*columns)]
