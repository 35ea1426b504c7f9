"""RSA on arrays: parity with scipy and rsatoolbox, Mantel against a literal slow loop, BH, the summary rules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from analysis import rsa


def _dsms(n: int = 40, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Model DSMs (cosine of embeddings sharing some structure) and descriptor DSMs, some with heavy ties."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 16))
    models = [rsa.cosine_dsm(base + s * rng.normal(size=(n, 16))) for s in (0.5, 1.0, 3.0)]
    values = [base[:, 0], base[:, 1] ** 2, rng.integers(0, 4, n).astype(float), rng.normal(size=n)]
    return models, [rsa.abs_dsm(v) for v in values]


def test_cosine_dsm_equals_pdist():
    x = np.random.default_rng(1).normal(size=(50, 12)).astype(np.float32)
    np.testing.assert_allclose(rsa.cosine_dsm(x), pdist(x.astype(np.float64), metric="cosine"), rtol=0, atol=1e-12)
    assert rsa.cosine_dsm(x).dtype == np.float64


def test_cosine_dsm_refuses_zero_rows():
    x = np.ones((4, 3))
    x[2] = 0
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        rsa.cosine_dsm(x)


def test_abs_dsm_is_cityblock_and_nan_items_make_nan_pairs():
    f = np.array([3.0, -1.0, 2.5, 7.0])
    np.testing.assert_array_equal(rsa.abs_dsm(f), pdist(f[:, None], metric="cityblock"))
    d = rsa.abs_dsm(np.array([1.0, np.nan, 2.0]))  # pairs (0,1) (0,2) (1,2)
    np.testing.assert_array_equal(np.isnan(d), [True, False, True])


def test_rank_dsm_equals_rankdata_with_ties_and_nan():
    x = np.random.default_rng(2).integers(0, 7, 500).astype(float)
    np.testing.assert_array_equal(rsa.rank_dsm(x), stats.rankdata(x))
    x[[3, 10, 11]] = np.nan
    np.testing.assert_array_equal(rsa.rank_dsm(x), stats.rankdata(x, nan_policy="omit"))


def test_spearman_matrix_equals_spearmanr_loop():
    models, descr = _dsms()
    ours = rsa.spearman_matrix(models, descr)
    loop = np.array([[stats.spearmanr(a, b).statistic for b in descr] for a in models])
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-12)
    assert rsa.spearman(models[0], descr[1]) == pytest.approx(loop[0, 1], abs=1e-12)


def test_spearman_matrix_drops_pairs_of_missing_items():
    models, descr = _dsms()
    values = np.random.default_rng(3).normal(size=40)
    values[[0, 5, 17]] = np.nan
    other = np.random.default_rng(4).normal(size=40)
    other[[5, 30]] = np.nan
    nan_dsms = [rsa.abs_dsm(values), rsa.abs_dsm(other)]
    ours = rsa.spearman_matrix(models + nan_dsms, descr + nan_dsms)
    for i, a in enumerate(models + nan_dsms):
        for j, b in enumerate(descr + nan_dsms):
            ok = ~np.isnan(a) & ~np.isnan(b)
            assert ours[i, j] == pytest.approx(stats.spearmanr(a[ok], b[ok]).statistic, abs=1e-12)


def test_spearman_matrix_equals_rsatoolbox():
    from rsatoolbox.rdm import RDMs, compare_spearman

    models, descr = _dsms()
    theirs = compare_spearman(RDMs(dissimilarities=np.stack(models)), RDMs(dissimilarities=np.stack(descr)))
    np.testing.assert_allclose(rsa.spearman_matrix(models, descr), theirs, rtol=0, atol=1e-12)


def test_spearman_test_p_is_spearmanrs():
    models, descr = _dsms()
    r, p = rsa.spearman_test(models[0], descr)
    for k, d in enumerate(descr):
        res = stats.spearmanr(models[0], d)
        assert r[k] == pytest.approx(res.statistic, abs=1e-12)
        assert p[k] == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)


def test_constant_dsm_gives_nan():
    models, _ = _dsms()
    assert np.isnan(rsa.spearman(models[0], np.ones_like(models[0])))
    r, p = rsa.mantel(models[0], np.ones_like(models[0]), 40, permutations=9)
    assert np.isnan(r) and np.isnan(p)


def _slow_mantel(model: np.ndarray, descr: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
    """The definition, literally: drop missing items, permute rows and columns of the model's square matrix,
    spearmanr each time."""
    square = squareform(model)
    full = squareform(descr, checks=False)
    np.fill_diagonal(full, np.nan)
    valid = ~np.isnan(full).all(1)
    square = square[np.ix_(valid, valid)]
    target = squareform(squareform(descr, checks=False)[np.ix_(valid, valid)], checks=False)
    observed = stats.spearmanr(squareform(square, checks=False), target).statistic
    count = 0
    for perm in rsa.item_permutations(int(valid.sum()), permutations, seed):
        permuted = squareform(square[np.ix_(perm, perm)], checks=False)
        count += stats.spearmanr(permuted, target).statistic >= observed - rsa.TIE_TOL
    return observed, (1 + count) / (1 + permutations)


def test_mantel_equals_slow_loop_over_the_same_permutations():
    rng = np.random.default_rng(5)
    n = 12
    emb = rng.normal(size=(n, 4))
    model = rsa.cosine_dsm(emb)
    pitchy = emb[:, 0] + rng.normal(scale=2, size=n)
    pitchy[[2, 7]] = np.nan  # missing items: permuted within the other 10
    descr = [rsa.abs_dsm(emb[:, 0]), rsa.abs_dsm(rng.normal(size=n)), rsa.abs_dsm(np.round(emb[:, 1])),
             rsa.abs_dsm(pitchy)]
    r, p = rsa.mantel_many(model, descr, n, permutations=300, seed=11)
    for k, d in enumerate(descr):
        slow_r, slow_p = _slow_mantel(model, d, 300, 11)
        assert r[k] == pytest.approx(slow_r, abs=1e-12)
        assert p[k] == slow_p
        alone = rsa.mantel(model, d, n, permutations=300, seed=11)  # the same test alone or among others
        assert alone[0] == pytest.approx(r[k], abs=1e-12) and alone[1] == p[k]
    assert p[0] < 0.05 < p[1]


def test_mantel_batches_and_threads_do_not_change_the_answer(monkeypatch):
    models, descr = _dsms()
    whole = rsa.mantel_many(models[0], descr, 40, permutations=51, seed=3, workers=1)
    monkeypatch.setattr(rsa, "BATCH_VALUES", 2000)  # two permutations a batch, the last one short
    for workers in (1, 3):
        p = rsa.mantel_many(models[0], descr, 40, permutations=51, seed=3, workers=workers)[1]
        np.testing.assert_array_equal(p, whole[1])


def test_mantel_null_p_is_uniform_ish():
    ps = []
    for seed in range(50):
        rng = np.random.default_rng(100 + seed)
        model = rsa.cosine_dsm(rng.normal(size=(15, 5)))
        ps.append(rsa.mantel(model, rsa.abs_dsm(rng.normal(size=15)), 15, permutations=199, seed=seed)[1])
    assert 0.4 <= np.mean(ps) <= 0.6


def test_mantel_monotone_transform_gives_the_smallest_p():
    model = rsa.cosine_dsm(np.random.default_rng(6).normal(size=(30, 5)))
    r, p = rsa.mantel(model, np.exp(3 * model), 30, permutations=999)
    assert r == pytest.approx(1.0, abs=1e-12)
    assert p == 1 / 1000


def test_mantel_refuses_bad_input():
    models, descr = _dsms()
    with pytest.raises(ValueError, match="n_items=41"):
        rsa.mantel(models[0], descr[0], 41)
    scattered = descr[0].copy()
    scattered[[3, 400]] = np.nan  # not "these items are missing"
    with pytest.raises(ValueError, match="missing items"):
        rsa.mantel(models[0], scattered, 40)


def test_bh_hand_computed():
    # sorted p 0.005 0.01 0.03 0.04 (m = 4): p*m/rank 0.02 0.02 0.04 0.04, then the running minimum from the top
    q = rsa.bh([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(q, [0.02, np.nan, 0.04, 0.04, 0.02], rtol=1e-12)
    np.testing.assert_array_equal(rsa.significant([0.3, 0.3, -0.2, np.nan], [0.01, 0.05, 0.01, 0.01]),
                                  [True, False, False, False])


def _rows(rows: list[tuple]) -> pa.Table:
    names = ["model", "dataset", "descriptor", "r_s", "q"]
    return pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})


def test_summarise_rules():
    rows = _rows([
        ("m", "esc50", "rms", 0.4, 0.001),     # kept
        ("m", "us8k", "rms", 0.2, 0.2),        # not significant -> 0
        ("m", "ava", "rms", -0.3, 0.001),      # negative -> 0
        ("m", "ava_limited", "rms", 0.9, 0.001),  # same items as ava: counted once, there
        ("m", "vctk", "rms", np.nan, np.nan),  # failed -> 0, still a dataset where rms exists
        ("m", "nsynth", "pitch_yin", 0.5, 0.01),
        ("m", "solo", "centroid", 0.6, 0.01),  # alias without its dataset: stands in for it
        ("n", "esc50", "rms", 0.1, 0.04),
    ])
    out = rsa.summarise(rows, pitch={"pitch_yin"}, aliases={"ava_limited": "ava", "solo": "ava"}).to_pylist()
    assert out == [
        {"model": "m", "descriptor": "rms", "mean_r_s": pytest.approx(0.1), "n_datasets": 4, "flagged": None},
        {"model": "m", "descriptor": "pitch_yin", "mean_r_s": 0.5, "n_datasets": 1, "flagged": "NSynth only"},
        {"model": "m", "descriptor": "centroid", "mean_r_s": 0.6, "n_datasets": 1, "flagged": None},
        {"model": "n", "descriptor": "rms", "mean_r_s": 0.1, "n_datasets": 1, "flagged": None},
    ]
    with pytest.raises(ValueError, match="two rows"):
        rsa.summarise(_rows([("m", "a", "rms", 0.1, 0.1)] * 2), pitch=())


def test_model_similarity_profile_and_descriptor_correlations():
    models, _ = _dsms()
    names, sim = rsa.model_similarity({"a": models[0], "b": models[1], "c": models[2]})
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-12)
    assert sim[0, 2] == pytest.approx(stats.spearmanr(models[0], models[2]).statistic, abs=1e-12)
    assert sim[0, 1] > sim[0, 2]  # less noise, more alike

    summary = pa.table({"model": ["a"] * 4 + ["b"] * 4, "descriptor": ["w", "x", "y", "z"] * 2,
                        "mean_r_s": [0.1, 0.4, 0.2, 0.3, 0.0, 0.5, 0.1, 0.2]})
    names, prof = rsa.profile_correlation(summary)
    assert names == ["a", "b"]
    assert prof[0, 1] == pytest.approx(stats.spearmanr([0.1, 0.4, 0.2, 0.3], [0.0, 0.5, 0.1, 0.2]).statistic)

    rng = np.random.default_rng(7)
    f, g = rng.normal(size=30), rng.normal(size=30)
    g[4] = np.nan
    names, dd = rsa.descriptor_correlations({"f": f, "g": g})
    ok = ~np.isnan(rsa.abs_dsm(g))
    assert dd[0, 1] == pytest.approx(stats.spearmanr(rsa.abs_dsm(f)[ok], rsa.abs_dsm(g)[ok]).statistic, abs=1e-12)
    assert dd[1, 1] == pytest.approx(1.0, abs=1e-12)
