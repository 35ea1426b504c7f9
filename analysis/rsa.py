"""Representational similarity analysis on arrays (SPEC §4): DSMs, Spearman, Mantel tests, BH, summaries.

Everything here works on numpy arrays; the feature store is wired to it elsewhere. A DSM is the condensed
upper triangle (pairs i < j in `scipy.spatial.distance.pdist` order) as float64.

Speed comes from three facts. Spearman's r is Pearson's r on ranks, so each DSM is ranked once and its ranks
standardised (mean 0, norm 1); every correlation is then a dot product and a many-vs-many table is one
matmul. Permuting items permutes a DSM's entries without changing their values, so the ranks of a permuted
DSM are the permuted ranks: a Mantel test ranks nothing per permutation, it gathers the model's standardised
ranks through an index array and multiplies a batch of permutations against every descriptor at once,
batches on threads. Our own average-tie ranking (argsort plus a tie pass) is 2-3x faster than
`scipy.stats.rankdata` on half a million pairs and gives the same ranks exactly (they are half-integers).

Missing descriptor values (NaN, e.g. pitch of an unpitched note): the item is left out of that descriptor's
comparison, so every pair involving it is dropped and the other DSM is re-ranked on the remaining pairs,
which is `spearmanr(a[ok], b[ok])`. A Mantel test then permutes only the valid items.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import islice

import numpy as np
import pyarrow as pa
from scipy import stats

log = logging.getLogger(__name__)

ALPHA = 0.05  # FDR level of Benjamini-Hochberg and the significance threshold on q (SPEC §4)
PERMUTATIONS = 10_000  # Mantel permutations per test (the count)
TIE_TOL = 1e-12  # a permuted r within this of the observed one counts as >= it: different summation orders
#                  make an exactly equal r (e.g. the identity permutation) differ by ~1e-16
BATCH_VALUES = 1 << 24  # permuted DSM values in one Mantel batch (128 MiB of float64, one per thread)
SMALL_GEMM = 1 << 18  # m*n*k of one block product: OpenBLAS runs one thread at or below it
WORKERS = min(8, os.cpu_count() or 1)  # Mantel threads (numpy's gathers and BLAS release the GIL)
PITCH_FLAG = "NSynth only"  # `flagged` of pitch descriptors in the summary (they exist only for NSynth)


def _as_dsm(dsm: np.ndarray, name: str = "dsm") -> np.ndarray:
    x = np.asarray(dsm, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a condensed 1-D DSM, got shape {x.shape}")
    return x


@lru_cache(maxsize=8)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each condensed pair (read-only, cached: the Mantel loop reuses them)."""
    i, j = np.triu_indices(n, 1)
    i.flags.writeable = False
    j.flags.writeable = False
    return i, j


def cosine_dsm(x: np.ndarray) -> np.ndarray:
    """1 - cosine similarity for every pair i < j (one Gram matmul rather than pdist's pair loop)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"cosine_dsm: expected embeddings of shape (n >= 2, d), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"cosine_dsm: embeddings hold non-finite values in rows "
                         f"{np.flatnonzero(~np.isfinite(x).all(1))[:5].tolist()}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if (norms == 0).any():
        raise ValueError(f"cosine_dsm: zero embeddings (cosine undefined) in rows "
                         f"{np.flatnonzero(norms == 0)[:5].tolist()}")
    unit = x / norms[:, None]
    i, j = _pairs(len(x))
    return 1.0 - (unit @ unit.T)[i, j]


def abs_dsm(f: np.ndarray) -> np.ndarray:
    """|f_i - f_j| for every pair i < j; a NaN item makes its pairs NaN (dropped by every comparison)."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2:
        raise ValueError(f"abs_dsm: expected one value per item (n >= 2,), got shape {f.shape}")
    i, j = _pairs(len(f))
    return np.abs(f[i] - f[j])


def rank_dsm(dsm: np.ndarray) -> np.ndarray:
    """Ranks from 1 with ties averaged (`scipy.stats.rankdata` semantics, exactly); NaN entries stay NaN and
    are not ranked."""
    x = _as_dsm(dsm)
    ok = ~np.isnan(x)
    v = x if ok.all() else x[ok]
    order = np.argsort(v)  # not stable, and need not be: tied values get the same (average) rank
    s = v[order]
    first = np.empty(len(s), dtype=bool)
    first[:1] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    ranks = np.empty(len(s))
    starts = np.flatnonzero(first)
    if len(starts) == len(s):  # no ties (cosine DSMs of float embeddings): ranks are positions
        ranks[order] = np.arange(1.0, len(s) + 1.0)
    else:
        ends = np.append(starts[1:], len(s))
        ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]  # start+1..end average to this
    if v is x:
        return ranks
    out = np.full(len(x), np.nan)
    out[ok] = ranks
    return out


def _standardise(values: np.ndarray) -> np.ndarray:
    """Ranks of values without NaN, centred and scaled to norm 1 (all NaN when constant: r undefined)."""
    z = rank_dsm(values)
    z -= (len(z) + 1) / 2.0  # average ranks always sum to n(n+1)/2, ties or not
    norm = np.sqrt(z @ z)
    if norm == 0:
        z[:] = np.nan
        return z
    z /= norm
    return z


def _standardise_all(arrays: list[np.ndarray], workers: int) -> list[np.ndarray]:
    """`_standardise` of each, on threads (argsort and the other numpy passes release the GIL)."""
    if workers == 1 or len(arrays) < 2 or sum(map(len, arrays)) < 1 << 20:  # small: threads cost more
        return [_standardise(x) for x in arrays]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_standardise, arrays))


def _masks(dsms: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[bytes | None]]:
    """The DSMs as float64 and a key per NaN pattern (None: no NaN)."""
    arrays, keys = [], []
    for k, d in enumerate(dsms):
        a = _as_dsm(d, f"dsm {k}")
        nan = np.isnan(a)
        arrays.append(a)
        keys.append(np.packbits(~nan).tobytes() if nan.any() else None)
    return arrays, keys


def spearman_matrix(dsms_a: Sequence[np.ndarray], dsms_b: Sequence[np.ndarray],
                    workers: int = WORKERS) -> np.ndarray:
    """Spearman r of every DSM of `dsms_a` against every DSM of `dsms_b`, shape (len a, len b).

    DSMs without NaN are ranked once (on `workers` threads) and compared by a matmul; DSMs with NaN are
    compared on the pairs valid in both, re-ranked there (once per pair of NaN patterns)."""
    a, keys_a = _masks(dsms_a)
    b, keys_b = _masks(dsms_b)
    if len({len(d) for d in a + b}) > 1:
        raise ValueError(f"spearman_matrix: DSMs of different lengths {sorted({len(d) for d in a + b})}")
    out = np.full((len(a), len(b)), np.nan)
    if not a or not b:
        return out
    unique = {id(x): x for x, key in zip(a + b, keys_a + keys_b) if key is None}  # the same array ranks once
    full = dict(zip(unique, _standardise_all(list(unique.values()), workers)))
    for key_a, rows in _group(keys_a).items():
        for key_b, cols in _group(keys_b).items():
            if key_a is None and key_b is None:
                za = [full[id(a[r])] for r in rows]
                zb = [full[id(b[c])] for c in cols]
            else:
                ok = ~np.isnan(a[rows[0]]) & ~np.isnan(b[cols[0]])
                if ok.sum() < 2:
                    continue  # fewer than two common pairs: r undefined, stays NaN
                z = _standardise_all([a[r][ok] for r in rows] + [b[c][ok] for c in cols], workers)
                za, zb = z[:len(rows)], z[len(rows):]
            out[np.ix_(rows, cols)] = _blocked_matmul(np.stack(za), np.stack(zb))
    return np.clip(out, -1.0, 1.0)


def _group(keys: list[bytes | None]) -> dict[bytes | None, list[int]]:
    groups: dict[bytes | None, list[int]] = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    return groups


def spearman(a_dsm: np.ndarray, b_dsm: np.ndarray) -> float:
    """Spearman r of two DSMs over the pairs valid in both."""
    return float(spearman_matrix([a_dsm], [b_dsm])[0, 0])


def spearman_test(model_dsm: np.ndarray, dsms: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """r and the plain `scipy.stats.spearmanr` p: two-sided, from the t approximation over the valid pairs,
    which treats the pairs as independent (they are not: an option beside the default, `mantel_many`)."""
    r = spearman_matrix([model_dsm], dsms)[0]
    model_ok = ~np.isnan(_as_dsm(model_dsm, "model_dsm"))
    pairs = np.array([np.count_nonzero(model_ok & ~np.isnan(_as_dsm(d))) for d in dsms], dtype=np.float64)
    dof = pairs - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(dof / ((1.0 - r) * (1.0 + r)))
    p = np.where(np.isnan(r) | (dof < 1), np.nan, 2 * stats.t.sf(np.abs(t), np.maximum(dof, 1)))
    return r, p


def item_permutations(n: int, count: int, seed: int) -> Iterator[np.ndarray]:
    """The Mantel tests' permutations of n items: `default_rng(seed).permutation(n)`, `count` times (public
    so a reference implementation can replay exactly the same ones)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.permutation(n)


def _valid_items(dsm: np.ndarray, n: int, name: str) -> np.ndarray:
    """Items with at least one valid pair; refuses a NaN pattern that is not 'these items are missing'."""
    i, j = _pairs(n)
    ok = ~np.isnan(dsm)
    if ok.all():
        return np.ones(n, dtype=bool)
    items = np.zeros(n, dtype=bool)
    items[i[ok]] = True
    items[j[ok]] = True
    if not np.array_equal(ok, items[i] & items[j]):
        raise ValueError(f"{name}: NaN pairs are not those of missing items (build it with abs_dsm of a "
                         f"descriptor whose missing items are NaN)")
    return items


def mantel_many(model_dsm: np.ndarray, dsms: Sequence[np.ndarray], n_items: int,
                permutations: int = PERMUTATIONS, seed: int = 0,
                workers: int = WORKERS) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Mantel tests of one DSM against many with shared item permutations: r_s and
    p = (1 + #{r_perm >= r_s}) / (1 + permutations), the model's items permuted.

    DSMs with the same missing items form one group, tested on the pairs of its valid items with
    permutations of those items drawn from `seed` afresh, so a DSM's p is the same alone or among others.
    Batches of permutations run on `workers` threads; they are drawn in order first, so p does not depend on
    the number of threads."""
    model = _as_dsm(model_dsm, "model_dsm")
    if n_items < 3 or len(model) != n_items * (n_items - 1) // 2:
        raise ValueError(f"mantel: {n_items=} needs a DSM of n(n-1)/2 = {n_items * (n_items - 1) // 2} values "
                         f"(n >= 3), model_dsm has {len(model)}")
    if np.isnan(model).any():
        raise ValueError("mantel: model_dsm holds NaN; only the other DSMs may miss items")
    if permutations < 1 or workers < 1:
        raise ValueError(f"mantel: {permutations=} {workers=}, expected both >= 1")
    arrays = [_as_dsm(d, f"dsm {k}") for k, d in enumerate(dsms)]
    for k, d in enumerate(arrays):
        if len(d) != len(model):
            raise ValueError(f"mantel: dsm {k} has {len(d)} values, model_dsm {len(model)}")
    groups: dict[bytes, tuple[np.ndarray, list[int]]] = {}
    for k, d in enumerate(arrays):
        items = _valid_items(d, n_items, f"dsm {k}")
        groups.setdefault(np.packbits(items).tobytes(), (items, []))[1].append(k)
    r = np.full(len(arrays), np.nan)
    p = np.full(len(arrays), np.nan)
    for items, members in groups.values():
        r[members], p[members] = _mantel_group(model, [arrays[k] for k in members], n_items, items,
                                               permutations, seed, workers)
    return r, p


def _blocked_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (b, m) @ y (g, m).T for huge m, as a C-level loop of small products, each on one BLAS thread.

    OpenBLAS splits one (permutations x pairs) @ (pairs x descriptors) product over its threads and on a
    busy machine ran it 10-60x slower than blocks of this size (measured, 2-core VM: 1.5 ms against
    19-130 ms of CPU per permutation); threads over batches give the parallelism instead."""
    b, m = x.shape
    g = len(y)
    width = max(64, SMALL_GEMM // max(1, b * g))
    blocks = m // width
    cut = blocks * width
    out = np.matmul(x[:, :cut].reshape(b, blocks, width).transpose(1, 0, 2),
                    y[:, :cut].reshape(g, blocks, width).transpose(1, 2, 0)).sum(0)
    if cut < m:
        out += x[:, cut:] @ y[:, cut:].T
    return out


def _count_batch(flat: np.ndarray, perms: np.ndarray, d: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """How many permutations of the batch give r >= threshold, per descriptor (one thread's work)."""
    v = perms.shape[1]
    iv, jv = _pairs(v)
    values = np.empty((len(perms), len(iv)))
    idx = np.empty(len(iv), dtype=np.intp)
    tmp = np.empty(len(iv), dtype=np.intp)
    for b, perm in enumerate(perms):
        # entry (a, c) of the permuted model DSM is entry (perm[a], perm[c]) of the original
        np.take(perm * v, iv, out=idx)
        np.take(perm, jv, out=tmp)
        idx += tmp
        np.take(flat, idx, out=values[b])
    return (_blocked_matmul(values, d) >= threshold).sum(0)


def _mantel_group(model: np.ndarray, dsms: list[np.ndarray], n: int, items: np.ndarray,
                  permutations: int, seed: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    nan = np.full(len(dsms), np.nan)
    v = int(items.sum())
    if v < 3:
        return nan, nan
    i, j = _pairs(n)
    keep = items[i] & items[j]  # the valid items' pairs, in their own condensed order (items ascend)
    z = _standardise(model[keep])
    if np.isnan(z).any():
        return nan, nan
    d = np.stack(_standardise_all([x[keep] for x in dsms], workers))  # (g, pairs)
    observed = d @ z
    iv, jv = _pairs(v)
    square = np.zeros((v, v))
    square[iv, jv] = z
    square[jv, iv] = z
    flat = square.ravel()
    threshold = observed - TIE_TOL
    batch = max(1, min(permutations, BATCH_VALUES // len(z)))
    drawn = item_permutations(v, permutations, seed)
    batches = (np.stack(list(islice(drawn, batch))) for _ in range(0, permutations, batch))
    count = np.zeros(len(dsms), dtype=np.int64)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for perms in batches:  # drawn in order here, so the answer does not depend on the threads
            pending.append(pool.submit(_count_batch, flat, perms, d, threshold))
            if len(pending) > workers:  # bounds memory: one batch of values per thread
                count += pending.popleft().result()
        for done in pending:
            count += done.result()
    p = (1.0 + count) / (1.0 + permutations)
    return np.clip(observed, -1.0, 1.0), np.where(np.isnan(observed), np.nan, p)


def mantel(model_dsm: np.ndarray, descr_dsm: np.ndarray, n_items: int, permutations: int = PERMUTATIONS,
           seed: int = 0) -> tuple[float, float]:
    """One-sided Mantel test (r_perm >= r_s) of one DSM against another; see `mantel_many`."""
    r, p = mantel_many(model_dsm, [descr_dsm], n_items, permutations, seed)
    return float(r[0]), float(p[0])


def bh(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of one family of tests; a failed test (NaN p) stays NaN and is not
    counted in the family."""
    p = np.asarray(pvals, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def significant(r: np.ndarray, q: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Kept correlations (SPEC §4): positive and surviving BH at `alpha`; NaN is never significant."""
    r = np.asarray(r, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (q < alpha) & (r > 0)


SUMMARY_SCHEMA = pa.schema([("model", pa.string()), ("descriptor", pa.string()), ("mean_r_s", pa.float64()),
                            ("n_datasets", pa.int64()), ("flagged", pa.string())])


def summarise(rows: pa.Table, *, pitch: Collection[str], aliases: Mapping[str, str] | None = None,
              alpha: float = ALPHA) -> pa.Table:
    """Per (model, descriptor): the mean over the datasets where the descriptor exists (has a row) of r_s if
    significant else 0 (failed and r_s <= 0 count 0), with n_datasets.

    `rows` has columns model, dataset, descriptor, r_s, q (the `rsa` table). `aliases` maps a dataset to the
    one whose items it shares (AVA-limited -> AVA): its rows count once, dropped when the other's are there.
    Descriptors in `pitch` (featurestore's pitch descriptor names) are flagged "NSynth only"."""
    missing = {"model", "dataset", "descriptor", "r_s", "q"} - set(rows.column_names)
    if missing:
        raise ValueError(f"summarise: rows lack columns {sorted(missing)}")
    aliases = dict(aliases or {})
    cols = rows.select(["model", "dataset", "descriptor", "r_s", "q"]).to_pydict()
    kept = significant(np.array(cols["r_s"], dtype=np.float64), np.array(cols["q"], dtype=np.float64), alpha)
    present = {(m, d, s) for m, d, s in zip(cols["model"], cols["dataset"], cols["descriptor"])}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    for m, d, s, r, keep in zip(cols["model"], cols["dataset"], cols["descriptor"], cols["r_s"], kept):
        if d in aliases:
            if (m, aliases[d], s) in present:
                continue  # same items as the dataset it aliases: counted there
            d = aliases[d]
        per_dataset = scores.setdefault((m, s), {})
        if d in per_dataset:
            raise ValueError(f"summarise: two rows for model={m!r} dataset={d!r} descriptor={s!r}")
        per_dataset[d] = float(r) if keep else 0.0
    out = {"model": [], "descriptor": [], "mean_r_s": [], "n_datasets": [], "flagged": []}
    for (m, s), per_dataset in scores.items():  # first-seen order: the caller's model and descriptor order
        out["model"].append(m)
        out["descriptor"].append(s)
        out["mean_r_s"].append(float(np.mean(list(per_dataset.values()))))
        out["n_datasets"].append(len(per_dataset))
        out["flagged"].append(PITCH_FLAG if s in pitch else None)
    return pa.table(out, schema=SUMMARY_SCHEMA)


def model_similarity(dsms: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Spearman r between every two models' DSMs on one dataset (Fig. 4 averages these over datasets); the
    p-values of these tests, a BH family of their own, come from `mantel_many`."""
    models = list(dsms)
    arrays = [dsms[m] for m in models]
    return models, spearman_matrix(arrays, arrays)


def profile_correlation(summary: pa.Table) -> tuple[list[str], np.ndarray]:
    """Spearman r between models' descriptor profiles (their mean_r_s over the descriptors every model has;
    the paper: 0.93-0.98 among BYOL-A models). A constant profile (e.g. all 0) gives NaN."""
    cols = summary.select(["model", "descriptor", "mean_r_s"]).to_pydict()
    profile: dict[str, dict[str, float]] = {}
    for m, s, v in zip(cols["model"], cols["descriptor"], cols["mean_r_s"]):
        profile.setdefault(m, {})[s] = v
    models = list(profile)
    common = [s for s in dict.fromkeys(cols["descriptor"]) if all(s in profile[m] for m in models)]
    if len(common) < 2:
        raise ValueError(f"profile_correlation: {len(common)} descriptor(s) shared by all models, need >= 2")
    vectors = [np.array([profile[m][s] for s in common], dtype=np.float64) for m in models]
    return models, spearman_matrix(vectors, vectors)


def descriptor_correlations(descr: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Spearman r between descriptors' |Δ| DSMs (the collinearity the RSA's descriptor scores share),
    each pair over the items valid in both."""
    names = list(descr)
    arrays = [abs_dsm(descr[s]) for s in names]
    return names, spearman_matrix(arrays, arrays)
