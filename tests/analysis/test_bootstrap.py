"""Bootstrap intervals: the vectorised metrics equal a plain loop over resamples drawn with the documented
RNG contract; intervals behave as intervals (contain the estimate, shrink with n, resample whole groups)."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from analysis import bootstrap
from analysis.bootstrap import accuracy, average_precision, paired_ci, percentile_ci

# the sklearn references warn on a resample without positives (and score it 0, as we do)
pytestmark = pytest.mark.filterwarnings("ignore:No positive class found")


def _data(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = rng.random(n) + 0.4 * y
    if ties:
        score = np.round(score, 1)  # many tied scores: sklearn thresholds after each run of ties
    return y, score, (score > 0.7).astype(np.int64)


def _recall(y, pred):
    """A metric without a vectorised path (and cheap: sklearn's cost ~ms a call)."""
    return float(np.mean(pred[y == 1] == 1)) if (y == 1).any() else 0.0


def _reference(metric, y, scores, groups, resamples, seed):
    """The contract in a plain loop: one rng.integers(0, m, m) per resample, groups in sorted order."""
    rng = np.random.default_rng(seed)
    names = None if groups is None else np.unique(groups)
    m = len(y) if groups is None else len(names)
    values = np.empty((len(scores), resamples))
    for r in range(resamples):
        draw = rng.integers(0, m, m)
        if groups is None:
            idx = draw
        else:
            idx = np.concatenate([np.flatnonzero(groups == names[g]) for g in draw])
        for i, s in enumerate(scores):
            values[i, r] = metric(y[idx], s[idx])
    return values


@pytest.mark.parametrize("with_groups", [False, True])
@pytest.mark.parametrize("kind", ["accuracy", "ap", "ap_ties", "generic"])
def test_matches_plain_loop_reference(monkeypatch, kind, with_groups):
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 100)  # several chunks: chunked draws = per-resample draws
    y, score, pred = _data(41, seed=3, ties=kind == "ap_ties")
    groups = np.array([f"movie{i % 6}" for i in range(41)]) if with_groups else None
    metric, reference_metric, s = {
        "accuracy": (accuracy, accuracy_score, pred),
        "ap": (average_precision, average_precision_score, score),
        "ap_ties": (average_precision, average_precision_score, score),
        "generic": (_recall, _recall, pred),
    }[kind]
    s2 = s[::-1].copy()
    expected = _reference(reference_metric, y, (s, s2), groups, 120, seed=7)
    got = bootstrap.resampled(metric, y, (s, s2), groups, resamples=120, seed=7)
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-12)
    low, high = np.percentile(expected[0], [2.5, 97.5])
    assert percentile_ci(metric, y, s, groups, resamples=120, seed=7) == pytest.approx((low, high), abs=1e-12)
    low, high = np.percentile(expected[0] - expected[1], [2.5, 97.5])
    assert paired_ci(metric, y, s, s2, groups, resamples=120, seed=7) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize("group_level", [True, False])
def test_grouped_ap_matches_plain_loop_on_either_path(monkeypatch, group_level):
    """Few groups: AP from matrix products over groups; many: from per-item counts. Both equal the loop."""
    monkeypatch.setattr(bootstrap, "_AP_GROUP_LEVEL_MAX", 64 if group_level else 0)
    y, score, _ = _data(150, seed=11, ties=True)
    groups = np.arange(150) % 7
    groups[y == 1] = np.where(groups[y == 1] == 3, 4, groups[y == 1])  # a group without positives
    expected = _reference(average_precision_score, y, (score,), groups, 80, seed=2)[0]
    got = bootstrap.resampled(average_precision, y, (score,), groups, resamples=80, seed=2)[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_sklearn_metrics_take_the_vectorised_path():
    y, score, pred = _data(300, seed=4, ties=True)
    for ours, theirs, s in ((accuracy, accuracy_score, pred), (average_precision, average_precision_score, score)):
        assert ours(y, s) == pytest.approx(theirs(y, s), abs=1e-15)
        assert percentile_ci(ours, y, s, resamples=500) == percentile_ci(theirs, y, s, resamples=500)


@pytest.mark.parametrize("metric", [accuracy, average_precision])
def test_interval_contains_the_estimate_and_shrinks_with_more_items(metric):
    widths = []
    for n in (200, 5000):
        y, score, pred = _data(n, seed=n)
        s = pred if metric is accuracy else score
        low, high = percentile_ci(metric, y, s, resamples=2000, seed=1)
        assert low < metric(y, s) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # 25x the items: about 1/5 of the width


def test_group_bootstrap_resamples_whole_groups():
    """Items of a group all right or all wrong: the resampled accuracy is the mean of the drawn groups'
    means (equal sizes), so the interval is the percentile interval of that group-level bootstrap."""
    group_correct = np.array([1, 1, 0, 1, 0, 1, 1, 1], dtype=bool)
    groups = np.repeat(np.array([f"g{g}" for g in range(8)]), 50)
    y = np.zeros(400, dtype=np.int64)
    pred = np.where(np.repeat(group_correct, 50), 0, 1)
    rng = np.random.default_rng(5)
    means = [group_correct[rng.integers(0, 8, 8)].mean() for _ in range(4000)]
    expected = tuple(np.percentile(means, [2.5, 97.5]))
    got = percentile_ci(accuracy, y, pred, groups=groups, resamples=4000, seed=5)
    assert got == pytest.approx(expected, abs=1e-12)
    items = percentile_ci(accuracy, y, pred, resamples=4000, seed=5)
    assert got[1] - got[0] > 3 * (items[1] - items[0])  # 8 independent units, not 400


@pytest.mark.parametrize("with_groups", [False, True])
def test_paired_interval_of_identical_models_is_exactly_zero(with_groups):
    y, score, pred = _data(500, seed=6, ties=True)
    groups = np.arange(500) % 9 if with_groups else None
    assert paired_ci(accuracy, y, pred, pred.copy(), groups, resamples=1000) == (0.0, 0.0)
    assert paired_ci(average_precision, y, score, score.copy(), groups, resamples=1000) == (0.0, 0.0)


def test_paired_interval_sees_a_consistent_difference():
    y, score, _ = _data(2000, seed=8)
    noisy = score + np.random.default_rng(9).normal(0, 0.3, 2000)  # the same ranking, blurred
    low, high = paired_ci(average_precision, y, score, noisy, resamples=2000)
    assert 0 < low < high


def test_resample_without_positives_scores_zero_like_sklearn():
    y = np.array([1, 0, 0, 0, 0, 0])
    score = np.linspace(1, 0, 6)
    values = bootstrap.resampled(average_precision, y, (score,), resamples=60, seed=0)[0]
    assert (values == 0).any() and (values == 1).any()
    expected = _reference(average_precision_score, y, (score,), None, 60, seed=0)[0]
    np.testing.assert_allclose(values, expected, atol=1e-12)


def test_bad_inputs_name_the_value():
    y, score, pred = _data(20, seed=1)
    with pytest.raises(ValueError, match="do not match"):
        percentile_ci(accuracy, y, pred[:-1])
    with pytest.raises(ValueError, match="level=1.5"):
        percentile_ci(accuracy, y, pred, level=1.5)
    with pytest.raises(ValueError, match="resamples=0"):
        percentile_ci(accuracy, y, pred, resamples=0)
    with pytest.raises(ValueError, match="groups"):
        percentile_ci(accuracy, y, pred, groups=np.zeros(3))
    with pytest.raises(ValueError, match="0/1"):
        percentile_ci(average_precision, y + 1, score)
