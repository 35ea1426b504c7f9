"""The study's probe tasks over the store's datasets (SPEC §3): which metric, how many epochs, which rows
train. A dataset's protocol follows its corpus (the adapter ingest used, recorded with its items), not its
name, so a user's `vctk_small` collection is probed as VCTK.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurestore import tables
from featurestore.tables import Root

EPOCHS = {"nsynth": 25, "ava_speech": 10}  # SPEC §3; every other dataset: 50
DEFAULT_EPOCHS = 50
BINARY = {"ava_speech": "speech"}  # one sigmoid output, scored by AP; the positive label
LIMITED_SUFFIX = "_limited"  # AVA-Speech limited: trains on the first 30 movies only (SPEC §3)


@dataclass(frozen=True, slots=True)
class Task:
    name: str  # the dataset, or <dataset>_limited
    dataset: str
    corpus: str
    epochs: int
    positive: str | None  # binary tasks: the positive label (AP); None: accuracy over classes
    limited: bool = False  # train only on items whose limited_train is true

    @property
    def metric(self) -> str:
        return "ap" if self.positive else "accuracy"


def corpus_of(root: Root, dataset: str) -> str:
    record = tables.manifest(root, "items", {"dataset": dataset})
    if record is None:
        raise FileNotFoundError(f"{root.url}: dataset {dataset!r} has no items in the store "
                                "(run `python -m featurestore embed` first)")
    return record["lineage"].get("corpus", dataset)


def tasks_of(root: Root, dataset: str) -> list[Task]:
    """AVA-Speech gives two tasks (full and limited); every other dataset one."""
    corpus = corpus_of(root, dataset)
    base = Task(dataset, dataset, corpus, EPOCHS.get(corpus, DEFAULT_EPOCHS), BINARY.get(corpus))
    if corpus != "ava_speech":
        return [base]
    return [base, Task(dataset + LIMITED_SUFFIX, dataset, corpus, base.epochs, base.positive, limited=True)]


def datasets_embedded(root: Root, model: str | None = None) -> list[str]:
    """Datasets with committed embeddings (of `model`, if given)."""
    where = {"model": model} if model else {}
    return sorted({p["dataset"] for p in tables.partitions(root, "embeddings", **where)})


def models_embedded(root: Root) -> list[str]:
    return sorted({p["model"] for p in tables.partitions(root, "embeddings")})
