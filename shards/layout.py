"""Every file name under the data root, built in one place (DESIGN.md "Data root")."""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# A clip key is `<corpus>__<recording>__<offset:09d>` in at most 95 characters (shardfile.MAX_KEY); a 48-char
# corpus name leaves 25 for a recording's prefix plus its 8-hex hash, so every key still names its recording.
MAX_NAME = 48


def check_name(name: str, what: str = "corpus") -> str:
    """Corpus, collection, diet, run ... names go into keys and paths: letters, digits, '_' and '-', no '__'
    (the key separator) and no trailing '_' (corpus `a_` with `x.wav` and corpus `a` with `_x.wav` would share
    a key), at most MAX_NAME characters; so no name can climb out of its folder ('../x') or split a key."""
    if (not isinstance(name, str) or not NAME.match(name) or "__" in name or name.endswith("_")
            or len(name) > MAX_NAME):
        raise ValueError(f"{what} name {name!r}: use 1-{MAX_NAME} letters, digits, '_' and '-' "
                         "(no '__', no trailing '_')")
    return name


def check_collection(name: str) -> str:
    return check_name(name, "collection")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def shard_dir(collection: str) -> str:
    return f"shards/{collection}"


def tar_path(collection: str, shard: str) -> str:
    return f"shards/{collection}/{shard}.tar"


def idx_path(collection: str, shard: str) -> str:
    return f"shards/{collection}/{shard}.idx"


def shard_index_path(collection: str) -> str:
    """The shard table: path, samples, bytes, seconds, sha256 per shard."""
    return f"shards/{collection}/index.parquet"


def complete_path(collection: str) -> str:
    """Completion record, written last: its presence means the collection is whole."""
    return f"shards/{collection}/_COMPLETE.json"


def verified_path(collection: str) -> str:
    """Written by `verify` when every shard of the collection checked sound, keyed to the shard index's
    sha256 (a rewritten collection is no longer verified)."""
    return f"shards/{check_collection(collection)}/_VERIFIED.json"


def lease_path(collection: str) -> str:
    """The lease of the one run that may write the collection (created only if absent)."""
    return f"catalog/{collection}/_LEASE.json"


def plan_path(collection: str) -> str:
    return f"catalog/{collection}/plan.parquet"


def manifest_path(collection: str) -> str:
    """Config + fingerprint, written with the plan."""
    return f"catalog/{collection}/manifest.json"


def clips_part_dir(collection: str) -> str:
    return f"catalog/{collection}/clips"


def clips_part_path(collection: str, shard: str) -> str:
    """A shard's catalog part; written after its tar and idx, so it marks the shard committed."""
    return f"catalog/{collection}/clips/{shard}.parquet"


def quarantine_dir(collection: str) -> str:
    return f"catalog/{collection}/quarantine"


def quarantine_path(collection: str, part: str) -> str:
    return f"catalog/{collection}/quarantine/{part}.parquet"


def duplicates_path(collection: str) -> str:
    return f"catalog/{collection}/duplicates.parquet"


def windows_path(collection: str) -> str:
    return f"catalog/{collection}/windows.parquet"


def diet_idx_path(collection: str, diet: str, shard: str) -> str:
    return f"shards/{check_collection(collection)}/diets/{check_name(diet, 'diet')}/{shard}.idx"


# The diets' lease (shards.lease): no diet name can be `_LEASE` (names start with a letter or digit), and it does
# not end in .json, which readers of diets/ take for a diet manifest.
DIETS_LEASE = "diets/_LEASE"


def diet_manifest_path(diet: str) -> str:
    """Which shards (tar + per-diet idx) a diet reads, across collections."""
    return f"diets/{check_name(diet, 'diet')}.json"


def diet_table_path(diet: str) -> str:
    """The diet's clips as columns (tar, codec, corpus, offset, size, frames): what loaders read."""
    return f"diets/{check_name(diet, 'diet')}.parquet"


def diet_stats_path(diet: str) -> str:
    """The diet's log-mel normalisation stats (`python -m shards stats`)."""
    return f"diets/{check_name(diet, 'diet')}.stats.json"


def model_dir(run: str) -> str:
    """A pre-training run: checkpoints, norm stats, config, metrics."""
    return f"models/{check_name(run, 'run')}"


def store_dir(table: str) -> str:
    """A feature-store table (embeddings, descriptors, probes, rsa, ...): partitioned Parquet under it."""
    return f"store/{check_name(table, 'store table')}"


def report_dir(name: str) -> str:
    """A report: report.html, report.md and its figures."""
    return f"reports/{check_name(name, 'report')}"


def rank_idx_path(diet: str, epoch: int, rank: int, collection: str, shard: str) -> str:
    """A rank's share of one epoch of a diet, as a DALI index over one tar (see diets.write_rank_indexes)."""
    return f"diets/{check_name(diet, 'diet')}-epochs/epoch-{epoch:05d}/rank-{rank:04d}/{collection}-{shard}.idx"
