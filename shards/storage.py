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

from shards.config import DEFAULT_REMOTE, RemoteConfig

TMP_MARK = ".tmp-"


def remote_options(url: str, remote: RemoteConfig = DEFAULT_REMOTE) -> dict:
    """fsspec options for `url`: the endpoint from AWS_ENDPOINT_URL (S3) and, for every remote scheme, the
    bounded timeouts and client attempts of `remote`, so a silent endpoint fails instead of hanging."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme in ("s3", "s3a"):
        client = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]} if os.environ.get("AWS_ENDPOINT_URL") else {}
        return {"client_kwargs": client,
                "config_kwargs": {"connect_timeout": remote.connect_timeout_s, "read_timeout": remote.read_timeout_s,
                                  "retries": {"max_attempts": remote.client_attempts, "mode": "standard"}}}
    if scheme in ("http", "https"):
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(
            sock_connect=remote.connect_timeout_s, sock_read=remote.read_timeout_s)}}
    return {}


def filesystem(url: str, remote: RemoteConfig = DEFAULT_REMOTE) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a local path or URL (see `remote_options`)."""
    fs, path = fsspec.core.url_to_fs(url, **remote_options(url, remote))
    if url.startswith(("s3://", "s3a://")):
        fs.retries = remote.client_attempts  # s3fs's own retry loop (an attribute, not an option)
    return fs, path


def check_root(url: str | Path) -> str:
    """The data root `url` without trailing '/', or ValueError for one that would write somewhere else:
    '' (the current directory), '/' (the filesystem root) or a bucket URL without a bucket."""
    text = str(url).strip()
    if "://" in text:
        scheme, rest = text.split("://", 1)
        bucket = rest.split("/", 1)[0]
        if not scheme or not bucket or bucket in (".", ".."):
            raise ValueError(f"data root {text!r}: no bucket or host; expected {scheme or 's3'}://bucket/prefix")
        return text.rstrip("/")
    if not text:
        raise ValueError("data root '': expected a folder (e.g. ./data) or s3://bucket/prefix")
    if text.startswith("s3:") or text.startswith("http:") or text.startswith("https:"):
        raise ValueError(f"data root {text!r}: a URL needs '://' (s3://bucket/prefix)")
    if Path(text).resolve() == Path("/"):
        raise ValueError(f"data root {text!r} is the filesystem root: give a folder for the data (e.g. ./data)")
    return text.rstrip("/")


class Root:
    """A data root: all paths given to its methods are relative POSIX paths under it."""

    def __init__(self, url: str | Path, remote: RemoteConfig = DEFAULT_REMOTE):
        self.url = check_root(url)
        self.remote = remote
        self.fs, self.base = filesystem(self.url, remote)
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
