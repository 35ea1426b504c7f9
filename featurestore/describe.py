"""`python -m featurestore describe`: acoustic descriptors (featurestore/descriptors.py) of a dataset's items
into `store/descriptors/dataset=<d>/`, by default of its RSA items only (SPEC §4 needs no more).

Like embedding: one job per shard on the shared executor, parts named by a generation (the descriptor set,
pitch on or off, and the subset), one manifest committed at the end, re-runs skip what is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from featurestore import items as items_mod
from featurestore import tables
from featurestore.audio import ShardAudio
from featurestore.config import DescribeConfig
from featurestore.embed import ITEM_COLUMNS, _by_shard, _shard_of
from shards.executor import bounded_map, make_executor
from shards.storage import Root

log = logging.getLogger(__name__)


def descriptors_schema(pitch: bool) -> pa.Schema:
    from featurestore.descriptors import DESCRIPTORS, PITCH_DESCRIPTORS

    names = [n for n in DESCRIPTORS if pitch or n not in PITCH_DESCRIPTORS]
    return pa.schema([("dataset", pa.string()), ("key", pa.string()), ("split", pa.string())]
                     + [(n, pa.float64()) for n in names])


@dataclass(frozen=True, slots=True)
class Job:
    data: str
    dataset: str
    shard: str
    generation: str
    pitch: bool
    items: pa.Table


def describe_job(job: Job) -> dict:
    from featurestore.descriptors import describe_many

    root = Root(job.data)
    waves = ShardAudio(root, job.dataset, job.shard).waves(job.items)
    values = describe_many(waves, 16_000, pitch=job.pitch)
    schema = descriptors_schema(job.pitch)
    n = job.items.num_rows
    columns = {"dataset": pa.array([job.dataset] * n, pa.string()), "key": job.items["key"],
               "split": job.items["split"]}
    columns.update({name: values[name] for name in schema.names[3:]})
    table = pa.table(columns, schema=schema)
    return tables.write_part(root, "descriptors", {"dataset": job.dataset}, job.generation, job.shard, table, schema)


def _subset(root: Root, dataset: str, subset: str) -> pa.Table:
    items = tables.read(root, "items", ITEM_COLUMNS, dataset=dataset)
    if subset == "all":
        return items
    chosen = tables.read(root, "rsa_items", ["key", "purpose"], dataset=dataset)
    keys = chosen.filter(pc.equal(chosen["purpose"], subset))["key"]
    return items.filter(pc.is_in(items["key"], value_set=keys))


def describe_dataset(cfg: DescribeConfig, dataset: str, on_items: Callable[[int, int], None] | None = None) -> int:
    from featurestore.descriptors import DESCRIPTORS

    root = Root(cfg.data)
    items_mod.check_dataset(root, dataset)
    if tables.manifest(root, "items", {"dataset": dataset}) is None:
        items_mod.write_items(root, dataset)
    chosen = _subset(root, dataset, cfg.subset)
    keys_digest = hashlib.sha256("\n".join(sorted(chosen["key"].to_pylist())).encode()).hexdigest()
    generation = hashlib.sha256(json.dumps([list(DESCRIPTORS), cfg.pitch, keys_digest]).encode()).hexdigest()[:12]
    partition = {"dataset": dataset}
    done = tables.manifest(root, "descriptors", partition)
    if done and done["lineage"].get("generation") == generation:
        if on_items:
            on_items(done["rows"], done["rows"])
        return done["rows"]
    jobs = [Job(cfg.data, dataset, shard, generation, cfg.pitch, rows)
            for shard, rows in _by_shard(chosen, _shard_of(root, dataset))]
    entries, seen = [], 0
    with make_executor(cfg.workers, cfg.scheduler) as pool:
        for entry in bounded_map(pool, describe_job, jobs, in_flight=max(2, 2 * max(1, cfg.workers))):
            entries.append(entry)
            seen += entry["rows"]
            if on_items:
                on_items(seen, chosen.num_rows)
    meta = tables.lineage(dataset=dataset, subset=cfg.subset, pitch=cfg.pitch, generation=generation,
                          descriptors=DESCRIPTORS, frames={"n_fft": 1024, "hop": 160, "window": "hann"})
    tables.commit(root, "descriptors", partition, entries, meta, descriptors_schema(cfg.pitch), replace=True)
    return seen


def describe(cfg: DescribeConfig, on_items: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
    root = Root(cfg.data)
    datasets = list(cfg.datasets) or items_mod.datasets(root)
    if not datasets:
        raise ValueError(f"{root.url}: no transfer dataset to describe; ingest one with `python -m ingest transfer`")
    return {d: describe_dataset(cfg, d, (lambda done, total, d=d: on_items(f"describe {d}", done, total))
                                if on_items else None) for d in datasets}
