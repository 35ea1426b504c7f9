"""Exact cosine kNN: the same neighbours as DuckDB's `ORDER BY array_cosine_distance ... LIMIT k`, ties by row
order across blocks, a cache named by the manifests it was built from (a re-embedding makes a new one)."""

from __future__ import annotations

import numpy as np
import pytest

from featurestore import knn as knn_mod
from featurestore import queries, sql, tables
from featurestore.__main__ import main as store_main
from featurestore.config import EmbedConfig
from featurestore.embed import embed
from featurestore.knn import knn, top_k
from shards.storage import Root
from tests.featurestore.conftest import TINY, TINY_NAME, copy_of
from tests.s3server import s3_server  # noqa: F401

VIEW = sql.view_name(TINY_NAME)


_CONNECTIONS: dict[tuple[str, ...], object] = {}


def sql_knn(data, key: str, k: int) -> list[tuple[str, float]]:
    """The store's own KNN statement, run by DuckDB (one connection per set of committed parts)."""
    parts = tuple(tables.files(Root(data), "embeddings"))
    if parts not in _CONNECTIONS:
        _CONNECTIONS[parts] = sql.connect(Root(data))
    con = _CONNECTIONS[parts]
    rows = con.execute(queries.KNN.format(view=queries.quote(VIEW)), [key, key, k]).fetchall()
    return [(r[0], r[2]) for r in rows]


def same_neighbours(got: list[tuple[str, float]], data, key: str, k: int) -> None:
    """`got` is SQL's top k, except that neighbours whose distances differ by < 1e-6 may swap places (also
    across the k-th place): each got neighbour's SQL distance is the SQL list's distance at its rank."""
    expected = sql_knn(data, key, k)
    every = dict(sql_knn(data, key, 10_000))
    assert len(got) == len(expected) == min(k, len(every))
    assert len({g for g, _ in got}) == len(got) and key not in {g for g, _ in got}
    for (neighbour, distance), (_, wanted) in zip(got, expected):
        assert abs(every[neighbour] - wanted) < 1e-6 and abs(distance - every[neighbour]) < 1e-6


def all_keys(data) -> list[str]:
    return tables.read(Root(data), "embeddings", ["key"], model=TINY_NAME)["key"].to_pylist()


@pytest.fixture(scope="module")
def data(embedded_set, tmp_path_factory):
    """A copy of the embedded set (kNN writes its cache beside the embeddings)."""
    return copy_of(embedded_set, tmp_path_factory.mktemp("knn") / "data")


def test_knn_equals_the_sql_query_for_every_item(data):
    for key in all_keys(data):
        for k in (1, 5):
            same_neighbours([(n.key, n.distance) for n in knn(Root(data), TINY_NAME, key, k)], data, key, k)


def test_labels_datasets_and_k_larger_than_the_rows(data):
    keys = all_keys(data)
    items = {r["key"]: r["label"] for r in tables.read(Root(data), "items", ["key", "label"]).to_pylist()}
    result = knn(Root(data), TINY_NAME, keys[0], k=1_000)
    assert len(result) == len(keys) - 1 == 23 and sorted(n.key for n in result) == sorted(keys[1:])
    assert all(n.label == items[n.key] for n in result)
    assert [n.distance for n in result] == sorted(n.distance for n in result)
    esc50 = set(tables.read(Root(data), "items", ["key"], dataset="esc50")["key"].to_pylist())
    key = sorted(esc50)[0]
    only = knn(Root(data), TINY_NAME, key, k=1_000, datasets=["esc50"])
    assert {n.key for n in only} == esc50 - {key}
    everywhere = [n for n in knn(Root(data), TINY_NAME, key, k=1_000) if n.key in esc50]
    assert [n.key for n in only] == [n.key for n in everywhere]


def test_unknown_keys_models_and_k_are_one_line(data, capsys):
    root = Root(data)
    with pytest.raises(ValueError) as err:
        knn(root, TINY_NAME, "nope")
    assert str(err.value) == "key 'nope' has no byola-v2-random-tiny embedding"
    vctk_key = tables.read(root, "items", ["key"], dataset="vctk")["key"][0].as_py()
    with pytest.raises(ValueError, match=r"has no byola-v2-random-tiny embedding in \['esc50'\]"):
        knn(root, TINY_NAME, vctk_key, datasets=["esc50"])
    with pytest.raises(FileNotFoundError, match="no embeddings of model 'yamnet'"):
        knn(root, "yamnet", "x")
    with pytest.raises(ValueError, match="k=0 must be >= 1"):
        knn(root, TINY_NAME, vctk_key, k=0)
    capsys.readouterr()
    assert store_main(["knn", "--data", str(data), "--model", TINY_NAME, "--key", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "error: key 'nope' has no byola-v2-random-tiny embedding"
    assert store_main(["knn", "--data", str(data), "--model", TINY_NAME, "--key", vctk_key, "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "2", "3"]
    assert [line.split("\t")[2] for line in lines] == [k for k, _ in sql_knn(data, vctk_key, 3)]


def test_the_cache_is_rebuilt_after_a_re_embedding(embedded_set, tmp_path):
    data = copy_of(embedded_set, tmp_path / "data")
    folder = data / "store" / "embeddings" / f"model={TINY_NAME}"
    key = all_keys(data)[0]
    before = knn(Root(data), TINY_NAME, key, k=5)
    (first,) = folder.glob("_knn-*.npy")
    stamp = first.stat().st_mtime_ns
    assert knn(Root(data), TINY_NAME, key, k=5) == before and first.stat().st_mtime_ns == stamp  # reused
    matrix = np.load(first)
    assert matrix.shape == (24, 192) and np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-6)
    embed(EmbedConfig(data=str(data), models=(TINY,), datasets=("esc50",), device="cpu", norm_mean=-6.0,
                      norm_std=4.0, replace=True))
    after = knn(Root(data), TINY_NAME, key, k=5)
    names = sorted(p.name for p in folder.glob("_knn-*.npy"))
    assert len(names) == 1 and first.name not in names  # a new name (never read as current); the old one removed
    same_neighbours([(n.key, n.distance) for n in after], data, key, 5)
    assert [n.distance for n in after] != [n.distance for n in before]


def exact_unit_rows(n: int, width: int = 8, seed: int = 0) -> np.ndarray:
    """Rows of four ±0.5 entries: unit norm, and every dot product a multiple of 0.25, exact in float32
    whatever the summation order (BLAS kernels differ by block shape, so random floats would not tie)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, width), np.float32)
    for row in rows:
        row[rng.choice(width, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return rows


def test_top_k_breaks_ties_by_row_order_across_blocks(monkeypatch):
    base = exact_unit_rows(50)
    matrix = np.concatenate([base] * 40)  # every row has 39 exact copies, and scores take few values
    scores = matrix @ base[3]
    for block in (7, 64, 65_536):
        monkeypatch.setattr(knn_mod, "BLOCK_ROWS", block)
        idx, dist = top_k(matrix, matrix[7], 6)
        assert idx.tolist() == [7, 57, 107, 157, 207, 257] and dist.tolist() == [0.0] * 6
        idx, _ = top_k(matrix, matrix[7], 6, exclude=7)
        assert idx.tolist() == [57, 107, 157, 207, 257, 307]
        for k in (1, 40, 45, 333):
            idx, dist = top_k(matrix, base[3], k)
            order = np.lexsort((np.arange(len(matrix)), -scores))[:k]
            assert idx.tolist() == order.tolist() and dist.tolist() == (1.0 - scores[order]).tolist()
    same = np.full((100, 4), 0.5, np.float32)
    assert top_k(same, same[0], 5)[0].tolist() == [0, 1, 2, 3, 4]


def test_top_k_equals_a_full_sort(monkeypatch):
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(1_000, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = matrix[10]
    scores = matrix @ query
    for block, k in ((64, 10), (333, 1), (1_000, 999), (4_096, 2_000)):
        monkeypatch.setattr(knn_mod, "BLOCK_ROWS", block)
        idx, dist = top_k(matrix, query, k, exclude=10)
        expected = [i for i in np.argsort(-scores, kind="stable") if i != 10][:k]
        assert idx.tolist() == expected and np.allclose(dist, 1.0 - scores[expected], atol=1e-6)


@pytest.mark.slow
def test_knn_on_s3_equals_the_local_answer(s3_server, embedded_set, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AUDIODIET_CACHE", str(tmp_path / "cache"))
    url = s3_server.url("store-knn")
    root = Root(url)
    root.fs.put(str(embedded_set / "store") + "/", root.path("store"), recursive=True)
    key = all_keys(embedded_set)[5]
    got = knn(root, TINY_NAME, key, k=4)
    assert got == knn(Root(copy_of(embedded_set, tmp_path / "local")), TINY_NAME, key, k=4)
    assert any("/_knn-" in k for k in s3_server.keys("store-knn/store/embeddings/"))
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the matrix, fetched once for memory-mapping
    assert knn(root, TINY_NAME, key, k=4) == got
