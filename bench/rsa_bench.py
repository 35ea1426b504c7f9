"""RSA at the paper's size, 1,000 items (499,500 pairs): `analysis.rsa` against the plain scipy loops.

- spearman: 4 model DSMs x 40 descriptor DSMs, `spearman_matrix` (each DSM ranked once, one matmul) against a
  `scipy.stats.spearmanr` call per pair (goal >= 4x). The loop is timed on one model's 40 pairs and
  multiplied by 4 (every call does the same work: rank both, correlate).
- mantel: one model against the 40 descriptors with 1,000 item permutations, `mantel_many` (ranks gathered
  through index arrays, batches of permutations in one matmul) against the definition: permute rows and
  columns of the model's square matrix, squareform, `spearmanr` with each descriptor (goal >= 50x). The
  loop's 1,000 permutations would take hours: a few are timed and the total is extrapolated from them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from analysis.rsa import abs_dsm, cosine_dsm, mantel_many, rank_dsm, spearman_matrix
from bench.common import record

N_ITEMS = 1000  # the SPEC's RSA subset per dataset: 499,500 pairs
MODELS = 4
DESCRIPTORS = 40
WIDTH = 256  # embedding width; only cosine_dsm's cost depends on it
PERMUTATIONS = 1000
NAIVE_PERMUTATIONS = 2  # permutations of the naive loop actually timed (~40 spearmanr calls each)


def _problem(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Embeddings of 4 related models and 40 descriptors, a quarter of them integer-valued (ties, as pitch and
    counts have)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(N_ITEMS, WIDTH))
    embeddings = [base + s * rng.normal(size=base.shape) for s in np.linspace(0.5, 2.0, MODELS)]
    values = [base[:, k % WIDTH] * rng.uniform(0.5, 2) + rng.normal(size=N_ITEMS) for k in range(DESCRIPTORS)]
    for k in range(0, DESCRIPTORS, 4):
        values[k] = np.round(values[k] * 3)
    return embeddings[0], [cosine_dsm(e) for e in embeddings], [abs_dsm(v) for v in values]


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _naive_permutation(square: np.ndarray, descr: list[np.ndarray], perm: np.ndarray) -> list[float]:
    permuted = squareform(square[np.ix_(perm, perm)], checks=False)
    return [stats.spearmanr(permuted, d).statistic for d in descr]


def run(work: Path) -> tuple[list[dict], dict]:
    emb, models, descr = _problem()
    cosine_s = _best(lambda: cosine_dsm(emb), 2)
    pdist_s = _best(lambda: pdist(emb, metric="cosine"), 1)
    rank_s = _best(lambda: rank_dsm(models[0]), 3)
    rankdata_s = _best(lambda: stats.rankdata(models[0]), 2)

    ours = spearman_matrix(models, descr)  # warm-up and the answer to check
    matrix_s = _best(lambda: spearman_matrix(models, descr), 2)
    t0 = time.perf_counter()
    loop_row = [stats.spearmanr(models[0], d).statistic for d in descr]
    loop_s = (time.perf_counter() - t0) * MODELS
    max_diff = float(np.max(np.abs(ours[0] - loop_row)))

    t0 = time.perf_counter()
    mantel_many(models[0], descr, N_ITEMS, permutations=PERMUTATIONS, seed=0)
    mantel_s = time.perf_counter() - t0
    square = squareform(models[0])
    perms = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(NAIVE_PERMUTATIONS):
        _naive_permutation(square, descr, perms.permutation(N_ITEMS))
    per_permutation = (time.perf_counter() - t0) / NAIVE_PERMUTATIONS
    naive_mantel_s = loop_s / MODELS + PERMUTATIONS * per_permutation  # observed r, then the permutations

    pairs = MODELS * DESCRIPTORS
    tests = DESCRIPTORS * PERMUTATIONS
    records = [
        record("rsa", "spearman DSM pairs/s", pairs / matrix_s, "spearmanr loop", pairs / loop_s),
        record("rsa", "mantel permuted r/s", tests / mantel_s, "permute+spearmanr loop (extrapolated)",
               tests / naive_mantel_s),
    ]
    profile = {
        "items": N_ITEMS, "pairs": N_ITEMS * (N_ITEMS - 1) // 2, "models": MODELS, "descriptors": DESCRIPTORS,
        "spearman_matrix_s": matrix_s, "spearmanr_loop_s": loop_s,
        "spearmanr_loop_note": f"timed on 1 model x {DESCRIPTORS} descriptors, times {MODELS}",
        "spearman_speedup": loop_s / matrix_s, "spearman_goal_4x": loop_s / matrix_s >= 4,
        "spearman_max_abs_diff": max_diff,
        "mantel_permutations": PERMUTATIONS, "mantel_s": mantel_s,
        "mantel_ms_per_permutation": mantel_s / PERMUTATIONS * 1e3,
        "naive_mantel_s_extrapolated": naive_mantel_s,
        "naive_note": f"{NAIVE_PERMUTATIONS} permutations timed ({per_permutation:.1f} s each), times "
                      f"{PERMUTATIONS}, plus the observed r",
        "mantel_speedup": naive_mantel_s / mantel_s, "mantel_goal_50x": naive_mantel_s / mantel_s >= 50,
        "rank_dsm_ms": rank_s * 1e3, "scipy_rankdata_ms": rankdata_s * 1e3,
        "cosine_dsm_ms": cosine_s * 1e3, "pdist_cosine_ms": pdist_s * 1e3,
    }
    return records, profile
