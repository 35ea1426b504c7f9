"""BYOL-A pre-training on a diet, top to bottom: ranks and device, data, model, resume, then the loop.

One process per GPU under `torchrun` (DDP), or one process on a CPU. The sampler gives every rank its own
clips of the (seed, epoch) order and every rank the same number of batches: batch k of an epoch is the
global batch k of that order, dealt over the ranks, so the loader position (epoch, k) means the same on any
number of ranks and a run resumes on more or fewer GPUs without replaying or skipping a clip.

Randomness is a function of (seed, rank, step): the augmentation generator and torch's global RNG (dropout)
are re-seeded before every step, so a resumed run draws exactly what an uninterrupted one would, whatever
else used the RNG in between (a DataLoader draws its base seed from it when an epoch starts, which a
mid-epoch resume does at another point), and no RNG state needs saving. Checkpoints are written at the end
of every epoch, every `checkpoint_minutes`, and when SIGTERM/SIGINT arrives (then the run stops cleanly:
`--resume` continues it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from shards import layout
from shards.catalog import read_table, write_table
from shards.diets import load_diet
from shards.frontend import BYOLA, CROP_SAMPLES
from shards.loader import compute_stats, dali_loader, load_stats, torch_loader
from shards.malloc import retain_freed_memory
from shards.sampler import LoaderState, Sampler
from shards.storage import Root
from shards.version import code_version
from training import checkpoint as ckpt
from training.augment import Augment
from training.byol import BYOL
from training.config import TrainConfig
from training.models import Encoder
from training.step import make_optimizer, train_step

log = logging.getLogger(__name__)

METRICS_SCHEMA = pa.schema([
    ("step", pa.int64()), ("epoch", pa.int64()), ("loss", pa.float64()), ("lr", pa.float64()),
    ("tau", pa.float64()), ("crops_per_s", pa.float64()), ("wall_s", pa.float64()),
])


class Progress:
    """Callbacks the CLI turns into a progress bar; the library itself never prints."""

    def started(self, total_steps: int, step: int) -> None: ...

    def stepped(self, step: int, epoch: int, loss: float, crops_per_s: float) -> None: ...


@dataclass
class Summary:
    run: str
    steps: int = 0
    epochs_done: int = 0
    stopped_by: str | None = None  # "SIGTERM"/"SIGINT" when a signal ended the run early
    last_loss: float = math.nan
    files: list[str] = field(default_factory=list)


# -- helpers, in the order main() uses them ---------------------------------------------------------
def _ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device=cuda, but no GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _stats(cfg: TrainConfig, rank: int, world: int) -> dict:
    """The diet's norm stats; computed once (rank 0) and stored when the diet has none yet. Only rank 0 looks,
    and every rank meets at the barrier: when each rank looked for itself, one that found the file rank 0 had
    just written skipped the barrier rank 0 waited at, and both hung (seen in CI: rank 0 in the barrier, rank 1
    in DDP's first collective)."""
    if rank == 0:
        try:
            load_stats(cfg.data, cfg.diet)
        except FileNotFoundError:
            log.warning("diet %s has no normalisation stats yet: computing them once from %d crops",
                        cfg.diet, cfg.stats_crops)
            compute_stats(cfg.data, cfg.diet, crops=cfg.stats_crops)
    if world > 1:
        torch.distributed.barrier()
    return load_stats(cfg.data, cfg.diet)


def _batches(cfg: TrainConfig, table, sampler: Sampler, state: LoaderState, stats: dict,
             device: torch.device) -> Iterator:
    use_dali = cfg.backend == "dali" or (cfg.backend == "auto" and device.type == "cuda")
    if use_dali:
        dali_id = device.index if device.type == "cuda" else None
        return dali_loader(table, sampler, state, stats, device_id=dali_id, read_workers=cfg.read_workers)
    return iter(torch_loader(table, sampler, state, stats, workers=cfg.workers))


def _step_seed(cfg: TrainConfig, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([cfg.seed, rank, step]).generate_state(1)[0])


class _StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step (checkpoint, then stop)."""

    def __init__(self):
        self.name: str | None = None
        self._previous = {}

    def __enter__(self) -> "_StopSignal":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.name = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _rank_state_name(step: int, rank: int) -> str:
    return f"rank-state/step-{step:010d}-rank-{rank:04d}.pt"


def _save(root: Root, cfg: TrainConfig, byol: BYOL, optimizer, augment: Augment, step: int, state: LoaderState,
          stats: dict, fingerprint: str, rank: int, world: int, metrics: list[dict]) -> None:
    """Each rank writes its Mixup memory; then rank 0 commits the checkpoint naming that step. BatchNorm running
    statistics are first averaged over ranks (each rank's forward passes updated them with its own clips), so
    every rank holds the weights and buffers the checkpoint records."""
    run = cfg.run_name
    if world > 1:
        buffers = [b for b in byol.buffers() if b.is_floating_point()]
        for buffer in buffers:
            torch.distributed.all_reduce(buffer)
        torch._foreach_div_(buffers, float(world))
    ckpt.save(root, run, _rank_state_name(step, rank), {"step": step, "memory": augment.memory.state_dict()})
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return
    encoder = byol.online["encoder"]
    common = {"model_config": cfg.model.to_dict(), "stats": {"mean": stats["mean"], "std": stats["std"]},
              "front_end": stats.get("front_end", BYOLA.to_dict()), "diet": cfg.diet, "diet_fingerprint": fingerprint,
              "code_version": code_version(), "config": cfg.to_dict()}
    ckpt.save(root, run, ckpt.ENCODER, {**common, "encoder": encoder.state_dict(), "step": step})
    write_table(root, ckpt.run_file(run, ckpt.METRICS), pa.Table.from_pylist(metrics, schema=METRICS_SCHEMA))
    _plot_loss(root, run, metrics)
    ckpt.save(root, run, ckpt.CHECKPOINT, {
        **common, "online": byol.online.state_dict(), "target": byol.target.state_dict(),
        "predictor": byol.predictor.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
        "loader": state.to_dict(), "world_size": world})  # written last: names the step of the rank files
    folder = ckpt.run_file(run, "rank-state")
    for name in root.listdir(folder, ".pt"):  # rank states of earlier checkpoints are no longer referenced
        if not name.startswith(f"step-{step:010d}-"):
            root.fs.rm(root.path(f"{folder}/{name}"))


def _plot_loss(root: Root, run: str, metrics: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], lw=1)
    ax.set(xlabel="step", ylabel="BYOL loss", title=run)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    root.write_bytes(ckpt.run_file(run, ckpt.LOSS_PLOT), buf.getvalue())


def _restore(root: Root, cfg: TrainConfig, byol: BYOL, optimizer, augment: Augment, fingerprint: str,
             rank: int, world: int, device: torch.device) -> tuple[int, LoaderState, list[dict]]:
    saved = ckpt.load(root, cfg.run_name)
    if saved["diet_fingerprint"] != fingerprint:
        raise ValueError(f"run {cfg.run_name!r} was trained on diet {saved['diet']!r} with fingerprint "
                         f"{saved['diet_fingerprint']}, the diet now has {fingerprint}: it changed since; "
                         "start a new run (--run NAME) instead of resuming")
    if saved["model_config"] != cfg.model.to_dict():
        raise ValueError(f"run {cfg.run_name!r} has model {saved['model_config']}, the config asks for "
                         f"{cfg.model.to_dict()}: resume with the run's own settings")
    if saved["config"]["batch_size"] != cfg.batch_size:
        raise ValueError(f"run {cfg.run_name!r} was trained at batch_size={saved['config']['batch_size']} "
                         f"(global), now {cfg.batch_size}: resume with the same global batch size")
    if saved["world_size"] != world:  # elastic: the loader position is in global batches (see Sampler)
        log.warning("resuming %s on %d ranks; it was saved on %d", cfg.run_name, world, saved["world_size"])
    byol.online.load_state_dict(saved["online"])
    byol.target.load_state_dict(saved["target"])
    byol.predictor.load_state_dict(saved["predictor"])
    optimizer.load_state_dict(saved["optimizer"])
    step = int(saved["step"])
    # each rank's own Mixup memory; on more ranks than were saved, rank r takes rank r mod (saved ranks)'s
    mine = ckpt.load(root, cfg.run_name, _rank_state_name(step, rank % saved["world_size"]))
    augment.memory.load_state_dict({k: v.to(device) if torch.is_tensor(v) else v for k, v in mine["memory"].items()})
    metrics_rel = ckpt.run_file(cfg.run_name, ckpt.METRICS)
    metrics = [m for m in read_table(root, metrics_rel).to_pylist() if m["step"] <= step] \
        if root.exists(metrics_rel) else []
    return step, LoaderState.from_dict(saved["loader"]), metrics


# -- the run ----------------------------------------------------------------------------------------
def pretrain(cfg: TrainConfig, progress: Progress | None = None,
             on_step: Callable[[int, float], None] | None = None) -> Summary:
    """Pre-train BYOL-A on `cfg.diet`; returns what the run did. `on_step(step, loss)` is for tests."""
    progress = progress or Progress()
    rank, world, local_rank = _ranks()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo")
    device = _device(cfg, local_rank)
    if device.type == "cpu":
        retain_freed_memory()  # every CPU step reallocates the same large tensors (shards.malloc)
    if cfg.sync_bn and device.type != "cuda":
        raise ValueError("sync_bn needs GPUs (SyncBatchNorm has no CPU implementation)")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} (global) must be divisible by the {world} ranks")

    # data: the diet's clips, its fingerprint and norm stats
    root = Root(cfg.data)
    layout.check_name(cfg.diet, "diet")
    run = layout.check_name(cfg.run_name, "run")
    table = load_diet(cfg.data, cfg.diet)
    fingerprint = ckpt.diet_fingerprint(root, cfg.diet)
    stats = _stats(cfg, rank, world)
    sampler = Sampler(len(table), cfg.batch_size // world, seed=cfg.seed, rank=rank, world_size=world)

    # model, augmentations, optimiser: seeded the same on every rank
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    byol = BYOL(Encoder(cfg.model), cfg.hidden, cfg.projection, cfg.tau)
    if cfg.sync_bn:
        byol = torch.nn.SyncBatchNorm.convert_sync_batchnorm(byol)
    byol = byol.to(device)
    if device.type == "cuda" and cfg.channels_last:
        byol = byol.to(memory_format=torch.channels_last)
    augment = Augment(cfg.augment, (1, cfg.model.n_mels, BYOLA.frames(CROP_SAMPLES)), device)
    optimizer = make_optimizer(byol, cfg.lr)
    generator = torch.Generator(device=device)

    # a new run, or the same run resumed exactly
    config_rel = ckpt.run_file(run, ckpt.CONFIG)
    exists = root.exists(config_rel)
    if world > 1:  # every rank looks before rank 0 writes
        torch.distributed.barrier()
    if cfg.resume:
        step, state, metrics = _restore(root, cfg, byol, optimizer, augment, fingerprint, rank, world, device)
        log.info("resuming %s at step %d (epoch %d, batch %d)", run, step, state.epoch, state.batch)
    elif exists:
        raise ValueError(f"run {run!r} already exists in {root.url_of(layout.model_dir(run))}: "
                         "continue it with --resume, or name a new one with --run NAME")
    else:
        step, state, metrics = 0, LoaderState(), []
        if rank == 0:
            root.write_bytes(config_rel, json.dumps({"config": cfg.to_dict(), "model_config": cfg.model.to_dict(),
                                                     "diet_fingerprint": fingerprint, "stats": stats,
                                                     "code_version": code_version(), "world_size": world},
                                                    indent=1).encode())
    network = torch.nn.parallel.DistributedDataParallel(byol, device_ids=[device.index] if device.type == "cuda"
                                                        else None) if world > 1 else byol
    if cfg.compile:
        network = torch.compile(network)
    summary = Summary(run)
    total = cfg.epochs * sampler.batches_per_epoch()
    limit = min(total, cfg.max_steps) if cfg.max_steps else total
    progress.started(limit, step)
    bf16 = cfg.bf16 and device.type == "cuda"
    started, last_save, window_start, window_steps = time.perf_counter(), time.monotonic(), time.perf_counter(), 0
    pending: list[tuple[int, int, torch.Tensor]] = []

    def flush(now: float) -> None:
        nonlocal window_start, window_steps
        if not pending:
            return
        rate = window_steps * cfg.batch_size / max(now - window_start, 1e-9)
        for s, e, loss in pending:
            metrics.append({"step": s, "epoch": e, "loss": float(loss), "lr": cfg.lr, "tau": cfg.tau,
                            "crops_per_s": rate, "wall_s": now - started})
        summary.last_loss = metrics[-1]["loss"]
        progress.stepped(metrics[-1]["step"], metrics[-1]["epoch"], summary.last_loss, rate)
        pending.clear()
        window_start, window_steps = now, 0

    with _StopSignal() as stop:
        while state.epoch < cfg.epochs and step < limit and stop.name is None:
            for batch in _batches(cfg, table, sampler, state, stats, device):
                seed = _step_seed(cfg, rank, step)
                generator.manual_seed(seed)  # augmentations
                torch.manual_seed(seed)  # dropout; also undoes RNG draws a loader made (DataLoader seeds)
                try:
                    loss = train_step(byol, augment, optimizer, batch.x.to(device, non_blocking=True), generator,
                                      bf16, network)
                except torch.cuda.OutOfMemoryError:
                    raise ValueError(f"out of GPU memory at batch_size={cfg.batch_size} ({sampler.batch_size} per "
                                     "rank): lower --batch-size or use more GPUs") from None
                step += 1
                window_steps += 1
                pending.append((step, state.epoch, loss))
                state = LoaderState(state.epoch, batch.number + 1)
                if state.batch == sampler.batches_per_epoch():  # the epoch is done: the next step starts the next
                    state = LoaderState(state.epoch + 1, 0)
                    summary.epochs_done += 1
                if on_step is not None:
                    on_step(step, float(loss))
                if len(pending) >= cfg.log_every:
                    flush(time.perf_counter())
                if stop.name is not None or step >= limit or state.batch == 0:
                    break
                if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                    flush(time.perf_counter())
                    _save(root, cfg, byol, optimizer, augment, step, state, stats, fingerprint, rank, world, metrics)
                    last_save = time.monotonic()
            flush(time.perf_counter())
            _save(root, cfg, byol, optimizer, augment, step, state, stats, fingerprint, rank, world, metrics)
            last_save = time.monotonic()
        summary.stopped_by = stop.name
    summary.steps = step
    summary.files = [ckpt.run_file(run, n) for n in (ckpt.CONFIG, ckpt.CHECKPOINT, ckpt.ENCODER, ckpt.METRICS,
                                                      ckpt.LOSS_PLOT)]
    return summary
