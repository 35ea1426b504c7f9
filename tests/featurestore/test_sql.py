"""SQL over the store: one view per table, `embeddings_<model>` with FLOAT[d] vectors, the README's kinds of
query (counts, joins, nearest neighbours) checked against the tables read directly, writes refused, results
written as CSV/Parquet, and the same on an S3 data root through the registered fsspec filesystem."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from featurestore import sql, tables
from featurestore.__main__ import main as store_main
from shards.storage import Root
from tests.featurestore.conftest import FILE_DATASETS, TINY, TINY_NAME, copy_of
from tests.s3server import s3_server  # noqa: F401

VIEW = "embeddings_byola_v2_random_tiny"


def matrix(data: Path | str, dataset: str | None = None) -> tuple[list[str], np.ndarray]:
    where = {"dataset": dataset} if dataset else {}
    table = tables.read(Root(data), "embeddings", ["key", "embedding"], model=TINY_NAME, **where)
    flat = table["embedding"].combine_chunks()
    return table["key"].to_pylist(), flat.values.to_numpy().reshape(len(flat), flat.type.list_size)


def test_one_view_per_table_and_one_per_model(embedded_set):
    con = sql.connect(Root(embedded_set))
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert views == {"items", "rsa_items", "embeddings", VIEW}
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {VIEW})").fetchall())
    assert types == {"dataset": "VARCHAR", "key": "VARCHAR", "split": "VARCHAR", "label": "VARCHAR",
                     "model": "VARCHAR", "model_sha": "VARCHAR", "embedding": "FLOAT[192]"}
    assert "embedding" not in {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE embeddings)").fetchall()}
    assert sql.view_name("run-all_v2.s42") == "embeddings_run_all_v2_s42"
    con.close()


def test_items_per_class_and_split(embedded_set):
    got = sql.query(Root(embedded_set), "SELECT dataset, split, label, count(*) AS n FROM items "
                                        "GROUP BY ALL ORDER BY ALL").to_pylist()
    rows = tables.read(Root(embedded_set), "items", ["dataset", "split", "label"]).to_pylist()
    expected = Counter((r["dataset"], r["split"], r["label"]) for r in rows)
    assert [((r["dataset"], r["split"], r["label"]), r["n"]) for r in got] == sorted(expected.items())
    assert sum(r["n"] for r in got) == 808 + 7 + 6 + 11


def test_embeddings_join_items(embedded_set):
    got = sql.query(Root(embedded_set), f"SELECT e.dataset, e.key, i.duration_ms, len(e.embedding) AS d FROM {VIEW} e "
                                        "JOIN items i USING (dataset, key) ORDER BY e.dataset, e.key").to_pylist()
    items = {(r["dataset"], r["key"]): r["duration_ms"] for r in tables.read(Root(embedded_set), "items").to_pylist()
             if r["dataset"] in FILE_DATASETS}
    assert [((r["dataset"], r["key"]), r["duration_ms"]) for r in got] == sorted(items.items())
    assert {r["d"] for r in got} == {192}
    counts = sql.query(Root(embedded_set), "SELECT model, dataset, count(*) AS n FROM embeddings GROUP BY ALL "
                                           "ORDER BY ALL").to_pylist()
    assert counts == [{"model": TINY_NAME, "dataset": d, "n": n} for d, n in zip(FILE_DATASETS, (7, 6, 11))]


def test_nearest_neighbours_with_array_cosine_distance(embedded_set):
    keys, vectors = matrix(embedded_set)
    query = keys[3]
    got = sql.query(Root(embedded_set), f"SELECT key, array_cosine_distance(embedding, (SELECT embedding FROM {VIEW} "
                                        "WHERE key = ?)) AS d FROM {view} WHERE key <> ? ORDER BY d LIMIT 5"
                    .replace("{view}", VIEW), [query, query]).to_pylist()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distance = 1.0 - unit.astype(np.float64) @ unit[3].astype(np.float64)
    order = [i for i in np.argsort(distance, kind="stable") if i != 3][:5]
    assert [r["key"] for r in got] == [keys[i] for i in order]
    np.testing.assert_allclose([r["d"] for r in got], distance[order], atol=1e-6)


@pytest.mark.parametrize("statement, kind", [
    ("COPY (SELECT * FROM items) TO '{tmp}/out.csv'", "COPY"),
    ("CREATE TABLE t AS SELECT * FROM items", "CREATE"),
    ("INSERT INTO items SELECT * FROM items", "INSERT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ("SET threads = 1", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("DROP VIEW items", "DROP"),
    ("INSTALL httpfs", "LOAD"),
    ("EXPORT DATABASE '{tmp}/dump'", "EXPORT"),
    ("SELECT 1; COPY (SELECT 1) TO '{tmp}/second.csv'", "COPY"),
    ("EXPLAIN ANALYZE COPY (SELECT 42) TO '{tmp}/explained.csv'", "EXPLAIN COPY"),
])
def test_statements_that_write_are_refused_with_one_line(embedded_set, tmp_path, statement, kind):
    with pytest.raises(ValueError) as err:
        sql.query(Root(embedded_set), statement.format(tmp=tmp_path))
    assert str(err.value) == (f"the store is read-only: {kind} statements are refused "
                              "(only SELECT and EXPLAIN SELECT run)")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_read_statements_run(embedded_set):
    root = Root(embedded_set)
    assert sql.query(root, "EXPLAIN SELECT count(*) FROM items").num_rows >= 1
    assert sql.query(root, "SELECT 1 AS a; SELECT 2 AS a").to_pylist() == [{"a": 2}]  # the last statement's rows
    assert sql.query(root, "FROM rsa_items SELECT count(*) AS n").to_pylist() == [{"n": tables.rows(root, "rsa_items")}]
    pivot = "PIVOT (SELECT label, split FROM items) ON split {} USING count(*) GROUP BY label ORDER BY label"
    counts = sql.query(root, pivot.format("IN ('train', 'test')")).to_pylist()
    assert [r["label"] for r in counts] == sorted({r["label"] for r in tables.read(root, "items").to_pylist()})
    with pytest.raises(ValueError, match=r"a PIVOT that finds its own columns .* ON col IN \('a', 'b'\)"):
        sql.query(root, pivot.format(""))
    for bad, message in (("SELEC 1", "SQL does not parse"), ("", "SQL is empty"),
                         ("SELECT * FROM nope", "SQL failed: Catalog Error")):
        with pytest.raises(ValueError, match=message) as err:
            sql.query(root, bad)
        assert "\n" not in str(err.value)


def test_cli_writes_csv_and_parquet_and_refuses_other_suffixes(embedded_set, tmp_path, capsys):
    query = "SELECT dataset, key, split FROM items WHERE dataset <> 'ava' ORDER BY key"
    expected = sql.query(Root(embedded_set), query)
    assert store_main(["sql", query, "--data", str(embedded_set), "--out", str(tmp_path / "r.csv")]) == 0
    assert pcsv.read_csv(tmp_path / "r.csv").to_pylist() == expected.to_pylist()
    assert store_main(["sql", f"SELECT key, embedding FROM {VIEW}", "--data", str(embedded_set), "--out",
                       str(tmp_path / "r.parquet")]) == 0
    got = pq.read_table(tmp_path / "r.parquet")
    keys, vectors = matrix(embedded_set)
    assert got["key"].to_pylist() == keys
    assert np.array_equal(np.array(got["embedding"].to_pylist(), np.float32), vectors)
    capsys.readouterr()
    assert store_main(["sql", f"SELECT embedding FROM {VIEW}", "--data", str(embedded_set), "--out",
                       str(tmp_path / "v.csv")]) == 1
    assert "hold vectors, which CSV cannot: write .parquet" in capsys.readouterr().err
    assert store_main(["sql", query, "--data", str(embedded_set), "--out", str(tmp_path / "r.txt")]) == 1
    assert "expected a .csv or .parquet file" in capsys.readouterr().err
    assert store_main(["sql", "DROP VIEW items", "--data", str(embedded_set)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("error: the store is read-only: DROP statements are refused (only SELECT and EXPLAIN "
                           "SELECT run)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.parquet"]
    assert store_main(["sql", "SELECT count(*) AS n FROM items", "--data", str(embedded_set)]) == 0
    assert "832" in capsys.readouterr().out


@pytest.mark.slow
def test_embed_then_sql_on_s3(s3_server, transfer_set, embedded_set, tmp_path):  # noqa: F811
    from featurestore.config import EmbedConfig
    from featurestore.embed import embed

    data = copy_of(transfer_set.data, tmp_path / "data")
    url = s3_server.url("store-sql")
    root = Root(url)
    root.fs.put(str(data) + "/", root.path(""), recursive=True)
    (result,) = embed(EmbedConfig(data=url, models=(TINY,), datasets=("esc50",), device="cpu"))
    assert result.rows == 7 and not result.skipped
    assert any(k.endswith("/_manifest.json") for k in s3_server.keys("store-sql/store/embeddings/"))
    got = sql.query(root, f"SELECT e.key, e.embedding, i.split FROM {VIEW} e JOIN items i USING (dataset, key) "
                          "ORDER BY e.key")
    keys, vectors = matrix(embedded_set, "esc50")  # the same model, stats and audio locally
    order = np.argsort(keys)
    assert got["key"].to_pylist() == [keys[i] for i in order]
    assert np.array_equal(np.array(got["embedding"].to_pylist(), np.float32), vectors[order])
    assert sql.query(root, "SELECT count(*) AS n FROM items").to_pylist() == [{"n": 7}]
