"""One run owns a collection at a time: a lease object created only if absent, on a local disk or S3.

Two ingests writing one collection at once used to interleave (the manifest of one, the tars of the
other, both exiting 0). A run now first creates `catalog/<collection>/_LEASE.json` with a conditional
create that exactly one caller can win: locally a hard link of a finished temporary file (`os.link` fails
if the name exists, so the lease never appears half-written); on S3 a single `PutObject` with
`If-None-Match: *` (answered 412 when the object exists; honoured by AWS S3 and by SeaweedFS's `weed
mini`, tested). The loser stops with one line naming the holder (host, pid, start time).

The diets (`diets/*`, written after every pre-training ingest from all complete collections, and by
`python -m shards diet`) have a lease of their own, `diets/_LEASE`, taken by their one writer
(`shards.diets.write_diets`): two ingests of different collections finishing together used to write them at
once (one run's manifest beside the other's clip table, or the diets of the run that saw fewer collections
written last). A run that finds it held waits (writing the diets takes seconds), then writes diets that
include both collections. (This module lives in shards/ so that `shards diet` takes the same lease.)

A lease left by a run that died (killed, OOM, power loss) is broken automatically only when that is
certain: same host, and its process is gone (or its pid now belongs to a process started later). Any
other stale lease is broken by hand: `python -m ingest unlock --data DATA --collection NAME` (`--diets`).
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

from shards.layout import DIETS_LEASE, lease_path
from shards.storage import TMP_MARK, Root

log = logging.getLogger(__name__)

PRECONDITION_FAILED = 412  # HTTP status of a conditional PUT whose object already exists
DIETS_WAIT_SECONDS = 600.0  # how long a run waits for another run's diets (seconds to write at 3.85 M clips)
POLL_SECONDS = 0.2  # between tries while waiting for a lease


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


@dataclass(frozen=True, slots=True)
class Owned:
    """What a lease guards: its object and how messages name it and its unlock command."""

    rel: str
    name: str  # "collection 'x' in DATA" / "the diets in DATA"
    verb: str  # "is" / "are"
    unlock: str  # the flag of `python -m ingest unlock` that breaks it

    @classmethod
    def collection(cls, root: Root, collection: str) -> "Owned":
        return cls(lease_path(collection), f"collection {collection!r} in {root.url}", "is",
                   f"--collection {collection}")

    @classmethod
    def diets(cls, root: Root) -> "Owned":
        return cls(DIETS_LEASE, f"the diets in {root.url}", "are", "--diets")


def _read(root: Root, rel: str) -> Lease | None:
    try:
        return Lease.from_dict(json.loads(root.read_bytes(rel)))
    except FileNotFoundError:
        return None


def read_lease(root: Root, collection: str) -> Lease | None:
    return _read(root, lease_path(collection))


def _remove(root: Root, rel: str) -> None:
    try:
        root.fs.rm_file(root.path(rel))
    except FileNotFoundError:
        pass


def acquire(root: Root, collection: str) -> Lease:
    """Own `collection` or raise LeaseHeld naming its owner; a certainly dead owner's lease is taken over."""
    return _acquire(root, Owned.collection(root, collection))


def _acquire(root: Root, owned: Owned, wait: float = 0.0) -> Lease:
    """Own `owned`, waiting up to `wait` seconds while a live run holds it; else LeaseHeld naming the holder."""
    mine = _new_lease()
    body = json.dumps(mine.to_dict(), indent=1).encode()
    deadline, told, races = time.monotonic() + wait, False, 0
    while True:
        if _create(root, owned.rel, body):
            return mine
        held = _read(root, owned.rel)
        if held is None or _is_dead(held):
            races += 1
            if races > 2:
                raise LeaseHeld(f"{owned.name}: could not take the lease (another run keeps taking it); retry")
            if held is not None:
                log.info("%s: taking over the lease of a run that died (%s)", owned.rel, held.describe())
                _remove(root, owned.rel)
            continue  # None: released between our create and our read
        if time.monotonic() >= deadline:
            waited = f" (waited {wait:g} s)" if wait else ""
            raise LeaseHeld(
                f"{owned.name} {owned.verb} being written by another run ({held.describe()}){waited}; wait for "
                f"it to finish, or if it is dead: python -m ingest unlock --data {root.url} {owned.unlock}")
        if not told:
            log.info("%s: waiting for another run (%s)", owned.rel, held.describe())
            told = True
        time.sleep(POLL_SECONDS)


def owns(root: Root, collection: str, lease: Lease) -> bool:
    return _owns(root, lease_path(collection), lease)


def _owns(root: Root, rel: str, lease: Lease) -> bool:
    held = _read(root, rel)
    return held is not None and held.run == lease.run


def release(root: Root, collection: str, lease: Lease) -> None:
    """Remove the lease if it is still ours (one broken by hand and taken by another run is left alone)."""
    _release(root, lease_path(collection), lease)


def _release(root: Root, rel: str, lease: Lease) -> None:
    if _owns(root, rel, lease):
        _remove(root, rel)


def unlock(data: str, collection: str | None = None) -> Lease | None:
    """Break a collection's lease by hand (its run is dead), or the diets' (collection None); returns the
    lease removed, None if none."""
    root = Root(data)
    rel = lease_path(collection) if collection is not None else DIETS_LEASE
    held = _read(root, rel)
    if held is not None:
        _remove(root, rel)
    return held


@contextmanager
def held(root: Root, collection: str) -> Iterator[Lease]:
    """The collection's lease for the duration of the block, released on the way out (errors included)."""
    with _held(root, Owned.collection(root, collection)) as lease:
        yield lease


@contextmanager
def held_diets(root: Root, wait: float = DIETS_WAIT_SECONDS) -> Iterator[Lease]:
    """The diets' lease for the duration of the block, waiting up to `wait` seconds for a live holder."""
    with _held(root, Owned.diets(root), wait) as lease:
        yield lease


@contextmanager
def _held(root: Root, owned: Owned, wait: float = 0.0) -> Iterator[Lease]:
    lease = _acquire(root, owned, wait)
    try:
        yield lease
    finally:
        _release(root, owned.rel, lease)
