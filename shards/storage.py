"""One data root, local or `s3://bucket/prefix`, with atomic commits.

Every file is written under a temporary name and committed by rename (locally) or by a single upload
(S3 objects appear whole or not at all), so a reader never sees half a file. S3 credentials come only
from the standard AWS chain; the endpoint from `AWS_ENDPOINT_URL` (S3-compatible servers).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO

import fsspec

TMP_MARK = ".tmp-"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a local path or URL; S3 honours AWS_ENDPOINT_URL explicitly."""
    options = {}
    if url.startswith("s3://") and os.environ.get("AWS_ENDPOINT_URL"):
        options = {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path


class Root:
    """A data root: all paths given to its methods are relative POSIX paths under it."""

    def __init__(self, url: str | Path):
        self.url = str(url).rstrip("/")
        self.fs, self.base = filesystem(self.url)
        self.is_local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol

    def __repr__(self) -> str:
        return f"Root({self.url!r})"

    def path(self, rel: str) -> str:
        """Filesystem path (no scheme) of `rel`."""
        return f"{self.base}/{rel}" if rel else self.base

    def url_of(self, rel: str) -> str:
        """Full URL of `rel`, what readers (webdataset, DALI) are given."""
        return f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def open(self, rel: str, mode: str = "rb") -> IO:
        return self.fs.open(self.path(rel), mode)

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def listdir(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names (not paths) in folder `rel` ending in `suffix`; temporary files excluded."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if n.endswith(suffix) and not n.startswith(TMP_MARK))

    def remove_stale_temporaries(self, rel_dir: str) -> int:
        """Delete temp files a killed run left in `rel_dir` (local roots only; S3 has none)."""
        if not self.is_local:
            return 0
        folder = Path(self.path(rel_dir))
        stale = list(folder.glob(f"{TMP_MARK}*")) if folder.is_dir() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    # -- atomic writes ---------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Commit `data` at `rel` atomically."""
        self.put_stream(rel, io.BytesIO(data))

    def put_stream(self, rel: str, stream: IO[bytes]) -> None:
        with self.writer(rel) as out:
            shutil.copyfileobj(stream, out, 1 << 20)

    def writer(self, rel: str) -> "AtomicWriter":
        """A binary file to write `rel` through; committed on clean close, discarded on error."""
        return AtomicWriter(self, rel)


class AtomicWriter:
    """Local: temp file beside the target, then os.replace. S3: local spool, then one upload."""

    def __init__(self, root: Root, rel: str):
        self.root, self.rel = root, rel
        name = rel.rsplit("/", 1)[-1]
        if root.is_local:
            target = Path(root.path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = target.with_name(f"{TMP_MARK}{uuid.uuid4().hex}-{name}")
        else:
            self.tmp = Path(tempfile.mkdtemp(prefix="audiodiet-")) / name
        self.file: IO[bytes] = open(self.tmp, "wb")

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def tell(self) -> int:
        return self.file.tell()

    def __enter__(self) -> "AtomicWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        try:
            if exc_type is None:
                if self.root.is_local:
                    os.replace(self.tmp, self.root.path(self.rel))
                else:
                    self.root.fs.put_file(str(self.tmp), self.root.path(self.rel))
        finally:
            if self.tmp.exists():
                self.tmp.unlink()
            if not self.root.is_local:
                shutil.rmtree(self.tmp.parent, ignore_errors=True)
