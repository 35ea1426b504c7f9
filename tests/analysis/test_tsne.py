"""t-SNE: shape, bit-identical reruns with a seed, and separated clusters stay separated."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from analysis.tsne import TSNEConfig, colour_column, embed_2d

FAST = TSNEConfig(perplexity=15.0, n_iter=250, early_exaggeration_iter=125)


def _clusters(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian clusters in 20-D pointing in different directions (apart in cosine distance too)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 20))
    x[:n, 0] += 6
    x[n:, 1] += 6
    return x, np.repeat([0, 1], n)


def test_embed_2d_shape_and_determinism():
    x, _ = _clusters()
    a = embed_2d(x, FAST)
    assert a.shape == (120, 2) and a.dtype == np.float64 and np.isfinite(a).all()
    np.testing.assert_array_equal(embed_2d(x, FAST), a)
    assert not np.array_equal(embed_2d(x, replace(FAST, random_state=1)), a)  # the seed is what fixes it


def test_separated_clusters_stay_separated():
    x, label = _clusters()
    y = embed_2d(x, TSNEConfig())  # the defaults the figures use
    _, nbrs = NearestNeighbors(n_neighbors=11).fit(y).kneighbors(y)
    purity = (label[nbrs[:, 1:]] == label[:, None]).mean()
    assert purity >= 0.95


def test_embed_2d_refuses_bad_input():
    with pytest.raises(ValueError, match="perplexity=30.0"):
        embed_2d(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(ValueError, match="shape"):
        embed_2d(np.zeros(10))


def test_colour_column():
    assert [colour_column(d) for d in ("nsynth", "vctk", "esc50")] == ["pitch", "gender", "label"]
