"""Store tables: parts named by a manifest written last, so readers see the old data or the new, never a part;
schemas enforced with one-line refusals; one model fingerprint per partition; streaming reads."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurestore import tables
from shards.storage import Root

PART = {"model": "m1", "dataset": "esc50"}


def vectors(n: int, width: int = 4, seed: int = 0, sha: str = "sha-a", dataset: str = "esc50") -> pa.Table:
    """`n` embedding rows of width `width` with distinct keys and seeded values."""
    values = np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)
    return pa.table({
        "dataset": [dataset] * n, "key": [f"k{seed}-{i:03d}" for i in range(n)], "split": ["train"] * n,
        "label": [f"c{i % 3}" for i in range(n)], "model": ["m1"] * n, "model_sha": [sha] * n,
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width),
    })


def commit_parts(root: Root, generation: str, parts: list[pa.Table], sha: str = "sha-a",
                 replace: bool = False) -> dict:
    schema = tables.embeddings_schema(4)
    entries = [tables.write_part(root, "embeddings", PART, generation, f"s{i}", t, schema) for i, t in enumerate(parts)]
    return tables.commit(root, "embeddings", PART, entries, {"model_sha": sha}, schema, replace=replace)


def folder(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "store/embeddings/model=m1/dataset=esc50").iterdir())


def test_write_commit_read_round_trip(tmp_path):
    root = Root(tmp_path)
    parts = [vectors(5, seed=0), vectors(3, seed=1)]
    record = commit_parts(root, "g1", parts)
    assert record["rows"] == 8 and record["partition"] == PART and record["table"] == "embeddings"
    assert record["files"] == [{"name": "part-g1-s0.parquet", "rows": 5}, {"name": "part-g1-s1.parquet", "rows": 3}]
    assert json.loads((tmp_path / "store/embeddings/model=m1/dataset=esc50/_manifest.json").read_text()) == record
    got = tables.read(root, "embeddings", model="m1")
    assert got.schema.remove_metadata() == tables.embeddings_schema(4)
    assert got.to_pylist() == pa.concat_tables(parts).cast(tables.embeddings_schema(4)).to_pylist()
    assert tables.read(root, "embeddings", ["key"], dataset=["esc50", "other"]).column_names == ["key"]
    assert tables.partitions(root, "embeddings") == [PART]
    where = f"{root.url}/store/embeddings/model=m1/dataset=esc50"
    assert tables.files(root, "embeddings") == [f"{where}/part-g1-s{i}.parquet" for i in (0, 1)]
    assert tables.partitions(root, "embeddings", model="m2") == []
    with pytest.raises(FileNotFoundError, match="store table 'embeddings' has nothing committed for {'model': 'm2'}"):
        tables.read(root, "embeddings", model="m2")
    with pytest.raises(ValueError, match=r"has no partition key \['task'\]"):
        tables.partitions(root, "embeddings", task="x")


def test_a_reader_during_a_write_sees_the_old_data_until_the_commit(tmp_path):
    root = Root(tmp_path)
    old = [vectors(4, seed=0), vectors(2, seed=1)]
    commit_parts(root, "g1", old)
    schema = tables.embeddings_schema(4)
    new = [vectors(3, seed=7), vectors(5, seed=8)]
    entries = [tables.write_part(root, "embeddings", PART, "g2", f"s{i}", t, schema) for i, t in enumerate(new)]
    # parts of the new generation are on disk, not yet named: readers still see exactly the old rows
    assert folder(tmp_path) == ["_manifest.json", "part-g1-s0.parquet", "part-g1-s1.parquet",
                                "part-g2-s0.parquet", "part-g2-s1.parquet"]
    assert tables.read(root, "embeddings")["key"].to_pylist() == pa.concat_tables(old)["key"].to_pylist()
    assert tables.rows(root, "embeddings") == 6
    tables.commit(root, "embeddings", PART, entries, {"model_sha": "sha-a"}, schema)
    assert tables.read(root, "embeddings")["key"].to_pylist() == pa.concat_tables(new)["key"].to_pylist()
    assert folder(tmp_path) == ["_manifest.json", "part-g2-s0.parquet", "part-g2-s1.parquet"]  # stale parts gone


def test_an_uncommitted_partition_is_invisible(tmp_path):
    root = Root(tmp_path)
    tables.write_part(root, "embeddings", PART, "g1", "s0", vectors(2), tables.embeddings_schema(4))
    assert tables.partitions(root, "embeddings") == [] and tables.files(root, "embeddings") == []
    assert tables.rows(root, "embeddings") == 0 and list(tables.scan(root, "embeddings")) == []


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop_columns(["label"]), "embeddings: rows lack column 'label' (string)"),
    (lambda t: t.set_column(6, "embedding", pa.FixedSizeListArray.from_arrays(
        pa.array(np.zeros(6 * 3, np.float32)), 3)),
     "embeddings: column 'embedding' is fixed_size_list<item: float>[3], expected fixed_size_list<item: float>[4]"),
    (lambda t: t.set_column(2, "split", pa.array([1] * 6, pa.int64())),
     "embeddings: column 'split' is int64, expected string"),
    (lambda t: t.set_column(6, "embedding", pa.FixedSizeListArray.from_arrays(
        pa.array(np.zeros(6 * 4, np.float64)), 4)),
     "embeddings: column 'embedding' is fixed_size_list<item: double>[4], expected fixed_size_list<item: float>[4]"),
    (lambda t: t.append_column("extra", pa.array([0] * 6)),
     "embeddings: unexpected columns ['extra'] (or a different order: expected ['dataset', 'key', 'split', 'label', "
     "'model', 'model_sha', 'embedding'])"),
])
def test_rows_of_another_schema_are_refused_with_one_line(tmp_path, change, message):
    with pytest.raises(ValueError) as err:
        tables.write_part(Root(tmp_path), "embeddings", PART, "g1", "s0", change(vectors(6)),
                          tables.embeddings_schema(4))
    assert str(err.value) == message
    assert not (tmp_path / "store").exists()  # nothing written


def test_another_fingerprint_under_the_same_name_is_refused_without_replace(tmp_path):
    root = Root(tmp_path)
    commit_parts(root, "g1", [vectors(2)], sha="sha-a")
    commit_parts(root, "g1", [vectors(3)], sha="sha-a")  # same fingerprint: a plain re-commit
    with pytest.raises(ValueError) as err:
        commit_parts(root, "g2", [vectors(4, seed=3)], sha="sha-b")
    text = str(err.value)
    assert "\n" not in text and "holds model_sha sha-a, not sha-b" in text and "--replace" in text
    assert tables.rows(root, "embeddings") == 3 and folder(tmp_path) == ["_manifest.json", "part-g1-s0.parquet",
                                                                          "part-g2-s0.parquet"]
    commit_parts(root, "g2", [vectors(4, seed=3)], sha="sha-b", replace=True)
    assert tables.manifest(root, "embeddings", PART)["lineage"] == {"model_sha": "sha-b"}
    assert tables.rows(root, "embeddings") == 4 and folder(tmp_path) == ["_manifest.json", "part-g2-s0.parquet"]


def test_the_same_part_twice_is_refused(tmp_path):
    root, schema = Root(tmp_path), tables.embeddings_schema(4)
    entry = tables.write_part(root, "embeddings", PART, "g1", "s0", vectors(2), schema)
    with pytest.raises(ValueError, match="the same part was committed twice"):
        tables.commit(root, "embeddings", PART, [entry, entry], {}, schema)


@pytest.mark.parametrize("table, partition, message", [
    ("embeddings", {"model": "m1"}, "store table 'embeddings' is partitioned by ['model', 'dataset'], got ['model']"),
    ("embeddings", {"model": "m1", "dataset": "d", "x": "y"}, "partitioned by ['model', 'dataset'], got "
     "['dataset', 'model', 'x']"),
    ("embeddings", {"model": "../up", "dataset": "d"}, "embeddings: model='../up' is not a store name"),
    ("embeddings", {"model": "a/b", "dataset": "d"}, "embeddings: model='a/b' is not a store name"),
    ("items", {"dataset": ""}, "items: dataset='' is not a store name"),
    ("items", {"dataset": "-x"}, "items: dataset='-x' is not a store name"),
    ("items", {"dataset": 3}, "items: dataset=3 is not a store name"),
    ("items", {"dataset": "x" * 97}, "is not a store name"),
    ("nope", {}, "store table 'nope': expected one of"),
])
def test_partition_names_are_validated(tmp_path, table, partition, message):
    with pytest.raises(ValueError) as err:
        tables.partition_dir(table, partition)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_valid_names_and_part_names():
    assert tables.partition_dir("embeddings", {"dataset": "esc50", "model": "run-all_v2.s42"}) == \
        "store/embeddings/model=run-all_v2.s42/dataset=esc50"
    assert tables.partition_dir("probe_summary", {}) == "store/probe_summary"
    assert tables.part_name("0123abcd", "shard-000001") == "part-0123abcd-shard-000001.parquet"
    with pytest.raises(ValueError, match="part generation='g/1'"):
        tables.part_name("g/1", "s0")
    with pytest.raises(ValueError, match="embedding width=0: expected >= 1"):
        tables.embeddings_schema(0)


def test_scan_streams_batches_part_by_part(tmp_path):
    root = Root(tmp_path)
    commit_parts(root, "g1", [vectors(10, seed=0), vectors(7, seed=1), vectors(1, seed=2)])
    batches = list(tables.scan(root, "embeddings", ["key", "embedding"], batch_size=4))
    assert [b.num_rows for b in batches] == [4, 4, 2, 4, 3, 1]
    assert all(b.schema.names == ["key", "embedding"] for b in batches)
    keys = [k for b in batches for k in b.column("key").to_pylist()]
    assert keys == [f"k{s}-{i:03d}" for s, n in ((0, 10), (1, 7), (2, 1)) for i in range(n)]


def test_rows_come_from_the_manifests(tmp_path):
    root = Root(tmp_path)
    commit_parts(root, "g1", [vectors(10), vectors(7, seed=1)])
    tables.write(root, "items", {"dataset": "esc50"}, items_rows(3), tables.ITEMS_SCHEMA, {"dataset": "esc50"})
    for part in (tmp_path / "store/embeddings").rglob("*.parquet"):
        part.write_bytes(b"not parquet")  # rows() never opens a part
    assert tables.rows(root, "embeddings") == 17 and tables.rows(root, "embeddings", model="m1", dataset="esc50") == 17
    assert tables.rows(root, "items") == 3 and tables.rows(root, "embeddings", model="other") == 0


def items_rows(n: int) -> pa.Table:
    return pa.table({"dataset": ["esc50"] * n, "key": [f"k{i}" for i in range(n)], "clip": [f"k{i}" for i in range(n)],
                     "split": ["train"] * n, "label": ["dog"] * n, "group": [None] * n, "start_ms": [0] * n,
                     "duration_ms": [500] * n, "pitch": pa.nulls(n, pa.int16()), "gender": [None] * n,
                     "limited_train": pa.nulls(n, pa.bool_())}, schema=tables.ITEMS_SCHEMA)


def test_write_replaces_a_small_partition_whole(tmp_path):
    root = Root(tmp_path)
    lineage = tables.lineage(dataset="esc50", seed=0)
    assert {"dataset", "seed", "code_version", "created"} <= set(lineage)
    tables.write(root, "items", {"dataset": "esc50"}, items_rows(3), tables.ITEMS_SCHEMA, lineage)
    tables.write(root, "items", {"dataset": "esc50"}, items_rows(2), tables.ITEMS_SCHEMA, lineage)
    assert tables.read(root, "items")["key"].to_pylist() == ["k0", "k1"]
    assert len(list((tmp_path / "store/items/dataset=esc50").glob("*.parquet"))) == 1
    summary = pa.table({"model": ["m"], "task": ["t"]})
    tables.write(root, "probe_summary", {}, summary, summary.schema, {})
    assert tables.read(root, "probe_summary").to_pylist() == [{"model": "m", "task": "t"}]
    assert tables.partitions(root, "probe_summary") == [{}]


def test_parts_are_zstd_with_byte_stream_split_vectors(tmp_path):
    root = Root(tmp_path)
    commit_parts(root, "g1", [vectors(20)])
    meta = pq.ParquetFile(tables.files(root, "embeddings")[0]).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert all(c.compression == "ZSTD" for c in columns.values())
    assert "BYTE_STREAM_SPLIT" in columns["embedding.list.element"].encodings
    assert "RLE_DICTIONARY" in columns["key"].encodings
    # min/max of vector elements prune nothing and cost a quarter of the write: only scalars have them
    assert not columns["embedding.list.element"].is_stats_set
    assert columns["key"].statistics.min == "k0-000" and columns["key"].statistics.max == "k0-019"
