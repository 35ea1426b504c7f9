"""Diets without a second copy of the audio: per-diet DALI indexes over the same shards.

A DALI v1.2 index may list a subset of a tar's samples, and DALI then reads exactly those. So a diet is a
set of per-shard index files (the catalog already holds each sample's index line) plus a manifest that
readers (webdataset with ranged reads, DALI) follow; `speech`, `nonspeech` and `all` never read each
other's bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from shards import layout
from shards.catalog import collections as complete_collections
from shards.catalog import read_catalog
from shards.shardfile import index_text, parse_index
from shards.sampler import Sampler
from shards.storage import Root

log = logging.getLogger(__name__)


class EmptyDiet(ValueError):
    """A diet whose selection is empty."""


# The paper's three diets, by domain; any other diet names corpora explicitly.
DIETS = {"speech": ("speech",), "nonspeech": ("nonspeech",), "all": ("speech", "nonspeech")}


@dataclass(frozen=True, slots=True)
class DietShard:
    collection: str
    shard: str
    tar: str  # path under the data root
    idx: str  # the diet's own index for that tar
    clips: int
    seconds: float


def write_diet(data: str, diet: str, corpora: list[str] | None = None,
               collections: list[str] | None = None) -> dict:
    """Write the diet's per-shard indexes and its manifest `diets/<diet>.json`; returns the manifest.

    By default a diet draws on every complete pre-training collection, never on transfer datasets.
    """
    root = Root(data)
    if corpora is None and diet not in DIETS:
        raise ValueError(f"diet {diet!r}: not one of {sorted(DIETS)}; name its corpora (--corpora a,b)")
    names = collections or complete_collections(root, purpose="pretrain")  # never held-out datasets
    if not names:
        raise ValueError(f"{data}: no complete pre-training collection to build diet {diet!r} from")
    shards, per_corpus = [], {}
    for collection in names:
        table = read_catalog(root, collection, ["shard", "corpus", "domain", "seconds", "idx_line"])
        lines: dict[str, list[str]] = {}
        seconds: dict[str, float] = {}
        for row in table.to_pylist():
            chosen = row["corpus"] in corpora if corpora is not None else row["domain"] in DIETS[diet]
            if not chosen:
                continue
            lines.setdefault(row["shard"], []).append(row["idx_line"])
            seconds[row["shard"]] = seconds.get(row["shard"], 0.0) + row["seconds"]
            counts = per_corpus.setdefault(row["corpus"], [0, 0.0])
            counts[0] += 1
            counts[1] += row["seconds"]
        for shard in sorted(lines):
            idx = layout.diet_idx_path(collection, diet, shard)
            root.write_bytes(idx, index_text(lines[shard]).encode())
            shards.append(DietShard(collection, shard, layout.tar_path(collection, shard), idx,
                                    len(lines[shard]), seconds[shard]))
    if not shards:
        raise EmptyDiet(f"diet {diet!r} selects no samples in collections {names}: not written")
    manifest = {"diet": diet, "collections": names, "corpora": corpora, "clips": sum(s.clips for s in shards),
                "seconds": sum(s.seconds for s in shards),
                "per_corpus": {c: {"clips": n, "seconds": s} for c, (n, s) in sorted(per_corpus.items())},
                "shards": [{"collection": s.collection, "shard": s.shard, "tar": s.tar, "idx": s.idx,
                            "clips": s.clips, "seconds": s.seconds} for s in shards]}
    root.write_bytes(layout.diet_manifest_path(diet), json.dumps(manifest, indent=1).encode())
    return manifest


def write_default_diets(data: str) -> dict[str, dict]:
    """The paper's three diets over every pre-training collection; a diet that would select nothing (a
    speech-only ingest has no `nonspeech` diet) is skipped with a warning instead of failing the run."""
    written = {}
    for diet in DIETS:
        try:
            written[diet] = write_diet(data, diet)
        except EmptyDiet as err:
            log.warning("%s", err)
    return written


@dataclass(frozen=True)
class ClipTable:
    """A diet's samples as columns (no per-sample Python objects: millions of rows stay small).

    `tar_id` indexes `tars` (URLs readers open), `codec_id` indexes `codecs`, `corpus_id` indexes
    `corpora`; `offset`/`size` locate each audio member, `frames` is its length in PCM frames.
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

    def __len__(self) -> int:
        return len(self.offset)


def load_diet(data: str, diet: str) -> ClipTable:
    """The samples of diet `diet` under data root `data`, in manifest order (shard, then position)."""
    root = Root(data)
    rel = layout.diet_manifest_path(diet)
    if not root.exists(rel):
        raise FileNotFoundError(f"{data}: no diet {diet!r} ({rel}); write it with `python -m shards diet {data}`")
    manifest = json.loads(root.read_bytes(rel))
    tars, codecs, corpora = [], [], []
    cols: dict[str, list] = {k: [] for k in ("tar_id", "codec_id", "corpus_id", "offset", "size", "frames")}
    for collection in manifest["collections"]:
        catalog = read_catalog(root, collection, ["key", "corpus", "frames", "codec"])
        by_key = {k: (c, n, x) for k, c, n, x in zip(*(catalog.column(f).to_pylist()
                                                       for f in ("key", "corpus", "frames", "codec")))}
        for shard in (s for s in manifest["shards"] if s["collection"] == collection):
            tars.append(root.url_of(shard["tar"]))
            for entry in parse_index(root.read_bytes(shard["idx"]).decode()):
                corpus, frames, codec = by_key[entry.key]
                for name, table in ((codec, codecs), (corpus, corpora)):
                    if name not in table:
                        table.append(name)
                offset, size = entry.members[codec]
                for k, v in (("tar_id", len(tars) - 1), ("codec_id", codecs.index(codec)),
                             ("corpus_id", corpora.index(corpus)), ("offset", offset), ("size", size),
                             ("frames", frames)):
                    cols[k].append(v)
    dtypes = {"tar_id": np.int32, "codec_id": np.int8, "corpus_id": np.int16, "offset": np.int64,
              "size": np.int64, "frames": np.int64}
    return ClipTable(tars, codecs, corpora, **{k: np.asarray(v, dtype=dtypes[k]) for k, v in cols.items()})


def write_rank_indexes(data: str, diet: str, sampler: Sampler, epoch: int) -> list[dict]:
    """The sampler's choice for (epoch, rank) as DALI index files, one per tar that holds any of it.

    For `fn.readers.webdataset(paths=[...tar], index_paths=[...idx])`: the rank then reads exactly its
    sample-level share of the epoch (the same samples the torch/DALI loaders give that rank), each
    tar's lines in the sampler's order. Returns [{"tar", "idx", "clips"}] with URLs.
    """
    root = Root(data)
    manifest = json.loads(root.read_bytes(layout.diet_manifest_path(diet)))
    order = sampler.rank_order(epoch)
    position = np.full(sampler.num_clips, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    written, first = [], 0
    for collection in manifest["collections"]:  # the order load_diet numbers samples in
        for shard in (s for s in manifest["shards"] if s["collection"] == collection):
            lines = root.read_bytes(shard["idx"]).decode().splitlines()[1:]
            mine = sorted((int(position[first + j]), line) for j, line in enumerate(lines)
                          if position[first + j] >= 0)
            first += len(lines)
            if mine:
                rel = layout.rank_idx_path(diet, epoch, sampler.rank, collection, shard["shard"])
                root.write_bytes(rel, index_text(line for _, line in mine).encode())
                written.append({"tar": root.url_of(shard["tar"]), "idx": root.url_of(rel), "clips": len(mine)})
    if first != sampler.num_clips:
        raise ValueError(f"diet {diet!r} has {first} clips, the sampler was made for {sampler.num_clips}")
    return written
