"""`python -m analysis probe`: linear probes on the store's embeddings, per model, task and seed, into the
store's `probes` and `predictions` tables; then `probe_summary` (mean ± SD over seeds, a 95 % percentile
bootstrap over test items, over movies for AVA) and `probe_pairs` (paired bootstrap of every two models'
difference on a task).

Embeddings are streamed part by part (analysis.probe.StreamSplit over the partition's Parquet parts), so
a probe holds one part plus the shuffle buffer, never the table. The seed-mean's interval resamples test
items once per bootstrap draw and scores every seed's predictions on the same draw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis import bootstrap
from analysis.probe import ProbeConfig, StreamSplit, train_probe
from analysis.tasks import Task, models_embedded, tasks_of
from featurestore import tables
from featurestore.tables import Root

log = logging.getLogger(__name__)

RESAMPLES = 10_000  # issue 9: 10,000 bootstrap resamples
# The training split's shuffle buffer in MiB, whatever the width: 256 MiB is 65,536 rows of 1,024-d, 21,845
# of v2's 3,072-d; a probe holds about two buffers and a part (analysis.probe.StreamSplit)
BUFFER_MB = 256
PROBES_SCHEMA = pa.schema([
    ("model", pa.string()), ("model_sha", pa.string()), ("task", pa.string()), ("dataset", pa.string()),
    ("seed", pa.int32()), ("protocol", pa.string()), ("metric", pa.string()), ("valid_score", pa.float64()),
    ("test_score", pa.float64()), ("best_epoch", pa.int32()), ("epochs", pa.int32()), ("config", pa.string()),
    ("created", pa.string()),
])
PREDICTIONS_SCHEMA = pa.schema([
    ("model", pa.string()), ("task", pa.string()), ("seed", pa.int32()), ("key", pa.string()),
    ("group", pa.string()), ("label", pa.string()), ("prediction", pa.string()), ("score", pa.float64()),
    ("correct", pa.bool_()),
])
SUMMARY_SCHEMA = pa.schema([
    ("model", pa.string()), ("task", pa.string()), ("metric", pa.string()), ("mean", pa.float64()),
    ("sd", pa.float64()), ("n_seeds", pa.int32()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
    ("resamples", pa.int32()),
])
PAIRS_SCHEMA = pa.schema([
    ("task", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()), ("diff", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("resamples", pa.int32()),
])


@dataclass(frozen=True, slots=True)
class TaskData:
    """A task's three splits over one model's embeddings, plus what the predictions table needs."""

    train: StreamSplit
    valid: StreamSplit
    test: StreamSplit
    classes: list[str]
    test_keys: list[str]
    test_groups: list[str | None]
    test_labels: list[str]


def _label_ids(task: Task, classes: list[str]) -> dict[str, int]:
    if task.positive:
        return {c: int(c == task.positive) for c in classes}
    return {c: i for i, c in enumerate(classes)}


def task_data(root: Root, model: str, task: Task, buffer_mb: int = BUFFER_MB) -> TaskData:
    """The task's splits as streamed parts. Everything per item stays columnar (Arrow): AVA has millions of
    windows, and Python sets and dicts of their keys would grow with the table the probe must not hold."""
    items = tables.read(root, "items", ["key", "split", "label", "group", "limited_train"], dataset=task.dataset)
    classes = sorted(pc.unique(pc.filter(items["label"], pc.equal(items["split"], "train"))).to_pylist())
    if task.positive:
        classes = sorted(classes, key=lambda c: c == task.positive)  # negative first, positive = 1
    ids = _label_ids(task, classes)
    class_names, class_ids = pa.array(classes, pa.string()), pa.array([ids[c] for c in classes], pa.int64())
    limited = pc.filter(items["key"], pc.fill_null(items["limited_train"], False)).combine_chunks() \
        if task.limited else None
    urls = tables.files(root, "embeddings", model=model, dataset=task.dataset)
    if not urls:
        raise FileNotFoundError(f"{root.url}: no {model} embeddings of {task.dataset}")

    def part(url: str, split: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        def load() -> tuple[np.ndarray, np.ndarray]:
            t = tables.read_file(root, url, ["key", "split", "label", "embedding"])
            mask = pc.equal(t["split"], split)
            if limited is not None and split == "train":
                mask = pc.and_(mask, pc.is_in(t["key"], value_set=limited))
            t = t.filter(mask)
            index = pc.index_in(t["label"], value_set=class_names)
            if index.null_count:  # no output could predict it: refuse rather than drop or mis-score those items
                unknown = sorted(pc.unique(pc.filter(t["label"], pc.is_null(index))).to_pylist())
                raise ValueError(f"{task.name}: {split} labels {unknown[:5]} never occur in train")
            y = pc.take(class_ids, index).to_numpy()
            width = t.schema.field("embedding").type.list_size
            x = t["embedding"].combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, width)
            return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)
        return load

    schema = tables.committed_schema(root, "embeddings", {"model": model, "dataset": task.dataset})
    buffer_rows = max(1, buffer_mb * 2**20 // (4 * schema.field("embedding").type.list_size))
    splits = {s: StreamSplit([part(u, s) for u in urls], buffer_rows) for s in ("train", "valid", "test")}
    test = [t.filter(pc.equal(t["split"], "test")) for t in (tables.read_file(root, u, ["key", "split", "label"])
                                                              for u in urls)]
    test_keys = pa.chunked_array([t["key"].combine_chunks() for t in test], pa.string())
    groups = pc.take(items["group"], pc.index_in(test_keys, value_set=items["key"].combine_chunks()))
    return TaskData(splits["train"], splits["valid"], splits["test"], classes, test_keys.to_pylist(),
                    groups.to_pylist(), pa.chunked_array([t["label"] for t in test], pa.string()).to_pylist())


def probe_one(root: Root, model: str, task: Task, seeds: list[int], cfg: ProbeConfig,
              device: str | None = None, buffer_mb: int = BUFFER_MB) -> pa.Table:
    """Train and score `seeds` probes of one (model, task); commit their rows and test predictions."""
    data = task_data(root, model, task, buffer_mb)
    if cfg.protocol == "paper":
        cfg = ProbeConfig.paper(epochs=task.epochs)
    sha = tables.manifest(root, "embeddings", {"model": model, "dataset": task.dataset})["lineage"]["model_sha"]
    rows, preds = [], []
    created = tables.lineage()["created"]
    for seed in seeds:
        result = train_probe(data.train, data.valid, data.test, max(2, len(data.classes)), cfg, seed,
                             binary=task.positive is not None, device=device)
        rows.append({"model": model, "model_sha": sha, "task": task.name, "dataset": task.dataset, "seed": seed,
                     "protocol": cfg.protocol, "metric": result.metric, "valid_score": result.valid_score,
                     "test_score": result.test_score, "best_epoch": result.best_epoch, "epochs": cfg.epochs,
                     "config": json.dumps(cfg.to_dict()), "created": created})
        scores = np.asarray(result.test_scores, dtype=np.float64)
        if task.positive:
            predicted = [data.classes[int(s >= 0.5)] for s in scores]
            correct = [(s >= 0.5) == (label == task.positive) for s, label in zip(scores, data.test_labels)]
        else:
            predicted = [data.classes[int(s)] for s in scores]
            correct = [p == label for p, label in zip(predicted, data.test_labels)]
        preds.append(pa.table({
            "model": [model] * len(scores), "task": [task.name] * len(scores), "seed": [seed] * len(scores),
            "key": data.test_keys, "group": data.test_groups, "label": data.test_labels, "prediction": predicted,
            "score": scores, "correct": correct}, schema=PREDICTIONS_SCHEMA))
        log.info("%s on %s seed %d: %s %.4f (epoch %d)", model, task.name, seed, result.metric, result.test_score,
                 result.best_epoch)
    probes = pa.Table.from_pylist(rows, schema=PROBES_SCHEMA)
    meta = tables.lineage(model=model, model_sha=sha, task=task.name, probe=cfg.to_dict(), seeds=seeds,
                          shuffle_buffer_rows=data.train.buffer_rows)
    partition = {"model": model, "task": task.name}
    tables.write(root, "probes", partition, probes, PROBES_SCHEMA, meta)
    tables.write(root, "predictions", partition, pa.concat_tables(preds), PREDICTIONS_SCHEMA, meta)
    return probes


def _seed_scores(root: Root, model: str, task: Task) -> tuple[list[str], np.ndarray, list[np.ndarray], list]:
    """Test keys (sorted), labels as 0/1-or-class strings, one score array per seed, groups."""
    preds = tables.read(root, "predictions", model=model, task=task.name)
    seeds = sorted(set(preds["seed"].to_pylist()))
    per_seed, keys, labels, groups = [], None, None, None
    for seed in seeds:
        t = preds.filter(pc.equal(preds["seed"], seed)).sort_by("key")
        if keys is None:
            keys, labels, groups = t["key"].to_pylist(), t["label"].to_pylist(), t["group"].to_pylist()
        per_seed.append(np.asarray(t["score"].to_numpy() if task.positive else
                                   np.array(t["prediction"].to_pylist(), dtype=object)))
    return keys, np.array(labels, dtype=object), per_seed, groups


def _resampled_mean(task: Task, labels: np.ndarray, per_seed: list[np.ndarray], groups, resamples: int) -> np.ndarray:
    """The seed-mean score on each bootstrap resample of the test items (movies for AVA)."""
    if task.positive:
        y, scores, metric = (labels == task.positive).astype(np.int64), per_seed, bootstrap.average_precision
    else:
        y = np.ones(len(labels), np.int64)
        scores, metric = [(s == labels).astype(np.int64) for s in per_seed], bootstrap.accuracy
    use_groups = np.array(groups, dtype=object) if task.corpus == "ava_speech" else None
    values = bootstrap.resampled(metric, y, tuple(scores), use_groups, resamples, seed=0)
    return np.mean(values, axis=0)


def summarise(root: Root, models: list[str], tasks: list[Task],
              resamples: int = RESAMPLES) -> tuple[pa.Table, pa.Table]:
    """probe_summary and probe_pairs over what the store holds for `models` × `tasks` (committed whole)."""
    summary, pairs, draws = [], [], {}
    for task in tasks:
        for model in models:
            if not tables.partitions(root, "predictions", model=model, task=task.name):
                continue
            probes = tables.read(root, "probes", ["test_score", "metric"], model=model, task=task.name)
            scores = probes["test_score"].to_numpy()
            keys, labels, per_seed, groups = _seed_scores(root, model, task)
            draws[(task.name, model)] = (keys, _resampled_mean(task, labels, per_seed, groups, resamples))
            low, high = np.percentile(draws[(task.name, model)][1], [2.5, 97.5])
            summary.append({"model": model, "task": task.name, "metric": probes["metric"][0].as_py(),
                            "mean": float(scores.mean()), "sd": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
                            "n_seeds": len(scores), "ci_low": float(low), "ci_high": float(high),
                            "resamples": resamples})
        present = [m for m in models if (task.name, m) in draws]
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                keys_a, va = draws[(task.name, a)]
                keys_b, vb = draws[(task.name, b)]
                if keys_a != keys_b:
                    log.warning("%s: %s and %s were tested on different items; no paired interval", task.name, a, b)
                    continue
                means = [r["mean"] for r in summary if r["task"] == task.name and r["model"] in (a, b)]
                low, high = np.percentile(va - vb, [2.5, 97.5])  # same seed-0 draws: a paired bootstrap
                pairs.append({"task": task.name, "model_a": a, "model_b": b, "diff": means[0] - means[1],
                              "ci_low": float(low), "ci_high": float(high), "resamples": resamples})
    summary_t = pa.Table.from_pylist(summary, schema=SUMMARY_SCHEMA)
    pairs_t = pa.Table.from_pylist(pairs, schema=PAIRS_SCHEMA)
    meta = tables.lineage(models=models, tasks=[t.name for t in tasks], resamples=resamples)
    tables.write(root, "probe_summary", {}, summary_t, SUMMARY_SCHEMA, meta)
    tables.write(root, "probe_pairs", {}, pairs_t, PAIRS_SCHEMA, meta)
    return summary_t, pairs_t


def probe(data: str, models: list[str] | None, datasets: list[str] | None, seeds: int, protocol: str = "paper",
          resamples: int = RESAMPLES, device: str | None = None,
          on_done: Callable[[str, str, pa.Table], None] | None = None,
          buffer_mb: int | None = None) -> tuple[pa.Table, pa.Table]:
    """Probe every (model, task) the store has embeddings for (or those named), then summarise."""
    root = Root(data)
    models = models or models_embedded(root)
    if not models:
        raise ValueError(f"{root.url}: the store has no embeddings to probe (run `python -m featurestore embed`)")
    if seeds < 1:
        raise ValueError(f"seeds={seeds} must be >= 1")
    buffer_mb = BUFFER_MB if buffer_mb is None else buffer_mb
    if buffer_mb < 1:
        raise ValueError(f"--buffer-mb {buffer_mb}: must be >= 1")
    cfg = ProbeConfig.evar() if protocol == "evar" else ProbeConfig.paper() if protocol == "paper" else None
    if cfg is None:
        raise ValueError(f"protocol={protocol!r}: expected paper or evar")
    all_tasks: dict[str, Task] = {}
    for model in models:
        present = {p["dataset"] for p in tables.partitions(root, "embeddings", model=model)}
        if not present:
            raise ValueError(f"{root.url}: the store has no embeddings of model {model!r} "
                             f"(embedded: {models_embedded(root) or 'none'})")
        wanted = datasets or sorted(present)
        missing = [d for d in wanted if d not in present]
        if missing:
            raise ValueError(f"{root.url}: model {model!r} has no embeddings of {missing} "
                             f"(embedded: {sorted(present) or 'none'})")
        for dataset in wanted:
            for task in tasks_of(root, dataset):
                all_tasks[task.name] = task
                result = probe_one(root, model, task, list(range(seeds)), cfg, device, buffer_mb)
                if on_done:
                    on_done(model, task.name, result)
    return summarise(root, models, list(all_tasks.values()), resamples)
