"""Clip keys: `<corpus>__<recording>__<offset_ms:09d>`, ASCII, dot-free and stable across machines."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shards.layout import check_name  # noqa: F401 - re-exported: names and keys share one rule
from shards.shardfile import MAX_KEY

_PATH_SEPARATORS = re.compile(r"[/.]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def recording_id(path: str) -> str:
    """Path under the corpus root without its extension, `/` and `.` mapped to `-`.

    Any other character that is not a letter, digit, `_` or `-` (spaces, non-ASCII, ...) would break the
    space-separated DALI index or the tar's ASCII name field: it becomes `-` too, and an 8-hex hash of
    the original path is appended so that `a b.wav` and `a-b.wav` stay distinct.
    """
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    mapped = _PATH_SEPARATORS.sub("-", stem)
    if _UNSAFE.search(mapped):
        mapped = f"{_UNSAFE.sub('-', mapped)}-{hashlib.sha1(stem.encode()).hexdigest()[:8]}"
    return mapped


def clip_key(corpus: str, path: str, offset_seconds: float) -> str:
    """The key; recordings too long for a tar name keep a prefix plus an 8-hex hash of the full id."""
    offset_ms = int(round(offset_seconds * 1000))
    rec = recording_id(path)
    key = f"{corpus}__{rec}__{offset_ms:09d}"
    if len(key) > MAX_KEY:
        digest = hashlib.sha1(rec.encode()).hexdigest()[:8]
        room = MAX_KEY - len(f"{corpus}____{offset_ms:09d}") - 9
        key = f"{corpus}__{rec[:room]}-{digest}__{offset_ms:09d}"
    return key


def clip_keys(corpus: pa.Array | pa.ChunkedArray, path: pa.Array | pa.ChunkedArray, start: np.ndarray) -> pa.Array:
    """`clip_key` of every (corpus, path, start) row, as Arrow compute over columns (a plan of millions of
    clips builds no Python string per clip); the few rows `clip_key` hashes (unsafe characters, keys too
    long for a tar name) go through `clip_key` itself, so both give the same key (tested)."""
    corpus = pc.cast(corpus, pa.string())
    stem = pc.replace_substring_regex(path, pattern=r"\.[^./]*$", replacement="")
    rec = pc.replace_substring_regex(stem, pattern=r"[/.]", replacement="-")
    offset_ms = np.rint(np.asarray(start, dtype=np.float64) * 1000).astype(np.int64)
    offsets = pc.utf8_lpad(pc.cast(pa.array(offset_ms), pa.string()), width=9, padding="0")
    keys = pc.binary_join_element_wise(corpus, rec, offsets, "__")
    odd = pc.or_(pc.match_substring_regex(rec, _UNSAFE.pattern), pc.greater(pc.utf8_length(keys), MAX_KEY))
    rows = np.flatnonzero(pc.fill_null(odd, False).to_numpy(zero_copy_only=False))
    if len(rows) == 0:
        return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    values = keys.to_pylist()  # rare: only when some recording needs the hashed form
    for i in rows:
        values[i] = clip_key(corpus[int(i)].as_py(), path[int(i)].as_py(), float(start[i]))
    return pa.array(values, type=pa.string())
