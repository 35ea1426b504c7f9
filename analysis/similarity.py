"""`python -m analysis rsa` and `tsne`: SPEC §4 over the store's `rsa_items` (analysis.rsa does the
arithmetic, analysis.tsne the layout). Results land in the store's `rsa`, `rsa_models`, `rsa_summary` and
`tsne` tables.

Per dataset: the RSA items' descriptors and every model's embeddings of the same items (sorted by key), a
cosine DSM per model, a |Δ| DSM per descriptor (pitch descriptors only for NSynth, SPEC §4), one-sided
Mantel tests sharing permutations. Benjamini–Hochberg runs once over all (model, dataset, descriptor) tests
of the run; model-vs-model tests are a family of their own. AVA-limited shares AVA's items, so it never
gets RSA rows of its own and counts once by construction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis import rsa as rsa_math
from analysis.tasks import corpus_of, models_embedded
from analysis.tsne import TSNEConfig, colour_column, embed_2d
from featurestore import tables
from featurestore.tables import Root

log = logging.getLogger(__name__)

RSA_SCHEMA = pa.schema([
    ("model", pa.string()), ("dataset", pa.string()), ("descriptor", pa.string()), ("n_items", pa.int32()),
    ("r_s", pa.float64()), ("p", pa.float64()), ("q", pa.float64()), ("significant", pa.bool_()),
    ("test", pa.string()),
])
MODELS_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()), ("r_s", pa.float64()),
    ("p", pa.float64()), ("q", pa.float64()),
])
TSNE_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("key", pa.string()), ("model", pa.string()), ("x", pa.float64()),
    ("y", pa.float64()), ("label", pa.string()), ("colour_by", pa.string()), ("value", pa.string()),
])
PITCH_CORPORA = ("nsynth",)  # SPEC §4: pitch descriptors only where notes are pitched


def _subset_keys(root: Root, dataset: str, purpose: str) -> list[str]:
    chosen = tables.read(root, "rsa_items", ["key", "purpose"], dataset=dataset)
    return sorted(pc.filter(chosen["key"], pc.equal(chosen["purpose"], purpose)).to_pylist())


def embeddings_of(root: Root, model: str, dataset: str, keys: list[str]) -> np.ndarray:
    """The model's vectors of `keys`, in that order, streamed (a dataset's partition may be millions of rows)."""
    want = pa.array(keys, pa.string())
    found: dict[str, np.ndarray] = {}
    for batch in tables.scan(root, "embeddings", ["key", "embedding"], model=model, dataset=dataset):
        t = pa.Table.from_batches([batch])
        t = t.filter(pc.is_in(t["key"], value_set=want))
        if t.num_rows:
            width = t.schema.field("embedding").type.list_size
            vectors = t["embedding"].combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, width)
            found.update(zip(t["key"].to_pylist(), vectors))
    missing = [k for k in keys if k not in found]
    if missing:
        raise ValueError(f"{model} has no embedding of {len(missing)} RSA items of {dataset} "
                         f"(first {missing[0]!r}): re-run `python -m featurestore embed`")
    return np.stack([found[k] for k in keys]).astype(np.float64)


def descriptors_of(root: Root, dataset: str, keys: list[str], pitch: bool) -> dict[str, np.ndarray]:
    from featurestore.descriptors import PITCH_DESCRIPTORS

    t = tables.read(root, "descriptors", dataset=dataset)
    t = t.filter(pc.is_in(t["key"], value_set=pa.array(keys, pa.string()))).sort_by("key")
    if t["key"].to_pylist() != keys:
        raise ValueError(f"{dataset}: descriptors miss {len(keys) - t.num_rows} RSA items: re-run "
                         "`python -m featurestore describe`")
    names = [c for c in t.column_names if c not in ("dataset", "key", "split")]
    return {n: t[n].to_numpy(zero_copy_only=False).astype(np.float64) for n in names
            if pitch or n not in PITCH_DESCRIPTORS}


def rsa(data: str, models: list[str] | None = None, datasets: list[str] | None = None,
        permutations: int = rsa_math.PERMUTATIONS, test: str = "mantel",
        on_dataset: Callable[[str], None] | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    from featurestore.descriptors import PITCH_DESCRIPTORS

    if test not in ("mantel", "spearman"):
        raise ValueError(f"test={test!r}: expected mantel or spearman")
    root = Root(data)
    models = models or models_embedded(root)
    described = {p["dataset"] for p in tables.partitions(root, "descriptors")}
    datasets = datasets or sorted(described)
    if not datasets:
        raise ValueError(f"{root.url}: no descriptors in the store (run `python -m featurestore describe`)")
    rows, pairs = [], []
    for dataset in datasets:
        if dataset not in described:
            raise ValueError(f"{root.url}: dataset {dataset!r} has no descriptors "
                             "(run `python -m featurestore describe`)")
        keys = _subset_keys(root, dataset, "rsa")
        descr = descriptors_of(root, dataset, keys, corpus_of(root, dataset) in PITCH_CORPORA)
        present = [m for m in models if tables.partitions(root, "embeddings", model=m, dataset=dataset)]
        dsms = {m: rsa_math.cosine_dsm(embeddings_of(root, m, dataset, keys)) for m in present}
        names = list(descr)
        descr_dsms = [rsa_math.abs_dsm(descr[n]) for n in names]
        for model, dsm in dsms.items():
            if test == "mantel":
                r, p = rsa_math.mantel_many(dsm, descr_dsms, len(keys), permutations)
            else:
                r, p = rsa_math.spearman_test(dsm, descr_dsms)
            rows += [{"model": model, "dataset": dataset, "descriptor": n, "n_items": len(keys), "r_s": float(ri),
                      "p": float(pi), "test": test} for n, ri, pi in zip(names, r, p)]
        for i, a in enumerate(present):
            others = present[i + 1:]
            if not others:
                continue
            if test == "mantel":
                r, p = rsa_math.mantel_many(dsms[a], [dsms[b] for b in others], len(keys), permutations)
            else:
                r, p = rsa_math.spearman_test(dsms[a], [dsms[b] for b in others])
            pairs += [{"dataset": dataset, "model_a": a, "model_b": b, "r_s": float(ri), "p": float(pi)}
                      for b, ri, pi in zip(others, r, p)]
        if on_dataset:
            on_dataset(dataset)
    q = rsa_math.bh(np.array([r["p"] for r in rows], dtype=np.float64)) if rows else np.array([])
    for row, qi, keep in zip(rows, q, rsa_math.significant(np.array([r["r_s"] for r in rows]), q)):
        row["q"], row["significant"] = float(qi), bool(keep)
    q_models = rsa_math.bh(np.array([r["p"] for r in pairs], dtype=np.float64)) if pairs else np.array([])
    for row, qi in zip(pairs, q_models):
        row["q"] = float(qi)
    rsa_t = pa.Table.from_pylist(rows, schema=RSA_SCHEMA)
    models_t = pa.Table.from_pylist(pairs, schema=MODELS_SCHEMA)
    summary = rsa_math.summarise(rsa_t, pitch=set(PITCH_DESCRIPTORS))
    meta = tables.lineage(models=models, datasets=datasets, permutations=permutations, test=test,
                          alpha=rsa_math.ALPHA)
    tables.write(root, "rsa", {}, rsa_t, RSA_SCHEMA, meta)
    tables.write(root, "rsa_models", {}, models_t, MODELS_SCHEMA, meta)
    tables.write(root, "rsa_summary", {}, summary, rsa_math.SUMMARY_SCHEMA, meta)
    return rsa_t, models_t, summary


def default_tsne_model(root: Root) -> str:
    """SPEC §4: the BYOL-A (all) model; else the first trained run; else the first model embedded."""
    models = models_embedded(root)
    if not models:
        raise ValueError(f"{root.url}: the store has no embeddings (run `python -m featurestore embed`)")
    runs = [m for m in models if m.startswith("run-")]
    return next((m for m in runs if m.startswith("run-all")), runs[0] if runs else models[0])


def tsne(data: str, model: str | None = None, datasets: list[str] | None = None,
         cfg: TSNEConfig = TSNEConfig()) -> pa.Table:
    """2-D t-SNE of each dataset's t-SNE items (SPEC §4, Fig. 2), one partition per dataset."""
    root = Root(data)
    model = model or default_tsne_model(root)
    datasets = datasets or sorted({p["dataset"] for p in tables.partitions(root, "embeddings", model=model)})
    out = []
    for dataset in datasets:
        keys = _subset_keys(root, dataset, "tsne")
        x = embeddings_of(root, model, dataset, keys)
        # openTSNE needs n > 3 * perplexity: small datasets (the demo's) get the largest perplexity they allow
        perplexity = min(cfg.perplexity, max(1.0, (len(keys) - 1) / 3 - 1e-6))
        run_cfg = dataclasses.replace(cfg, perplexity=perplexity)
        xy = embed_2d(x, run_cfg)
        items = tables.read(root, "items", ["key", "label", "pitch", "gender"], dataset=dataset)
        items = items.filter(pc.is_in(items["key"], value_set=pa.array(keys, pa.string()))).sort_by("key")
        colour = colour_column(corpus_of(root, dataset))  # NSynth by pitch, VCTK by gender (SPEC §4)
        values = [None if v is None else str(v) for v in items[colour].to_pylist()]
        table = pa.table({"dataset": [dataset] * len(keys), "key": keys, "model": [model] * len(keys),
                          "x": xy[:, 0], "y": xy[:, 1], "label": items["label"], "colour_by": [colour] * len(keys),
                          "value": values}, schema=TSNE_SCHEMA)
        meta = tables.lineage(model=model, dataset=dataset, tsne=dataclasses.asdict(run_cfg))
        tables.write(root, "tsne", {"dataset": dataset}, table, TSNE_SCHEMA, meta)
        out.append(table)
    return pa.concat_tables(out) if out else TSNE_SCHEMA.empty_table()
