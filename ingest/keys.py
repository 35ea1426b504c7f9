"""Clip keys: `<corpus>__<recording>__<offset_ms:09d>`, dot-free and stable across machines."""

from __future__ import annotations

import hashlib
import re

from shards.shardfile import MAX_KEY

_UNSAFE = re.compile(r"[/.]")


def recording_id(path: str) -> str:
    """Path under the corpus root without its extension, `/` and `.` mapped to `-`."""
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    return _UNSAFE.sub("-", stem)


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
