"""Pre-training settings: one frozen dataclass; its fields are the CLI flags and the keys of the config files
in `training/configs/` (`tiny`, `paper`, `paper-v1`). The resolved config is saved with every run."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from training.augment import AugmentConfig
from training.models import ModelConfig

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "torch", "dali")


def _doc(text: str) -> dict:
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class TrainConfig:
    data: str = field(default="./data", metadata=_doc("data root holding diets/ and shards/ (folder or s3://)"))
    diet: str = field(default="all", metadata=_doc("diet to pre-train on (speech|nonspeech|all|yours)"))
    run: str | None = field(default=None, metadata=_doc("run name under models/ (default: <diet>-<arch>-s<seed>)"))
    resume: bool = field(default=False, metadata=_doc("continue the run from its last checkpoint"))
    # model (SPEC §2)
    arch: str = field(default="v2", metadata=_doc("encoder: v2 (paper text) or v1 (paper's code)"))
    channels: int = field(default=64, metadata=_doc("conv channels"))
    d: int = field(default=2048, metadata=_doc("MLP width (v1: the embedding size)"))
    dropout: float = field(default=0.3, metadata=_doc("dropout between the MLP layers"))
    hidden: int = field(default=4096, metadata=_doc("projector/predictor hidden width"))
    projection: int = field(default=256, metadata=_doc("projection size"))
    tau: float = field(default=0.99, metadata=_doc("EMA rate of the target network (constant)"))
    # optimisation (SPEC §2: Adam, no weight decay, batch 256, 100 epochs, seed 42)
    epochs: int = field(default=100, metadata=_doc("epochs; one epoch = one random crop of every clip"))
    batch_size: int = field(default=256, metadata=_doc("global batch size, split across ranks"))
    lr: float = field(default=1e-4, metadata=_doc("Adam learning rate (v2 1e-4, v1 3e-4)"))
    seed: int = field(default=42, metadata=_doc("seed of weights, sampler, crops and augmentations"))
    # augmentations (SPEC §2)
    mixup_alpha: float = field(default=0.2, metadata=_doc("Mixup alpha ~ U(0, this) (v1 0.4)"))
    mixup_memory: int = field(default=2048, metadata=_doc("Mixup FIFO size"))
    fader: bool = field(default=True, metadata=_doc("Random Linear Fader (v2)"))
    # how it runs
    device: str = field(default="auto", metadata=_doc("auto|cpu|cuda (auto: this rank's GPU if any)"))
    backend: str = field(default="auto", metadata=_doc("loader: auto (DALI on GPU, torch on CPU)|torch|dali"))
    workers: int = field(default=0, metadata=_doc("torch loader worker processes (0: in-process)"))
    read_workers: int = field(default=4, metadata=_doc("DALI loader read processes (measured best: 4)"))
    bf16: bool = field(default=True, metadata=_doc("bf16 autocast on GPU (ignored on CPU)"))
    # channels_last: 9.0k -> 14.3k crops/s for paper v2 at batch 256 on one H200 (make gpu-check, 2026-11-30)
    channels_last: bool = field(default=True, metadata=_doc("NHWC convolutions on GPU (ignored on CPU)"))
    # torch.compile: 22.5k crops/s in memory, 17.6k with the DALI loader, after ~30 s of compiling (same run)
    compile: bool = field(default=False, metadata=_doc("torch.compile the forward pass (GPU; slow first steps)"))
    sync_bn: bool = field(default=False, metadata=_doc("SyncBatchNorm across ranks (GPU only)"))
    deterministic: bool = field(default=False, metadata=_doc("deterministic algorithms (bitwise resume)"))
    checkpoint_minutes: float = field(default=30.0, metadata=_doc("also checkpoint every N minutes"))
    stats_crops: int = field(default=10_000, metadata=_doc("crops for the diet's norm stats when missing"))
    log_every: int = field(default=50, metadata=_doc("steps between metric rows"))
    max_steps: int | None = field(default=None, metadata=_doc("stop after this many steps (smoke runs)"))

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "mixup_memory", "stats_crops", "log_every", "hidden", "projection"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("lr", "checkpoint_minutes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be a finite number > 0")
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"tau={self.tau} must be in [0, 1]")
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r}, expected one of {DEVICES}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}, expected one of {BACKENDS}")
        if self.workers < 0 or self.read_workers < 0:
            raise ValueError(f"workers={self.workers}, read_workers={self.read_workers} must be >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1")
        self.model  # noqa: B018 - validates the model fields with one clear line
        self.augment  # noqa: B018

    @property
    def model(self) -> ModelConfig:
        return ModelConfig(arch=self.arch, channels=self.channels, d=self.d, dropout=self.dropout)

    @property
    def augment(self) -> AugmentConfig:
        return AugmentConfig(mixup_alpha=self.mixup_alpha, mixup_memory=self.mixup_memory, fader=self.fader)

    @property
    def run_name(self) -> str:
        return self.run or f"{self.diet}-{self.arch}-s{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


def config_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("training.configs").iterdir() if p.name.endswith(".toml"))


def read_config_file(name_or_path: str) -> dict:
    """The keys of a packaged config (`tiny`, `paper`, `paper-v1`) or of a TOML file the user wrote."""
    path = Path(name_or_path)
    if name_or_path in config_names():
        text = resources.files("training.configs").joinpath(f"{name_or_path}.toml").read_text()
    elif path.suffix == ".toml" and path.is_file():
        text = path.read_text()
    else:
        raise FileNotFoundError(f"config {name_or_path!r}: not one of {config_names()} nor a .toml file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config {name_or_path!r}: {err}") from None
