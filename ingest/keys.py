"""Clip keys: `<corpus>__<recording>__<offset_ms:09d>`, ASCII, dot-free and stable across machines."""

from __future__ import annotations

import hashlib
import re

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
