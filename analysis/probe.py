"""Linear probes on frozen embeddings (SPEC §3), trained from batch sources so a table never has to fit in
memory (AVA is millions of 1-s windows).

The paper's protocol, and what it leaves open that we chose:
- one linear layer; Adam lr 1e-4, batch 256; cross-entropy with class weights n / (k * n_c) from the train
  split's counts; ReduceLROnPlateau on the validation loss (patience 5, factor 0.1; PyTorch's defaults
  otherwise: threshold 1e-4 relative, no cooldown); no input standardisation; 50 epochs (NSynth 25,
  AVA 10); the epoch with the best validation score is kept, the earliest on ties; test score reported.
- AVA: one sigmoid output, BCE with pos_weight = n_neg / n_pos from train (our reading of "class weights"
  for one output), speech positive; score = sklearn's ``average_precision_score``.
- chosen here: the initial weights are PyTorch's ``nn.Linear`` default, U(±1/sqrt(d)) for weight and bias,
  drawn from a generator seeded by ``seed`` (the same on CPU and GPU); the train rows are reshuffled every
  epoch from ``np.random.default_rng(seed)``; the validation loss and score are computed after every epoch
  (the loss with the same weighting as training, over the whole split); the training loss in the history
  is the mean of the batch losses weighted by batch size; the best epoch's weights are kept in memory and
  its test predictions reported.
EVAR's protocol (``ProbeConfig.evar()``; nttcslab/eval-audio-repr, TorchMLPClassifier2): inputs
standardised with the train split's mean and std (population, as sklearn's StandardScaler), lr 3e-4,
batch min(200, n), weight decay 1e-8, no class weights, no LR schedule, at most 200 epochs, stop after 20
epochs without a validation gain. Unlike EVAR (which keeps the latest of tied epochs) ties keep the earliest.

Batch sources: a ``Split`` is called as ``split(batch_size, rng)`` and returns a fresh iterator of
``(x float32 (b, d), y int64 (b,))``; rng None gives the split's fixed order (evaluation), a generator a
shuffled order (training). ``StreamSplit`` shuffles data that does not fit in memory in two levels: the
order of its parts (e.g. Parquet row groups) is permuted, then rows are mixed within a buffer of
``buffer_rows`` rows (filled from consecutive parts, permuted, emitted as whole batches; the remainder
stays for the next fill), so memory is bounded by the buffer, not the table: at most about
2 x (buffer_rows + one part) x d x 4 bytes (65,536 rows of 3,072-d v2 embeddings: 1.6 GB). Rows of parts
that never share a buffer never share a batch, so parts should be a fraction of the buffer. With one part
and a buffer of all rows the order is ArraySplit's, and the fixed (evaluation) order is batched across part
boundaries like ArraySplit's, so the two give identical results on the same rows.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from analysis.bootstrap import accuracy, average_precision

log = logging.getLogger(__name__)

Batch = tuple[np.ndarray, np.ndarray]
PROTOCOLS = ("paper", "evar")


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """How a probe is trained; saved as JSON with every result (``to_dict``)."""

    protocol: str = "paper"  # label of the recipe: paper (SPEC §3) | evar (EVAR's lineareval)
    lr: float = 1e-4  # paper: Adam 1e-4
    batch_size: int = 256  # paper
    epochs: int = 50  # paper (SPEC §3): 50; NSynth 25, AVA 10
    patience: int | None = 5  # paper: ReduceLROnPlateau on validation loss, patience 5; None: no schedule
    factor: float = 0.1  # issue 9 (PyTorch's default factor)
    standardise: bool = False  # paper: raw embeddings
    early_stop: int | None = None  # paper: none (all epochs run); EVAR: 20 epochs without a gain
    weight_decay: float = 0.0  # paper: plain Adam (choice: none stated)
    class_weights: bool = True  # paper: weighted loss (n / (k n_c); AVA: pos_weight); EVAR: unweighted

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r}, expected one of {PROTOCOLS}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr} must be a finite number > 0")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience={self.patience} must be None or >= 0")
        if self.early_stop is not None and self.early_stop < 1:
            raise ValueError(f"early_stop={self.early_stop} must be None or >= 1")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor={self.factor} must be in (0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay={self.weight_decay} must be a finite number >= 0")

    @classmethod
    def paper(cls, epochs: int = 50) -> ProbeConfig:
        """The paper's recipe; epochs 50, or 25 for NSynth and 10 for AVA (SPEC §3)."""
        return cls(epochs=epochs)

    @classmethod
    def evar(cls) -> ProbeConfig:
        """EVAR's linear evaluation (see the module docstring for its sources)."""
        return cls(protocol="evar", lr=3e-4, batch_size=200, epochs=200, patience=None, standardise=True,
                   early_stop=20, weight_decay=1e-8, class_weights=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ProbeConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ProbeConfig: unknown keys {sorted(unknown)}")
        return cls(**values)


class Split(Protocol):
    """A batch source: ``n`` rows, ``class_counts[c]`` rows of class c, and fresh batch iterators."""

    @property
    def n(self) -> int: ...

    @property
    def class_counts(self) -> np.ndarray: ...

    def __call__(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]: ...


class StreamSplit:
    """Rows from ``parts``: callables that each load one chunk ``(x, y)`` (a Parquet row group, a file),
    loaded one or a few at a time. ``n`` and ``class_counts`` may be given (e.g. from a SQL count);
    otherwise one pass over the parts computes them when first asked."""

    def __init__(self, parts: Sequence[Callable[[], Batch]], buffer_rows: int = 65_536, n: int | None = None,
                 class_counts: np.ndarray | None = None) -> None:
        if len(parts) == 0:
            raise ValueError("StreamSplit: no parts")
        if buffer_rows < 1:
            raise ValueError(f"StreamSplit: buffer_rows={buffer_rows} must be >= 1")
        self.parts = list(parts)
        self.buffer_rows = buffer_rows
        self._n = n
        self._counts = None if class_counts is None else np.asarray(class_counts, dtype=np.int64)

    @property
    def n(self) -> int:
        if self._n is None:
            self._n = int(self.class_counts.sum())
        return self._n

    @property
    def class_counts(self) -> np.ndarray:
        if self._counts is None:
            counts = np.zeros(0, dtype=np.int64)
            for load in self.parts:
                c = np.bincount(_checked(load())[1])
                counts = np.pad(counts, (0, max(0, len(c) - len(counts))))
                counts[:len(c)] += c
            self._counts = counts
        return self._counts

    def __call__(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]:
        if rng is None:
            order = range(len(self.parts))
        else:  # one part: nothing to order, so the draws match ArraySplit's (one permutation of all rows)
            order = rng.permutation(len(self.parts)) if len(self.parts) > 1 else [0]
        fill = batch_size if rng is None else self.buffer_rows
        xs, ys, held = [], [], 0
        for k, i in enumerate(order):
            part_x, part_y = _checked(self.parts[i]())
            xs.append(part_x)
            ys.append(part_y)
            held += len(part_y)
            del part_x, part_y
            last = k == len(order) - 1
            if held < fill and not last:
                continue
            x, y = _joined(xs, ys)
            rows = np.arange(len(y)) if rng is None else rng.permutation(len(y))
            # whole batches only until the last part, so batches (and float sums) match ArraySplit's
            full = len(y) if last else len(y) - len(y) % batch_size
            for j in range(0, full, batch_size):
                # training batches are gathered copies: one the caller still holds does not pin the buffer
                idx = slice(j, j + batch_size) if rng is None else rows[j:j + batch_size]
                yield x[idx], y[idx]
            xs, ys, held = [x[rows[full:]]], [y[rows[full:]]], len(y) - full
            del x, y


class ArraySplit:
    """In-memory arrays as a split; shuffled epochs are one permutation of all rows."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = _checked((x, y))
        self.class_counts = np.bincount(self.y)
        self.n = len(self.y)

    def __call__(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]:
        order = None if rng is None else rng.permutation(self.n)
        for i in range(0, self.n, batch_size):
            idx = slice(i, i + batch_size) if order is None else order[i:i + batch_size]
            yield self.x[idx], self.y[idx]


@dataclass(frozen=True, slots=True)
class Epoch:
    epoch: int  # 1-based
    train_loss: float
    valid_loss: float
    valid_score: float
    lr: float  # the learning rate this epoch trained with


@dataclass(frozen=True)
class ProbeResult:
    metric: str  # accuracy | ap
    valid_score: float  # of the best epoch
    test_score: float
    best_epoch: int  # 1-based
    epochs_run: int
    test_scores: np.ndarray  # per test row in the split's order: predicted class, or P(positive) for AP
    test_labels: np.ndarray
    history: tuple[Epoch, ...]
    weight: np.ndarray  # the best epoch's linear layer, on standardised inputs when the config says so
    bias: np.ndarray
    mean: np.ndarray | None  # the standardisation applied before the layer (None: raw inputs)
    std: np.ndarray | None


def class_weights(counts: np.ndarray) -> np.ndarray:
    """n / (k * n_c): each class contributes equally to the loss (sklearn's 'balanced')."""
    counts = np.asarray(counts, dtype=np.float64)
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise ValueError(f"class weights: the train split has no rows of class {missing.tolist()}")
    return counts.sum() / (len(counts) * counts)


def pos_weight(counts: np.ndarray) -> float:
    """n_neg / n_pos for one sigmoid output (class 1 positive)."""
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) != 2 or counts.min() == 0:
        raise ValueError(f"pos_weight: need rows of both classes 0 and 1 in train, got counts {counts.tolist()}")
    return float(counts[0] / counts[1])


def feature_stats(split: Split, batch_size: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std per feature in one streamed pass (Chan et al.'s merge of per-batch float64
    moments); a zero std becomes 1, as in sklearn's StandardScaler."""
    n, mean, m2 = 0, None, None
    for x, _ in split(batch_size):
        xb = x.astype(np.float64)
        nb = len(xb)
        if nb == 0:
            continue
        mb = xb.mean(axis=0)
        m2b = ((xb - mb) ** 2).sum(axis=0)
        if mean is None:
            n, mean, m2 = nb, mb, m2b
            continue
        delta = mb - mean
        total = n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        n = total
    if mean is None:
        raise ValueError("feature_stats: the split yielded no rows")
    std = np.sqrt(m2 / n)
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    return mean, std


def best_epoch(scores: Sequence[float]) -> int:
    """1-based epoch of the highest score, the earliest among ties; NaN never wins."""
    best = 0
    for i, score in enumerate(scores):
        if _better(score, scores[best]):
            best = i
    return best + 1


def train_probe(train: Split, valid: Split, test: Split, n_classes: int, cfg: ProbeConfig, seed: int,
                binary: bool = False, device: str | None = None) -> ProbeResult:
    """Train one linear probe and score the best epoch on test. ``binary``: one sigmoid output, labels
    0/1 with 1 positive, scored by average precision; otherwise ``n_classes`` outputs, accuracy."""
    if binary and n_classes != 2:
        raise ValueError(f"binary probe: n_classes={n_classes}, expected 2 (labels 0/1)")
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes} must be >= 2")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    counts = np.pad(np.asarray(train.class_counts, dtype=np.int64), (0, max(0, n_classes - len(train.class_counts))))
    if len(counts) > n_classes:
        raise ValueError(f"train has labels up to {len(counts) - 1}, but n_classes={n_classes}")
    loss_fn = _loss(counts, binary, cfg.class_weights, device)
    mean, std = feature_stats(train) if cfg.standardise else (None, None)
    first = next(iter(train(1)), None)
    if first is None:
        raise ValueError("probe: the train split yielded no rows")
    model = _model(first[0].shape[1], 1 if binary else n_classes, mean, std, seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=cfg.factor,
                                                            patience=cfg.patience)
                 if cfg.patience is not None else None)
    rng = np.random.default_rng(seed)
    history: list[Epoch] = []
    best_state, best = None, 0
    for epoch in range(1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        total, rows = torch.zeros((), dtype=torch.float64, device=device), 0  # summed on the device: no sync
        for x, y in train(cfg.batch_size, rng):
            loss = loss_fn(model(_tensor(x, device)), _target(y, binary, device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            rows += len(y)
        valid_loss, valid_score, _, _ = _evaluate(model, valid, loss_fn, binary, cfg.batch_size, device)
        if scheduler is not None:
            scheduler.step(valid_loss)
        history.append(Epoch(epoch, total.item() / max(rows, 1), valid_loss, valid_score, lr))
        if best_state is None or _better(valid_score, history[best - 1].valid_score):
            best, best_state = epoch, copy.deepcopy(model.state_dict())
        log.debug("epoch %d lr %.2g train %.4f valid %.4f score %.4f", epoch, lr, history[-1].train_loss,
                  valid_loss, valid_score)
        if cfg.early_stop is not None and epoch - best >= cfg.early_stop:
            break
    model.load_state_dict(best_state)
    _, test_score, test_scores, test_labels = _evaluate(model, test, loss_fn, binary, cfg.batch_size, device)
    linear = model[-1]
    log.info("probe: best epoch %d of %d, valid %.4f, test %s %.4f", best, len(history),
             history[best - 1].valid_score, "ap" if binary else "accuracy", test_score)
    return ProbeResult(metric="ap" if binary else "accuracy", valid_score=history[best - 1].valid_score,
                       test_score=test_score, best_epoch=best, epochs_run=len(history), test_scores=test_scores,
                       test_labels=test_labels, history=tuple(history),
                       weight=linear.weight.detach().cpu().numpy(), bias=linear.bias.detach().cpu().numpy(),
                       mean=mean, std=std)


class _Standardise(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _model(d: int, outputs: int, mean: np.ndarray | None, std: np.ndarray | None, seed: int) -> nn.Sequential:
    linear = nn.Linear(d, outputs)
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(d)  # nn.Linear's default init, from our generator instead of the global one
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.uniform_(-bound, bound, generator=generator)
    layers = [] if mean is None else [_Standardise(mean, std)]
    return nn.Sequential(*layers, linear)


def _loss(counts: np.ndarray, binary: bool, weighted: bool, device: str) -> nn.Module:
    if binary:
        weight = torch.tensor([pos_weight(counts) if weighted else 1.0], device=device)
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    weight = torch.tensor(class_weights(counts), dtype=torch.float32, device=device) if weighted else None
    return nn.CrossEntropyLoss(weight=weight)


@torch.no_grad()
def _evaluate(model: nn.Module, split: Split, loss_fn: nn.Module, binary: bool, batch_size: int,
              device: str) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Loss over the whole split (weighted like training), score, per-row predictions and labels."""
    model.eval()
    loss_sum, weight_sum, outputs, labels = 0.0, 0.0, [], []
    for x, y in split(batch_size):
        logits = model(_tensor(x, device))
        target = _target(y, binary, device)
        if binary:
            loss_sum += F.binary_cross_entropy_with_logits(logits, target, pos_weight=loss_fn.pos_weight,
                                                           reduction="sum").item()
            weight_sum += len(y)
            outputs.append(torch.sigmoid(logits[:, 0]).double().cpu().numpy())
        else:
            loss_sum += F.cross_entropy(logits, target, weight=loss_fn.weight, reduction="sum").item()
            weight_sum += len(y) if loss_fn.weight is None else loss_fn.weight[target].sum().item()
            outputs.append(logits.argmax(dim=1).cpu().numpy())
        labels.append(y)
    if not labels:
        raise ValueError("probe: an evaluation split yielded no rows")
    predictions, labels = np.concatenate(outputs), np.concatenate(labels)
    score = average_precision(labels, predictions) if binary else accuracy(labels, predictions)
    return loss_sum / weight_sum, score, predictions, labels


def _tensor(x: np.ndarray, device: str) -> torch.Tensor:
    """A batch as a tensor without a copy. Batches are zero-copy views of Arrow buffers, which are read-only;
    the probe only reads its inputs, so torch's warning about non-writable arrays is silenced here (it printed a
    traceback-like line in every probe run)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device, non_blocking=True)


def _target(y: np.ndarray, binary: bool, device: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(y)).to(device, non_blocking=True)
    return t.float()[:, None] if binary else t


def _better(new: float, old: float) -> bool:
    return not math.isnan(new) and (math.isnan(old) or new > old)


def _checked(batch: Batch) -> Batch:
    x, y = batch
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"batch: x must be (rows, d) and y (rows,), got x {x.shape} and y {y.shape}")
    if len(y) and y.min() < 0:
        raise ValueError(f"batch: labels must be class indices >= 0, got {y.min()}")
    return x, y


def _joined(xs: list[np.ndarray], ys: list[np.ndarray]) -> Batch:
    """Concatenate the held chunks and drop them from the lists: the parts and the joined copy are alive
    together only here (2 x buffer_rows x d x 4 bytes), the joined copy alone afterwards."""
    x = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y = ys[0] if len(ys) == 1 else np.concatenate(ys)
    xs.clear()
    ys.clear()
    return x, y
