"""Corpora on S3 (or any fsspec URL) without copying their audio.

Adapters read layouts with pathlib. For a URL root we build a local *shadow tree* once per run: the real
folder structure, metadata files downloaded (they are small), and each audio object as a sparse
placeholder of its real size (no bytes on disk). Adapters run on the shadow unchanged; the engine then
maps every recording back to its URL, which workers read with ranged GETs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ingest.corpora._util import AUDIO_EXTENSIONS
from shards.storage import filesystem

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 256 << 20  # a non-audio object larger than this is listed, not downloaded


def is_url(root: str) -> bool:
    return "://" in root


def shadow_tree(url: str, cache: Path | None = None) -> Path:
    """A local folder that mirrors `url`'s layout: metadata files copied, audio as sized placeholders."""
    fs, base = filesystem(url)
    base = base.rstrip("/")
    if not fs.isdir(base):
        raise FileNotFoundError(f"corpus root {url!r} has no objects (is the bucket/prefix right?)")
    cache = cache or Path(tempfile.gettempdir()) / "audiodiet-shadow"
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    shadow = cache / hashlib.sha1(f"{endpoint}|{url}".encode()).hexdigest()[:16]
    shutil.rmtree(shadow, ignore_errors=True)  # rebuilt every run: objects may have vanished or changed
    objects = fs.find(base, detail=True)
    fetched = placeholders = 0
    for key, info in sorted(objects.items()):
        rel = key[len(base):].lstrip("/")
        if not rel or info.get("type") == "directory":
            continue
        local = shadow / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        size = int(info.get("size") or 0)
        if local.suffix.lower() in AUDIO_EXTENSIONS or size > MAX_METADATA_BYTES:
            with open(local, "wb") as f:
                f.truncate(size)  # sparse: the size is real (fingerprints use it), the bytes are not
            placeholders += 1
        else:
            fs.get_file(key, str(local))
            fetched += 1
    log.info("%s: shadow tree with %d audio placeholders, %d metadata files fetched", url, placeholders, fetched)
    return shadow


def local_view(root: str, root_is_file: bool) -> tuple[Path, str | None]:
    """(the local path an adapter reads, the URL of the folder it mirrors, or None for a local root)."""
    if not is_url(root):
        return Path(root), None
    if root_is_file:  # csv: the metadata file's folder is the corpus
        folder, _, name = root.rstrip("/").rpartition("/")
        return shadow_tree(folder) / name, folder
    return shadow_tree(root), root.rstrip("/")
