"""Let webdataset open the same URLs our readers do: `s3://` (and any other fsspec scheme) through fsspec,
with the endpoint from AWS_ENDPOINT_URL. webdataset has no `s3://` handler of its own."""

from __future__ import annotations

from typing import IO

from shards.storage import filesystem


def gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **_: object) -> IO[bytes]:
    fs, path = filesystem(url)
    return fs.open(path, mode, block_size=max(bufsize, 1 << 20))


def register_webdataset_schemes(schemes: tuple[str, ...] = ("s3",)) -> None:
    """After this, `webdataset.WebDataset("s3://bucket/shards/pretrain/shard-000000.tar")` streams."""
    import importlib

    gopen_module = importlib.import_module("webdataset.gopen")  # the module, not the function it exports
    for scheme in schemes:
        gopen_module.gopen_schemes[scheme] = gopen_fsspec
