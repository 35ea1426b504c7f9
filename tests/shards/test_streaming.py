"""Streaming shards from S3 (a real `weed mini` server): same batches as from disk, survives a server
restart mid-epoch, and a truncated shard is an error, not a silently short epoch."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from shards.diets import load_diet
from shards.loader import torch_loader
from shards.reader import DamagedShard, RangeReader, ShortRead
from shards.sampler import LoaderState, Sampler
from tests.conftest import build_small_collection
from tests.s3server import _stop, s3_server, start_weed_args  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_data(tmp_path_factory) -> Path:
    return build_small_collection(tmp_path_factory.mktemp("stream"))


def _upload(client, bucket: str, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(local).as_posix()}",
                              Body=path.read_bytes())


def _batches(data: str, seed: int = 1):
    table = load_diet(data, "all")
    return table, Sampler(len(table), 4, seed=seed)


def test_s3_batches_equal_local_batches(local_data, s3_server):  # noqa: F811
    _upload(s3_server.client, s3_server.bucket, local_data, "stream")
    remote_table, sampler = _batches(s3_server.url("stream"))
    assert remote_table.tars[0].startswith("s3://")
    local_table, _ = _batches(str(local_data))
    remote = list(torch_loader(remote_table, sampler))
    local = list(torch_loader(local_table, sampler))
    assert len(remote) == len(local) > 3
    assert all(torch.equal(a.x, b.x) for a, b in zip(local, remote))


def test_webdataset_reads_s3_through_the_registered_handler(local_data, s3_server):  # noqa: F811
    import webdataset as wds

    from shards.webdataset_urls import register_webdataset_schemes

    _upload(s3_server.client, s3_server.bucket, local_data, "wds")
    register_webdataset_schemes()
    url = s3_server.url("wds/shards/pretrain/shard-000000.tar")
    keys = [s["__key__"] for s in wds.WebDataset(url, shardshuffle=False)]
    idx = (local_data / "shards" / "pretrain" / "shard-000000.idx").read_text().splitlines()[1:]
    assert keys == [line.split()[3].rsplit(".", 1)[0] for line in idx]


def test_a_server_restart_mid_epoch_is_retried_not_lost(local_data, tmp_path, monkeypatch, caplog):
    workdir, sockets = tmp_path / "weed", Path(tempfile.mkdtemp(prefix="weed-"))
    workdir.mkdir()
    done = threading.Event()
    proc, endpoint, _, args = start_weed_args(workdir, sockets, "AKRESTART0000001", "restart-secret")
    try:
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "AKRESTART0000001",
                           "AWS_SECRET_ACCESS_KEY": "restart-secret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        import botocore.session

        client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket="restart")
                break
            except Exception:  # noqa: BLE001 - the gateway is still connecting to its filer
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        _upload(client, "restart", local_data, "d")
        table, sampler = _batches("s3://restart/d")
        expected = list(torch_loader(*_batches(str(local_data))))
        stream = iter(torch_loader(table, sampler))
        got = [next(stream) for _ in range(len(expected) // 2)]
        _stop(proc)
        restarted: list = []

        def restart_later() -> None:
            # the server is killed when the thread that started it exits (PR_SET_PDEATHSIG): keep it alive.
            # Down for 8 s: longer than botocore's own retries, so the reader's backoff must carry the epoch.
            time.sleep(8.0)
            restarted.append(start_weed_args(workdir, sockets, "", "", args)[0])
            done.wait()

        keeper = threading.Thread(target=restart_later, daemon=True)
        keeper.start()
        with caplog.at_level("WARNING", logger="shards.reader"):
            got += list(stream)  # reads fail while the server is down, then succeed after the restart
        proc = restarted[0]
        assert any("retrying in" in r.getMessage() for r in caplog.records)
        assert [b.number for b in got] == [b.number for b in expected]
        assert all(torch.equal(a.x, b.x) for a, b in zip(expected, got))
    finally:
        _stop(proc)
        done.set()
        shutil.rmtree(sockets, ignore_errors=True)


def test_a_truncated_shard_is_an_error_not_a_short_epoch(local_data, tmp_path):
    data = tmp_path / "copy"
    shutil.copytree(local_data, data)
    table, sampler = _batches(str(data))
    last_tar = Path(table.tars[-1])
    size = last_tar.stat().st_size
    last_tar.write_bytes(last_tar.read_bytes()[: size // 2])
    with pytest.raises(DamagedShard, match="truncated"):
        list(torch_loader(table, sampler))
    i = int(np.argmax(table.tar_id == table.tar_id.max()))
    last = len(table) - 1  # the last clip of the last tar lies in its lost half
    assert table.offset[last] + table.size[last] > size // 2 and table.tar_id[i] == table.tar_id[last]
    with pytest.raises(ShortRead, match="truncated"):
        RangeReader().read(table.tars[-1], int(table.offset[last]), int(table.size[last]))


def _range_server(root: Path):
    """A loopback HTTP server of `root` that honours `Range: bytes=a-b`, as HTTP(S) shard hosts do."""
    import functools
    import http.server
    import re

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def send_head(self):
            match = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            path = Path(self.translate_path(self.path))
            if not match or not path.is_file():
                return super().send_head()
            start, end = int(match[1]), int(match[2])
            data = path.read_bytes()[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{path.stat().st_size}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            import io

            return io.BytesIO(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_http_batches_equal_local_batches(local_data):
    server = _range_server(local_data)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote_table, sampler = _batches(url)
        assert remote_table.tars[0].startswith("http://")
        local = list(torch_loader(*_batches(str(local_data))))
        remote = list(torch_loader(remote_table, sampler))
        assert len(remote) == len(local) and all(torch.equal(a.x, b.x) for a, b in zip(local, remote))
    finally:
        server.shutdown()


def test_permanent_errors_are_raised_at_once_not_retried(local_data, s3_server, monkeypatch):  # noqa: F811
    _upload(s3_server.client, s3_server.bucket, local_data, "perm")
    url = s3_server.url("perm/shards/pretrain/shard-000000.tar")
    size = (local_data / "shards" / "pretrain" / "shard-000000.tar").stat().st_size
    t0 = time.monotonic()
    with pytest.raises(ShortRead):
        RangeReader().read(url, size - 10, 100)  # past the end of the object
    with pytest.raises(FileNotFoundError):
        RangeReader().read(s3_server.url("perm/shards/pretrain/no-such.tar"), 0, 10)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(PermissionError):
        RangeReader().read(url, 0, 10)
    s3fs.S3FileSystem.clear_instance_cache()
    assert time.monotonic() - t0 < 8  # no 14-s backoff for errors that cannot heal


def test_local_readers_keep_a_bounded_number_of_files_open(local_data):
    import os

    from shards.config import LoaderConfig

    table, sampler = _batches(str(local_data))
    assert len(table.tars) > 2
    before = len(os.listdir("/proc/self/fd"))
    for epoch in range(5):
        list(torch_loader(table, sampler, LoaderState(epoch=epoch), cfg=LoaderConfig(open_files=2)))
    assert len(os.listdir("/proc/self/fd")) <= before + 1
