"""Re-read every shard of a data root and check it against what ingest recorded.

Checks, per shard (one job per shard on the shared executor: local processes or a Dask cluster): bytes and
sha256 against the shard index (the sha256 computed on the stream); the tar's clips against the catalog
part (same keys, same order, same count); every audio member decodes at 16 kHz to the recorded frame count
(a WAV member: its canonical header and length, what decoding it would check, without the decoder's cost);
every `<key>.json` equals its catalog row and every catalog `idx_line` the member offsets in the tar; the
`.idx` equals what NVIDIA's `wds2idx` writes (run on a local tar in place; for a remote tar, the index
derived from the streamed headers by the same rule, which a test keeps equal to `wds2idx`); every diet's
index for the shard lists real clips of the tar, as many as its manifest says. A tar is read member by
member: a job holds one member and one shard's catalog rows, whatever the shard's size.

A collection that checks sound gets `_VERIFIED.json`, keyed to its shard index's sha256; loaders can
require it (`load_diet(..., require_verified=True)`, `python -m shards stream --require-verified`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shards import layout
from shards.catalog import JSON_FIELDS, collections, read_part, read_table, table_rows
from shards.config import DEFAULT_REMOTE, DEFAULT_VERIFY, RemoteConfig, VerifyConfig
from shards.executor import bounded_map, default_workers, make_executor
from shards.reader import wav_header_problem
from shards.storage import Root

log = logging.getLogger(__name__)
CHUNK = 1 << 20  # bytes per read of the tar stream


@dataclass
class Report:
    shards: int = 0
    clips: int = 0
    problems: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)  # collections recorded as verified

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class ShardCheck:
    """One shard job: the shard index row and the diet indexes over this tar, (diet, idx path, clips)."""

    data: str
    collection: str
    shard: str
    path: str
    idx: str
    clips: int
    bytes: int
    sha256: str
    diets: tuple[tuple[str, str, int], ...] = ()
    remote: RemoteConfig = DEFAULT_REMOTE


@dataclass(frozen=True, slots=True)
class ShardFindings:
    collection: str
    shard: str
    clips: int
    problems: tuple[str, ...]


class _Hashing:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, raw):
        self.raw, self.sha, self.pos = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        self.pos += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def split_name(name: str) -> tuple[str, str]:
    """(key, extension) as `wds2idx` splits a member name: at the first '.' of its last path part."""
    dot = name.find(".", name.rfind("/") + 1)
    return (name[:dot], name[dot + 1:]) if dot >= 0 else (name, "")


def index_lines(members: Iterator[tuple[str, int, int]]) -> Iterator[tuple[str, str]]:
    """(key, DALI index line) per clip from (name, data offset, size) of a tar's regular members in order,
    grouped as `wds2idx` groups them (consecutive members with one key)."""
    key, parts = None, []
    for name, offset, size in members:
        base, ext = split_name(name)
        if not base or base.endswith("/"):
            continue
        if base != key and parts:
            yield key, " ".join(parts)
            parts = []
        key = base
        parts.append(f"{ext} {offset} {size} {name}")
    if parts:
        yield key, " ".join(parts)


def wds2idx_text(tar_path: str) -> str:
    """The index NVIDIA's `wds2idx` writes for the local tar at `tar_path` (read in place)."""
    from wds2idx import IndexCreator

    with tempfile.TemporaryDirectory() as tmp:
        idx_path = Path(tmp) / "shard.idx"
        with IndexCreator(tar_path, str(idx_path), verbose=False) as creator:
            creator.create_index()
        return idx_path.read_text()


def _expected_json(row: dict) -> dict:
    expected = {k: row[k] for k in JSON_FIELDS}
    expected["extra"] = json.loads(row["extra"])
    return expected


def _check_members(job: ShardCheck, root: Root, rows: list[dict], problems: list[str]) -> tuple[_Hashing, list]:
    """Stream the tar once; returns the hashing stream (drained) and [(key, index line)] of the tar."""
    from shards.audio import SAMPLE_RATE, decode_bytes

    where = f"{job.collection}/{job.shard}"
    by_key = {r["key"]: r for r in rows}
    seen: dict[str, dict[str, bytes | None]] = {}
    members: list[tuple[str, int, int]] = []
    with root.fs.open(root.path(job.path), "rb") as raw:
        stream = _Hashing(raw)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # sequential: one member in memory
                for info in tar:
                    if not info.isreg():
                        continue
                    members.append((info.name, info.offset_data, info.size))
                    key, ext = split_name(info.name)
                    row = by_key.get(key)
                    data = tar.extractfile(info).read()
                    sample = seen.setdefault(key, {})
                    sample[ext] = None
                    if row is None:
                        continue
                    if ext == "wav" == row["codec"]:  # canonical header + length: what decoding checks
                        problem = wav_header_problem(data, row["frames"], len(data))
                        if problem is not None:
                            problems.append(f"{where}: {key}.wav: {problem}")
                    elif ext == row["codec"]:
                        try:
                            pcm, rate = decode_bytes(data)
                        except Exception as err:  # noqa: BLE001 - any decoder failure is a finding
                            problems.append(f"{where}: {key}.{ext} does not decode ({err})")
                            continue
                        if rate != SAMPLE_RATE or len(pcm) != row["frames"]:
                            problems.append(f"{where}: {key} decodes to {len(pcm)} frames at {rate} Hz, "
                                            f"catalog says {row['frames']} at {SAMPLE_RATE}")
                    elif ext == "json":
                        try:
                            same = json.loads(data) == _expected_json(row)
                        except ValueError:
                            same = False
                        if not same:
                            problems.append(f"{where}: {key}.json differs from its catalog row")
        except (tarfile.TarError, EOFError) as err:
            problems.append(f"{where}: does not read as a tar ({err})")
        stream.drain()
    for row in rows:
        got = seen.get(row["key"], {})
        if row["codec"] not in got or "json" not in got:
            problems.append(f"{where}: {row['key']} lacks .{row['codec']} or .json")
    return stream, list(index_lines(iter(members)))


def verify_shard(job: ShardCheck) -> ShardFindings:
    """Problems found in one shard (none: the shard is sound). Runs in a worker."""
    from shards.shardfile import index_text, parse_index  # here: shardfile imports webdataset (torch)

    root = Root(job.data, job.remote)
    where = f"{job.collection}/{job.shard}"
    problems: list[str] = []

    def done() -> ShardFindings:
        return ShardFindings(job.collection, job.shard, job.clips, tuple(problems))

    try:
        size = root.fs.size(root.path(job.path))
        if size != job.bytes:
            problems.append(f"{where}: tar bytes/sha256 differ from the shard index (corrupted or replaced)")
            return done()
        rows = read_part(root, job.collection, job.shard).to_pylist()  # one shard's rows
        stream, lines = _check_members(job, root, rows, problems)
        if stream.pos != job.bytes or stream.sha.hexdigest() != job.sha256:
            problems[:] = [f"{where}: tar bytes/sha256 differ from the shard index (corrupted or replaced)"]
            return done()
        keys = [k for k, _ in lines]
        if keys != [r["key"] for r in rows]:
            problems.append(f"{where}: tar holds {len(keys)} clips, catalog lists {len(rows)} (or order differs)")
        if job.clips != len(keys):
            problems.append(f"{where}: index says {job.clips} clips, tar holds {len(keys)}")
        derived = dict(lines)
        wrong = [r["key"] for r in rows if r["key"] in derived and r["idx_line"] != derived[r["key"]]]
        if wrong:
            problems.append(f"{where}: {len(wrong)} catalog idx_line(s) differ from the tar's members "
                            f"(first: {wrong[0]})")
        idx_text = root.read_bytes(job.idx).decode()
        expected = wds2idx_text(root.path(job.path)) if root.is_local else index_text(line for _, line in lines)
        if lines and idx_text != expected:
            problems.append(f"{where}: .idx differs from what wds2idx writes for this tar")
        try:
            parse_index(idx_text)  # what our readers (and DALI) must be able to parse
        except ValueError as err:
            problems.append(f"{where}: .idx does not parse ({err})")
        tar_lines = set(derived.values())
        for diet, rel, clips in job.diets:
            try:
                listed = root.read_bytes(rel).decode().splitlines()
            except FileNotFoundError:
                problems.append(f"diet {diet}: {rel} is missing")
                continue
            if not listed or listed[0] != f"v1.2 {len(listed) - 1}" or len(listed) - 1 != clips:
                problems.append(f"diet {diet}: {rel} lists {len(listed) - 1} clips, its manifest {clips}")
            strays = [line for line in listed[1:] if line not in tar_lines]
            if strays:
                problems.append(f"diet {diet}: {rel}: {len(strays)} line(s) name no clip of {job.path}")
    except FileNotFoundError as err:
        problems.append(f"{where}: missing file ({err})")
    return done()


def _diet_checks(root: Root, report: Report) -> dict[tuple[str, str], list[tuple[str, str, int]]]:
    """Each diet's manifest-level checks (counts, clip table, shards that exist); returns the per-shard
    diet indexes the shard jobs check against their tars."""
    per_shard: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for name in root.listdir("diets", ".json"):
        if name.endswith(".stats.json"):
            continue
        diet = name[: -len(".json")]
        manifest = json.loads(root.read_bytes(f"diets/{name}"))
        shards = manifest.get("shards", [])
        if sum(s["clips"] for s in shards) != manifest.get("clips"):
            report.problems.append(f"diet {diet}: manifest says {manifest.get('clips')} clips, its shards "
                                   f"{sum(s['clips'] for s in shards)}")
        if sum(c["clips"] for c in manifest.get("per_corpus", {}).values()) != manifest.get("clips"):
            report.problems.append(f"diet {diet}: per-corpus counts do not add up to {manifest.get('clips')}")
        table = manifest.get("table")
        if table is None or not root.exists(table):
            report.problems.append(f"diet {diet}: no clip table (rewrite it with `python -m shards diet`)")
        elif table_rows(root, table) != manifest.get("clips"):
            report.problems.append(f"diet {diet}: clip table has {table_rows(root, table)} rows, "
                                   f"manifest {manifest.get('clips')}")
        for s in shards:
            per_shard.setdefault((s["collection"], s["shard"]), []).append((diet, s["idx"], s["clips"]))
    return per_shard


def check_verified(root: Root, collection: str) -> None:
    """ValueError unless `verify` passed `collection` as it is now (same shard index)."""
    rel = layout.verified_path(collection)
    if not root.exists(rel):
        raise ValueError(f"{root.url}: collection {collection!r} has not been verified (no {rel}): "
                         f"run `python -m shards verify {root.url} --collection {collection}`")
    record = json.loads(root.read_bytes(rel))
    now = hashlib.sha256(root.read_bytes(layout.shard_index_path(collection))).hexdigest()
    if record.get("shard_index_sha256") != now:
        raise ValueError(f"{root.url}: collection {collection!r} changed since it was verified (shard index "
                         f"sha256 differs): run `python -m shards verify {root.url} --collection {collection}`")


Progress = Callable[[str, int, int | None], None]  # (what, done, total or None while unknown)


def verify(data: str, only: list[str] | None = None, config: VerifyConfig = DEFAULT_VERIFY,
           remote: RemoteConfig = DEFAULT_REMOTE, progress: Progress | None = None) -> Report:
    """Verify every complete collection under `data` (or those in `only`) and every diet over them."""
    root = Root(data, remote)
    report = Report()
    tell = progress or (lambda what, done, total: None)
    tell(f"listing {root.url}", 0, None)
    names = [layout.check_collection(c) for c in only] if only else collections(root)
    if not names:
        report.problems.append(f"{data}: no complete collection (shards/<name>/_COMPLETE.json) found")
    tell("reading diet manifests", 0, None)
    diets = _diet_checks(root, report)
    jobs: list[ShardCheck] = []
    bad: set[str] = set()
    for collection in names:
        tell(f"reading the shard index of {collection}", 0, None)
        if not root.exists(layout.complete_path(collection)):
            report.problems.append(f"{collection}: not complete (no {layout.complete_path(collection)})")
            bad.add(collection)
            continue
        index = read_table(root, layout.shard_index_path(collection)).to_pylist()  # one row per shard
        parts = {n[: -len(".parquet")] for n in root.listdir(layout.clips_part_dir(collection), ".parquet")}
        extra = sorted(parts - {e["shard"] for e in index})
        if extra:
            report.problems.append(f"{collection}: catalog parts for shards missing from the index: {extra}")
            bad.add(collection)
        jobs += [ShardCheck(data, collection, e["shard"], e["path"], e["idx"], e["clips"], e["bytes"], e["sha256"],
                            tuple(diets.pop((collection, e["shard"]), ())), remote) for e in index]
    for (collection, shard), listed in sorted(diets.items()):
        if collection in names or not only:
            report.problems.append(f"diet {listed[0][0]}: reads {collection}/{shard}, which no complete "
                                   "collection holds")
    workers = default_workers() if config.workers is None else config.workers
    in_flight = 64 if (config.scheduler or config.jobqueue) else 2 * max(workers, 1)
    tell("verifying shards", 0, len(jobs))
    with make_executor(config.workers, config.scheduler, config.jobqueue) as executor:
        for done, found in enumerate(bounded_map(executor, verify_shard, jobs, in_flight), 1):
            report.problems += found.problems
            report.shards += 1
            report.clips += found.clips
            if found.problems:
                bad.add(found.collection)
            tell("verifying shards", done, len(jobs))
    for collection in names:
        _record(root, collection, collection not in bad, report)
    return report


def _record(root: Root, collection: str, sound: bool, report: Report) -> None:
    """Write (sound) or withdraw (not sound) the collection's verification record."""
    rel = layout.verified_path(collection)
    if not sound:
        if root.exists(rel):
            root.fs.rm(root.path(rel))
        return
    index = root.read_bytes(layout.shard_index_path(collection))
    record = {"collection": collection, "shard_index_sha256": hashlib.sha256(index).hexdigest(),
              "shards": len(read_table(root, layout.shard_index_path(collection), ["shard"]))}
    root.write_bytes(rel, json.dumps(record, indent=1, sort_keys=True).encode())
    report.verified.append(collection)
