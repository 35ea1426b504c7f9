"""One run owns a collection at a time: a lease object created only if absent, on a local disk or S3.

Two ingests writing one collection at once used to interleave (the manifest of one, the tars of the
other, both exiting 0). A run now first creates `catalog/<collection>/_LEASE.json` with a conditional
create that exactly one caller can win: locally a hard link of a finished temporary file (`os.link` fails
if the name exists, so the lease never appears half-written); on S3 a single `PutObject` with
`If-None-Match: *` (answered 412 when the object exists; honoured by AWS S3 and by SeaweedFS's `weed
mini`, tested). The loser stops with one line naming the holder (host, pid, start time).

A lease left by a run that died (killed, OOM, power loss) is broken automatically only when that is
certain: same host, and its process is gone (or its pid now belongs to a process started later). Any
other stale lease is broken by hand: `python -m ingest unlock --data DATA --collection NAME`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from shards.layout import lease_path
from shards.storage import TMP_MARK, Root

log = logging.getLogger(__name__)

PRECONDITION_FAILED = 412  # HTTP status of a conditional PUT whose object already exists


class LeaseHeld(ValueError):
    """Another run owns the collection."""


@dataclass(frozen=True, slots=True)
class Lease:
    run: str  # a fresh id per run: a run releases only its own lease
    host: str
    pid: int
    pid_start: int | None  # the process's start time in clock ticks since boot (Linux), to detect pid reuse
    started: str  # UTC, ISO 8601

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Lease":
        return cls(**{k: data.get(k) for k in ("run", "host", "pid", "pid_start", "started")})

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started}"


def _process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks after boot (field 22 of /proc/<pid>/stat), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _new_lease() -> Lease:
    return Lease(uuid.uuid4().hex, socket.gethostname(), os.getpid(), _process_start(os.getpid()),
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _is_dead(lease: Lease) -> bool:
    """Certainly dead: on this host, and no process has its pid (or that pid was started after it)."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    now = _process_start(lease.pid)
    return lease.pid_start is not None and now is not None and now != lease.pid_start


def _create(root: Root, rel: str, body: bytes) -> bool:
    """Create `rel` holding `body` only if it does not exist; False if it does."""
    if root.is_local:
        target = Path(root.path(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{TMP_MARK}{uuid.uuid4().hex}-{target.name}")
        tmp.write_bytes(body)
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
    from botocore.exceptions import ClientError

    bucket, _, key = root.path(rel).partition("/")
    try:
        root.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        return True
    except FileExistsError:  # s3fs's translation when the server names the If-None-Match condition (AWS)
        return False
    except OSError as err:  # others (weed mini) answer a bare 412: classify by the HTTP status, not the text
        cause = err.__cause__
        if isinstance(cause, ClientError) and \
                cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == PRECONDITION_FAILED:
            return False
        raise


def read_lease(root: Root, collection: str) -> Lease | None:
    try:
        return Lease.from_dict(json.loads(root.read_bytes(lease_path(collection))))
    except FileNotFoundError:
        return None


def _remove(root: Root, collection: str) -> None:
    try:
        root.fs.rm_file(root.path(lease_path(collection)))
    except FileNotFoundError:
        pass


def acquire(root: Root, collection: str) -> Lease:
    """Own `collection` or raise LeaseHeld naming its owner; a certainly dead owner's lease is taken over."""
    mine = _new_lease()
    body = json.dumps(mine.to_dict(), indent=1).encode()
    for _ in range(2):
        if _create(root, lease_path(collection), body):
            return mine
        held = read_lease(root, collection)
        if held is None:  # released between our create and our read: try again
            continue
        if not _is_dead(held):
            raise LeaseHeld(
                f"collection {collection!r} in {root.url} is being written by another run ({held.describe()}); "
                f"wait for it to finish, or if it is dead: python -m ingest unlock --data {root.url} "
                f"--collection {collection}")
        log.info("collection %s: taking over the lease of a run that died (%s)", collection, held.describe())
        _remove(root, collection)
    raise LeaseHeld(f"collection {collection!r} in {root.url}: could not take the lease (another run keeps "
                    "taking it); retry")


def owns(root: Root, collection: str, lease: Lease) -> bool:
    held = read_lease(root, collection)
    return held is not None and held.run == lease.run


def release(root: Root, collection: str, lease: Lease) -> None:
    """Remove the lease if it is still ours (one broken by hand and taken by another run is left alone)."""
    if owns(root, collection, lease):
        _remove(root, collection)


def unlock(data: str, collection: str) -> Lease | None:
    """Break a collection's lease by hand (its run is dead); returns the lease removed, None if none."""
    root = Root(data)
    held = read_lease(root, collection)
    if held is not None:
        _remove(root, collection)
    return held


@contextmanager
def held(root: Root, collection: str) -> Iterator[Lease]:
    """The collection's lease for the duration of the block, released on the way out (errors included)."""
    lease = acquire(root, collection)
    try:
        yield lease
    finally:
        release(root, collection, lease)
