"""Diets without a second copy of the audio: per-diet DALI indexes over the same shards.

A DALI v1.2 index may list a subset of a tar's samples, and DALI then reads exactly those. So a diet is a
set of per-shard index files (the catalog already holds each sample's index line) plus a manifest that
readers (webdataset with ranged reads, DALI) follow; `speech`, `nonspeech` and `all` never read each
other's bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shards import layout
from shards.catalog import collections as complete_collections
from shards.catalog import read_catalog
from shards.shardfile import index_text
from shards.storage import Root

# The paper's three diets, by domain; any other diet names corpora explicitly.
DIETS = {"speech": ("speech",), "nonspeech": ("nonspeech",), "all": ("speech", "nonspeech")}


@dataclass(frozen=True, slots=True)
class DietShard:
    collection: str
    shard: str
    tar: str  # path under the data root
    idx: str  # the diet's own index for that tar
    samples: int
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
        raise ValueError(f"diet {diet!r} selects no samples in collections {names}")
    manifest = {"diet": diet, "collections": names, "corpora": corpora, "samples": sum(s.samples for s in shards),
                "seconds": sum(s.seconds for s in shards),
                "per_corpus": {c: {"samples": n, "seconds": s} for c, (n, s) in sorted(per_corpus.items())},
                "shards": [{"collection": s.collection, "shard": s.shard, "tar": s.tar, "idx": s.idx,
                            "samples": s.samples, "seconds": s.seconds} for s in shards]}
    root.write_bytes(layout.diet_manifest_path(diet), json.dumps(manifest, indent=1).encode())
    return manifest
