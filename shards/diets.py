"""Diets without a second copy of the audio: per-diet DALI indexes over the same shards.

A DALI v1.2 index may list a subset of a tar's samples, and DALI then reads exactly those. So a diet is a
set of per-shard index files (the catalog already holds each clip's index line; a diet that takes every
clip of a shard names the shard's own index), a clip table
(`diets/<diet>.parquet`: tar, codec, corpus, offset, size, frames per clip, what the loaders read in one
columnar read) and a manifest written last that names them; `speech`, `nonspeech` and `all` never read
each other's bytes. Everything is computed column-wise, part by part: at 3.85 M clips no per-clip Python
object exists.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shards import layout, lease
from shards.catalog import arrow_on_c_heap, collection_shards, read_part, read_table, table_rows
from shards.catalog import collections as complete_collections
from shards.sampler import Sampler
from shards.storage import Root

log = logging.getLogger(__name__)


class EmptyDiet(ValueError):
    """A diet whose selection is empty."""


# The paper's three diets, by domain; any other diet names corpora explicitly.
DIETS = {"speech": ("speech",), "nonspeech": ("nonspeech",), "all": ("speech", "nonspeech")}
# The diet table (`diets/<diet>.parquet`): one row per clip, in manifest order (shard, then position);
# `shard`, `codec`, `corpus` index the manifest's `shards`, `codecs`, `corpora` lists.
DIET_SCHEMA = pa.schema([("shard", pa.int32()), ("codec", pa.int8()), ("corpus", pa.int16()),
                         ("offset", pa.int64()), ("size", pa.int64()), ("frames", pa.int64())])
ROW_GROUP = 1 << 16  # rows per Parquet row group of a diet table (2 MB), buffered per diet
WRITES_IN_FLIGHT = 16  # per-shard index files uploaded at once (S3 PUTs are latency bound)
READ_THREADS = 4  # catalog parts read and parsed at once (S3 GETs are latency bound; Arrow frees the GIL)
_CODED = ("corpus", "domain", "codec")  # read as codes into their few names (in _Part's field order)


@dataclass(frozen=True, slots=True)
class DietSpec:
    """What a diet selects: clips of `corpora` if given, else clips of `domains`."""

    name: str
    corpora: tuple[str, ...] | None = None
    domains: tuple[str, ...] = ()

    @classmethod
    def of(cls, diet: str, corpora: list[str] | None = None) -> DietSpec:
        layout.check_name(diet, "diet")
        if corpora is not None:
            if not corpora:
                raise ValueError(f"diet {diet!r}: --corpora is empty; name at least one corpus")
            return cls(diet, tuple(layout.check_name(c) for c in corpora))
        if diet not in DIETS:
            raise ValueError(f"diet {diet!r}: not one of {sorted(DIETS)}; name its corpora (--corpora a,b)")
        return cls(diet, None, DIETS[diet])

    def keep(self, part: _Part) -> np.ndarray:
        """Which clips of `part` the diet takes (a bool per clip)."""
        codes, names = part.corpus if self.corpora is not None else part.domain
        wanted = self.corpora if self.corpora is not None else self.domains
        return np.array([name in wanted for name in names], dtype=bool)[codes]


def member_ranges(idx_lines: pa.ChunkedArray | pa.Array, codec: pa.ChunkedArray | pa.Array,
                  where: str = "catalog") -> tuple[np.ndarray, np.ndarray]:
    """(offset, size) of each clip's `codec` member, parsed from its DALI index line without a Python
    loop (`ext offset size name` per member). Every line of one table must list the same member count."""
    if len(idx_lines) == 0:  # a shard whose every clip was quarantined at decode
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    fields = pc.split_pattern(idx_lines, " ")
    counts = pc.unique(pc.list_value_length(fields)).to_pylist()
    if len(counts) != 1 or counts[0] is None or counts[0] % 4 or counts[0] == 0:
        raise ValueError(f"{where}: index lines list {sorted(c for c in counts if c is not None)} fields; "
                         "expected the same multiple of 4 (ext offset size name per member) on every line")
    offset = size = found = None
    for j in range(counts[0] - 4, -1, -4):  # from the last member (a line's last member of its codec wins)
        mine = pc.equal(pc.list_element(fields, j), codec)
        new = mine if found is None else pc.and_(mine, pc.invert(found))
        if not pc.any(new).as_py():
            continue
        at = pc.cast(pc.list_element(fields, j + 1), pa.int64())
        length = pc.cast(pc.list_element(fields, j + 2), pa.int64())
        if found is None:
            offset, size, found = at, length, mine
        else:
            offset, size, found = pc.if_else(new, at, offset), pc.if_else(new, length, size), pc.or_(found, mine)
        if pc.all(found).as_py():  # the members before are not parsed (the codec's sorts after `json`)
            return offset.to_numpy(), size.to_numpy()
    raise ValueError(f"{where}: some index lines have no member of the clip's codec")


def index_bytes(idx_lines: pa.ChunkedArray | pa.Array) -> bytes:
    """The DALI index file (`shards.shardfile.index_text`) of these lines, joined by Arrow, not per line."""
    from shards.shardfile import IDX_VERSION  # here: shardfile imports webdataset, which imports torch

    if isinstance(idx_lines, pa.ChunkedArray):
        idx_lines = idx_lines.combine_chunks()
    ended = pc.binary_join_element_wise(idx_lines, pa.scalar(""), "\n")  # each line + "\n"
    offsets = np.frombuffer(ended.buffers()[1], np.int32)[ended.offset:ended.offset + len(ended) + 1]
    body = ended.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]] if len(ended) else b""
    return f"{IDX_VERSION} {len(ended)}\n".encode() + body


class _Names:
    """Ids for a handful of names (corpora, codecs) in order of first appearance."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[tuple[str, ...], np.ndarray] = {}  # a part's names -> their ids (-1: not seen yet)

    def ids(self, codes: np.ndarray, names: list[str]) -> np.ndarray:
        """The ids of `names[codes]`; names not seen before join in the order they first appear in codes."""
        key = tuple(names)
        lut = self._ids.get(key)
        if lut is None or (lut[np.bincount(codes, minlength=len(names)) > 0] < 0).any():
            present, first = np.unique(codes, return_index=True)
            self.names += [names[c] for c in present[np.argsort(first)] if names[c] not in self.names]
            lut = self._ids[key] = np.array([self.names.index(n) if n in self.names else -1 for n in names])
        return lut[codes]


@dataclass(frozen=True, slots=True)
class _Part:
    """One shard's catalog rows as the diets use them: text columns as (codes, their few names), numbers
    and member ranges as numpy, the index lines as Arrow."""

    corpus: tuple[np.ndarray, list[str]]
    domain: tuple[np.ndarray, list[str]]
    codec: tuple[np.ndarray, list[str]]
    seconds: np.ndarray
    frames: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    idx_line: pa.Array

    def __len__(self) -> int:
        return len(self.seconds)


class _DietWriter:
    """One diet being written: its per-shard indexes (uploaded a few at once), its clip table (streamed
    in row groups), its counts."""

    def __init__(self, root: Root, spec: DietSpec, uploads: ThreadPoolExecutor):
        self.root, self.spec, self.uploads = root, spec, uploads
        self.shards: list[dict] = []
        self.corpora, self.codecs = _Names(), _Names()
        self.per_corpus: dict[str, list] = {}
        self.pending: set[Future] = set()
        self.buffer: list[pa.RecordBatch] = []
        self.buffered = 0
        self.out = root.writer(layout.diet_table_path(spec.name))
        # no dictionaries: offsets, sizes and frames barely repeat (25 % less time, 35 % fewer bytes)
        self.parquet = pq.ParquetWriter(self.out.file, DIET_SCHEMA, compression="zstd", use_dictionary=False)

    def add(self, collection: str, entry: dict, part: _Part) -> None:
        keep = self.spec.keep(part)
        clips = int(keep.sum())
        if clips == 0:
            return
        if clips == len(part):  # every clip of the shard: its own index is this diet's (the `all` diet
            idx = entry["idx"]  # writes no copy: a third of the files, 12 % of the CPU at 3.85 M)
        else:
            idx = layout.diet_idx_path(collection, self.spec.name, entry["shard"])
            self._upload(idx, index_bytes(part.idx_line.filter(pa.array(keep))))
        seconds = part.seconds[keep]
        corpus_ids = self.corpora.ids(part.corpus[0][keep], part.corpus[1])
        for i, (n, s) in enumerate(zip(np.bincount(corpus_ids), np.bincount(corpus_ids, weights=seconds))):
            if n:
                counts = self.per_corpus.setdefault(self.corpora.names[i], [0, 0.0])
                counts[0] += int(n)
                counts[1] += float(s)
        self.shards.append({"collection": collection, "shard": entry["shard"], "tar": entry["path"], "idx": idx,
                            "clips": clips, "seconds": float(seconds.sum()), "bytes": entry["bytes"]})
        batch = pa.RecordBatch.from_arrays([
            pa.array(np.full(clips, len(self.shards) - 1, np.int32)),
            pa.array(self.codecs.ids(part.codec[0][keep], part.codec[1]).astype(np.int8)),
            pa.array(corpus_ids.astype(np.int16)),
            pa.array(part.offset[keep]), pa.array(part.size[keep]), pa.array(part.frames[keep])],
            schema=DIET_SCHEMA)
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        if self.buffered >= ROW_GROUP:
            self._flush()

    def _upload(self, rel: str, data: bytes) -> None:
        if len(self.pending) >= WRITES_IN_FLIGHT:
            done, self.pending = wait(self.pending, return_when="FIRST_COMPLETED")
            for f in done:
                f.result()
        self.pending.add(self.uploads.submit(self.root.write_bytes, rel, data))

    def _flush(self) -> None:
        if self.buffer:
            self.parquet.write_table(pa.Table.from_batches(self.buffer, DIET_SCHEMA), row_group_size=ROW_GROUP)
            self.buffer, self.buffered = [], 0

    def abort(self) -> None:
        wait(self.pending)
        self.parquet.close()
        self.out.__exit__(RuntimeError, RuntimeError("aborted"), None)  # discards the temporary table

    def commit(self, collections: list[str]) -> dict:
        """Table, then indexes, then the manifest last (what readers look for): returns the manifest."""
        spec = self.spec
        for f in wait(self.pending).done:
            f.result()
        if not self.shards:
            self.abort()
            raise EmptyDiet(f"diet {spec.name!r} selects no clips in collections {collections}: not written")
        self._flush()
        self.parquet.close()
        self.out.__exit__(None, None, None)
        manifest = {"diet": spec.name, "collections": collections,
                    "corpora_selected": list(spec.corpora) if spec.corpora is not None else None,
                    "domains": list(spec.domains), "clips": sum(s["clips"] for s in self.shards),
                    "seconds": sum(s["seconds"] for s in self.shards),
                    "per_corpus": {c: {"clips": n, "seconds": s} for c, (n, s) in sorted(self.per_corpus.items())},
                    "table": layout.diet_table_path(spec.name), "corpora": self.corpora.names,
                    "codecs": self.codecs.names, "shards": self.shards}
        self.root.write_bytes(layout.diet_manifest_path(spec.name), json.dumps(manifest, indent=1).encode())
        return manifest


def write_diets(data: str, specs: list[DietSpec], collections: list[str] | None = None,
                wait: float = lease.DIETS_WAIT_SECONDS) -> dict[str, dict]:
    """Write each diet's per-shard indexes, clip table and manifest in one pass over the catalog, part by
    part (memory: one shard's catalog rows); returns {diet: manifest}. A diet that selects nothing raises
    EmptyDiet and leaves any earlier version of itself in place.

    By default diets draw on every complete pre-training collection, never on transfer datasets. A
    collection that is not complete (no completion record, or a shard without its catalog part) is an
    error: a diet is never silently rebuilt over fewer clips. Written holding the diets' lease
    (`shards.lease`), waiting up to `wait` seconds for another writer (an ingest or `shards diet`): which
    collections are complete is read under the lease, so the last writer's diets include every collection."""
    with lease.held_diets(Root(data), wait):
        return _write_diets(data, specs, collections)


def _write_diets(data: str, specs: list[DietSpec], collections: list[str] | None) -> dict[str, dict]:
    root = Root(data)
    names = [layout.check_collection(c) for c in collections] if collections else \
        complete_collections(root, purpose="pretrain")  # never held-out datasets
    if not names:
        raise ValueError(f"{data}: no complete pre-training collection to build diets from")
    plan = {c: collection_shards(root, c) for c in names}  # refuses incomplete collections up front
    jobs = [(c, shard) for c, shards in plan.items() for shard in shards]
    entries = {}
    for collection in plan:
        index = read_table(root, layout.shard_index_path(collection), ["shard", "path", "idx", "bytes"])
        entries.update({(collection, e["shard"]): e for e in index.to_pylist()})
    with (ThreadPoolExecutor(WRITES_IN_FLIGHT) as uploads, ThreadPoolExecutor(READ_THREADS) as readers,
          arrow_on_c_heap()):
        writers = [_DietWriter(root, spec, uploads) for spec in specs]
        try:
            for (collection, shard), part in zip(jobs, _in_order(readers, _read_part, root, jobs)):
                for writer in writers:
                    writer.add(collection, entries[collection, shard], part)
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        written, empty = {}, []
        for writer in writers:
            try:
                written[writer.spec.name] = writer.commit(names)
            except EmptyDiet as err:
                empty.append(err)
    if empty and not written:
        raise empty[0]
    for err in empty:
        log.warning("%s", err)
    return written


def _read_part(root: Root, job: tuple[str, str]) -> _Part:
    collection, shard = job
    table = read_part(root, collection, shard, ["corpus", "domain", "seconds", "frames", "codec", "idx_line"],
                      dictionary=_CODED).unify_dictionaries()
    coded = {name: table.column(name).combine_chunks() for name in _CODED}
    codec = coded["codec"].dictionary.take(coded["codec"].indices)
    offset, size = member_ranges(table.column("idx_line"), codec, f"{collection}/{shard}")
    return _Part(*((c.indices.to_numpy(zero_copy_only=False), c.dictionary.to_pylist()) for c in coded.values()),
                 _numbers(table.column("seconds")), _numbers(table.column("frames")), offset, size,
                 table.column("idx_line").combine_chunks())


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    return column.combine_chunks().to_numpy() if column.num_chunks != 1 else column.chunk(0).to_numpy()


def _in_order(pool: ThreadPoolExecutor, fn, root: Root, jobs: list) -> Iterator:
    """fn(root, job) for each job, in order, with up to READ_THREADS * 2 jobs running ahead (Arrow and
    Parquet release the GIL, so parts are read and parsed while the writers handle earlier ones)."""
    ahead: deque[Future] = deque()
    for job in jobs:
        ahead.append(pool.submit(fn, root, job))
        if len(ahead) > 2 * READ_THREADS:
            yield ahead.popleft().result()
    while ahead:
        yield ahead.popleft().result()


def write_diet(data: str, diet: str, corpora: list[str] | None = None, collections: list[str] | None = None,
               wait: float = lease.DIETS_WAIT_SECONDS) -> dict:
    """Write one diet (see `write_diets`); returns its manifest."""
    spec = DietSpec.of(diet, corpora)
    written = write_diets(data, [spec], collections, wait)
    return written[spec.name]


def write_default_diets(data: str, wait: float = lease.DIETS_WAIT_SECONDS) -> dict[str, dict]:
    """The paper's three diets over every pre-training collection, in one pass; a diet that would select
    nothing (a speech-only ingest has no `nonspeech` diet) is skipped with a warning."""
    return write_diets(data, [DietSpec.of(d) for d in DIETS], wait=wait)


@dataclass(frozen=True)
class ClipTable:
    """A diet's clips as columns (no per-clip Python objects: millions of rows stay small).

    `tar_id` indexes `tars` (URLs readers open; `tar_bytes` their sizes), `codec_id` indexes `codecs`,
    `corpus_id` indexes `corpora`; `offset`/`size` locate each audio member, `frames` is its length in
    PCM frames.
    """

    tars: list[str]
    codecs: list[str]
    corpora: list[str]
    tar_id: np.ndarray
    codec_id: np.ndarray
    corpus_id: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    frames: np.ndarray
    tar_bytes: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.offset)


def read_manifest(root: Root, diet: str) -> dict:
    rel = layout.diet_manifest_path(diet)
    if not root.exists(rel):
        raise FileNotFoundError(f"{root.url}: no diet {diet!r} ({rel}); write it with "
                                f"`python -m shards diet {root.url}`")
    return json.loads(root.read_bytes(rel))


def load_diet(data: str, diet: str, require_verified: bool = False) -> ClipTable:
    """The clips of diet `diet` under data root `data`, in manifest order (shard, then position): one
    columnar read of its clip table. `require_verified`: refuse collections `verify` has not passed as
    they are now (see `shards.verify.is_verified`)."""
    root = Root(data)
    manifest = read_manifest(root, diet)
    if "table" not in manifest:
        raise ValueError(f"{data}: diet {diet!r} was written by an older version (no clip table): rewrite it "
                         f"with `python -m shards diet {data} --diet {diet}`")
    if require_verified:
        from shards.verify import check_verified

        for collection in manifest["collections"]:
            check_verified(root, collection)
    try:
        rows = table_rows(root, manifest["table"])
    except FileNotFoundError:
        raise FileNotFoundError(f"{data}: diet {diet!r} lacks its clip table {manifest['table']}: rewrite it "
                                f"with `python -m shards diet {data} --diet {diet}`") from None
    if rows != manifest["clips"]:
        raise ValueError(f"{data}: diet {diet!r}: clip table has {rows} rows, manifest says "
                         f"{manifest['clips']} clips (rewrite the diet)")
    # A column at a time: the table's row groups are chunks, which to_numpy concatenates into a copy, so
    # reading the whole table first would hold every column twice (3.85 M clips: 119 MB of arrays).
    col = {name: read_table(root, manifest["table"], [name]).column(name).to_numpy() for name in DIET_SCHEMA.names}
    return ClipTable([root.url_of(s["tar"]) for s in manifest["shards"]], manifest["codecs"], manifest["corpora"],
                     col["shard"], col["codec"], col["corpus"], col["offset"], col["size"], col["frames"],
                     tuple(s["bytes"] for s in manifest["shards"]))


def write_rank_indexes(data: str, diet: str, sampler: Sampler, epoch: int) -> list[dict]:
    """The sampler's choice for (epoch, rank) as DALI index files, one per tar that holds any of it.

    For `fn.readers.webdataset(paths=[...tar], index_paths=[...idx])`: the rank then reads exactly its
    sample-level share of the epoch (the same samples the torch/DALI loaders give that rank), each
    tar's lines in the sampler's order. Returns [{"tar", "idx", "clips"}] with URLs.
    """
    from shards.shardfile import index_text

    root = Root(data)
    manifest = read_manifest(root, diet)
    if manifest["clips"] != sampler.num_clips:
        raise ValueError(f"diet {diet!r} has {manifest['clips']} clips, the sampler was made for {sampler.num_clips}")
    order = sampler.rank_order(epoch)
    position = np.full(sampler.num_clips, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    written, first = [], 0
    for shard in manifest["shards"]:  # the order load_diet numbers clips in
        lines = root.read_bytes(shard["idx"]).decode().splitlines()[1:]
        if first + len(lines) > sampler.num_clips or len(lines) != shard["clips"]:
            raise ValueError(f"diet {diet!r}: {shard['idx']} lists {len(lines)} clips, the manifest "
                             f"{shard['clips']} (rewrite the diet)")
        mine = sorted((int(position[first + j]), line) for j, line in enumerate(lines) if position[first + j] >= 0)
        first += len(lines)
        if mine:
            rel = layout.rank_idx_path(diet, epoch, sampler.rank, shard["collection"], shard["shard"])
            root.write_bytes(rel, index_text(line for _, line in mine).encode())
            written.append({"tar": root.url_of(shard["tar"]), "idx": root.url_of(rel), "clips": len(mine)})
    if first != sampler.num_clips:
        raise ValueError(f"diet {diet!r}: its indexes list {first} clips, the manifest {sampler.num_clips}")
    return written
