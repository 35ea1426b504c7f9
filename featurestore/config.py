"""Feature-store settings: one frozen dataclass per verb; their fields are the CLI flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEVICES = ("auto", "cpu", "cuda")
POOLINGS = ("auto", "windows", "frames")


@dataclass(frozen=True, slots=True)
class EmbedConfig:
    data: str = "./data"  # the data root (folder or s3://): shards in, store/ out
    models: tuple[str, ...] = ()  # model ids (docs/store.md): run:<run>, byola-v2:random, yamnet:<file>, ...
    datasets: tuple[str, ...] = ()  # transfer datasets; empty: every one present
    norm_mean: float | None = None  # stats for models without their own (foreign BYOL-A weights, random-init)
    norm_std: float | None = None
    stats_diet: str | None = None  # ... or a diet's stats file; neither: the dataset's train-split stats
    device: str = "auto"  # auto: the GPU when present
    workers: int = 0  # local worker processes over shards; 0 embeds in this process (the right choice on a GPU)
    scheduler: str | None = None  # a Dask scheduler address: shards are embedded on the cluster's workers
    replace: bool = False  # overwrite a stored partition made by a different model under the same name
    # windows of long recordings (AVA): windows = each embedded from its own span (the reference); frames =
    # pooled from the recording's frame features (featurestore.frames, BYOL-A only); auto = frames for BYOL-A
    # models where a sample of the dataset's windows is within tolerance of per-window, else windows
    pooling: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r}, expected one of {DEVICES}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}, expected one of {POOLINGS}")
        if self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0")
        if (self.norm_mean is None) != (self.norm_std is None):
            raise ValueError("give both --norm-mean and --norm-std, or neither")
        if self.norm_std is not None and not self.norm_std > 0:
            raise ValueError(f"norm_std={self.norm_std} must be > 0")
        if self.norm_mean is not None and self.stats_diet:
            raise ValueError("give --norm-mean/--norm-std or --stats-diet, not both")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DescribeConfig:
    data: str = "./data"
    datasets: tuple[str, ...] = ()  # empty: every transfer dataset present
    subset: str = "rsa"  # rsa (the rsa_items, the default), tsne, or all (every item)
    pitch: bool = True  # YIN pitch and periodicity (the slow descriptors)
    workers: int = 0
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.subset not in ("rsa", "tsne", "all"):
            raise ValueError(f"subset={self.subset!r}, expected rsa, tsne or all")
        if self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)
