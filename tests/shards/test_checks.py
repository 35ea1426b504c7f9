"""Careless and hostile use of the shards CLIs ends in one clear line, and damaged shards never stream."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from shards.__main__ import main as shards_main
from shards.config import RemoteConfig
from shards.diets import load_diet
from shards.loader import torch_loader
from shards.reader import DamagedShard, permanent, ShortRead
from shards.sampler import Sampler
from shards.storage import Root
from shards.verify import verify
from tests.conftest import build_small_collection


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_small_collection(tmp_path_factory.mktemp("checks"))


@pytest.fixture
def data(built, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    return copy


@pytest.mark.parametrize("root", ["", "/", "s3://", "s3:", "https://"])
def test_data_roots_that_would_write_elsewhere_are_one_line_errors(root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert shards_main(["diet", root]) == 1
    err = capsys.readouterr().err
    assert "data root" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_diet_and_corpus_names_cannot_climb_out_of_the_root(data, tmp_path, capsys):
    assert shards_main(["diet", str(data), "--diet", "../../../x", "--corpora", "noise"]) == 1
    assert "diet name '../../../x'" in capsys.readouterr().err
    assert shards_main(["diet", str(data), "--diet", "mine", "--corpora", "noise,../y"]) == 1
    assert "corpus name '../y'" in capsys.readouterr().err
    assert shards_main(["stream", str(data), "--diet", "../x"]) == 1
    assert not (data / "diets" / "mine.json").exists() and not list(tmp_path.glob("x*"))


def _stream(data: Path) -> list:
    table = load_diet(str(data), "all")
    return list(torch_loader(table, Sampler(len(table), 4, seed=1)))


def test_a_sound_diet_streams(data):
    assert len(_stream(data)) > 3


def test_a_zero_filled_tar_is_an_error_naming_it(data):
    tar = data / "shards" / "pretrain" / "shard-000001.tar"
    tar.write_bytes(bytes(tar.stat().st_size))
    with pytest.raises(DamagedShard, match=r"shard-000001\.tar: member at byte \d+: no tar header"):
        _stream(data)


def test_a_partly_overwritten_tar_is_an_error(data):
    tar = data / "shards" / "pretrain" / "shard-000000.tar"
    raw = bytearray(tar.read_bytes())
    third, two_thirds = len(raw) // 3, 2 * len(raw) // 3
    raw[third:two_thirds] = bytes(two_thirds - third)
    tar.write_bytes(bytes(raw))
    with pytest.raises(DamagedShard, match=r"shard-000000\.tar"):
        _stream(data)


def test_swapped_tars_are_an_error(data):
    a, b = (data / "shards" / "pretrain" / f"shard-00000{i}.tar" for i in (0, 1))
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)
    with pytest.raises(DamagedShard, match=r"shard-00000[01]\.tar"):
        _stream(data)


def test_a_truncated_tar_is_an_error_and_the_stream_cli_says_so_in_one_line(data, capsys):
    tar = data / "shards" / "pretrain" / "shard-000002.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(DamagedShard, match=r"shard-000002\.tar: \d+ bytes, the shard index says \d+"):
        _stream(data)
    assert shards_main(["stream", str(data), "--batch-size", "4", "--batches", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard-000002.tar" in err[0]


def test_the_loader_can_require_a_verified_collection(data, capsys):
    with pytest.raises(ValueError, match="has not been verified"):
        load_diet(str(data), "all", require_verified=True)
    assert shards_main(["stream", str(data), "--require-verified", "--batch-size", "4", "--batches", "1"]) == 1
    assert "has not been verified" in capsys.readouterr().err
    report = verify(str(data))
    assert report.ok and report.verified == ["pretrain"]
    assert len(load_diet(str(data), "all", require_verified=True)) == len(load_diet(str(data), "all"))
    index = data / "shards" / "pretrain" / "index.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(index), index, compression="snappy")  # same rows, other bytes: rewritten
    with pytest.raises(ValueError, match="changed since it was verified"):
        load_diet(str(data), "all", require_verified=True)
    (data / "shards" / "pretrain" / "shard-000000.tar").write_bytes(b"")
    assert not verify(str(data)).ok
    assert not (data / "shards" / "pretrain" / "_VERIFIED.json").exists()  # withdrawn, not left stale


def test_diet_refuses_an_incomplete_collection_and_keeps_the_old_diet(data, capsys):
    before = (data / "diets" / "all.json").read_bytes()
    (data / "catalog" / "pretrain" / "clips" / "shard-000001.parquet").unlink()
    assert shards_main(["diet", str(data), "--diet", "all"]) == 1
    err = capsys.readouterr().err
    assert "lacks the catalog part of 1 of its" in err and "shard-000001.parquet" in err
    assert len(err.strip().splitlines()) == 1
    assert (data / "diets" / "all.json").read_bytes() == before
    report = verify(str(data), only=["pretrain"])
    assert any("pretrain/shard-000001: missing file" in p for p in report.problems)


def test_verify_checks_the_diets(data):
    manifest = json.loads((data / "diets" / "all.json").read_text())
    idx = data / manifest["shards"][0]["idx"]
    lines = idx.read_text().splitlines()
    ext, offset, *rest = lines[1].split(" ")
    lines[1] = " ".join([ext, str(int(offset) + 512), *rest])  # points between members
    idx.write_text("\n".join(lines) + "\n")
    manifest["clips"] += 1
    (data / "diets" / "all.json").write_text(json.dumps(manifest))
    problems = verify(str(data)).problems
    assert f"diet all: {manifest['shards'][0]['idx']}: 1 line(s) name no clip of shards/pretrain/shard-000000.tar" \
        in problems
    assert any(p.startswith("diet all: manifest says") for p in problems)


def test_remote_errors_are_classified_by_type_and_status_not_text():
    from botocore.exceptions import ClientError

    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "GetObject")

    assert isinstance(permanent(client_error(416, "InvalidRange")), ShortRead)
    assert isinstance(permanent(client_error(403, "AccessDenied")), PermissionError)
    assert isinstance(permanent(client_error(404, "NoSuchKey")), FileNotFoundError)
    assert permanent(client_error(503, "AccessDenied")) is None  # a 5xx is retried whatever its text says
    assert permanent(client_error(429, "SlowDown")) is None
    wrapped = OSError("InvalidRange 416 AccessDenied")  # s3fs's translation, the ClientError as its cause
    wrapped.__cause__ = client_error(500, "InternalError")
    assert permanent(wrapped) is None
    wrapped.__cause__ = client_error(416, "InvalidRange")
    assert isinstance(permanent(wrapped), ShortRead)
    assert permanent(ConnectionResetError("AccessDenied")) is None


def test_an_s3_endpoint_that_never_answers_fails_in_bounded_time(monkeypatch, capsys):
    """The endpoint accepts connections and never replies: verify must give up within its timeouts and
    say so in one line, and show progress while it waits."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accepted, never answered
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.getsockname()[1]}",
                       "AWS_ACCESS_KEY_ID": "AKSILENT", "AWS_SECRET_ACCESS_KEY": "silent",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    seen: list[str] = []
    t0 = time.monotonic()
    try:
        with pytest.raises(OSError):
            verify("s3://silent/data", remote=RemoteConfig(connect_timeout_s=0.5, read_timeout_s=0.5,
                                                            client_attempts=1, retries=1),
                   progress=lambda what, done, total: seen.append(what))
        assert time.monotonic() - t0 < 20
        assert seen and seen[0].startswith("listing s3://silent/data")
        t0 = time.monotonic()
        assert shards_main(["verify", "s3://silent/data", "--read-timeout-s", "0.5", "--connect-timeout-s", "0.5",
                            "--client-attempts", "1"]) == 1
        assert time.monotonic() - t0 < 20
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error:")
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_root_keeps_a_plain_folder():
    assert Root("some/folder/").url == "some/folder"
