"""Pre-training on CPU, one process: batched augmentations vs a per-clip loop, and training steps per second.

- augment: `training.augment.Augment` (one Mixup, one grid_sample crop, one fader per batch of 256) against the
  obvious per-clip loop (a Python loop over clips: pick a partner, mix, pad the canvas, crop, F.interpolate
  bicubic, add the ramp), same shapes, same device (CPU);
- steps: crops/s of full BYOL-A steps (augment + forward + backward + Adam + EMA) for `tiny` and `paper` v2 on
  in-memory batches, and the torch loader alone on the loader bench's WAV shards: the share of a step the
  loader would take in one process is loader time / (loader time + step time).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import record
from shards.malloc import retain_freed_memory
from training.augment import Augment, AugmentConfig, post_normalise
from training.byol import BYOL
from training.config import TrainConfig, read_config_file
from training.models import Encoder
from training.step import make_optimizer, train_step

BATCH = 256


def per_clip_views(x: torch.Tensor, memory: list[torch.Tensor], cfg: AugmentConfig, rng: np.random.Generator):
    """The naive peer: the same augmentations, one clip at a time."""
    views = []
    for _ in range(2):
        for clip in x:
            if memory:
                alpha = rng.uniform(0, cfg.mixup_alpha)
                partner = memory[rng.integers(len(memory))]
                clip = torch.log((1 - alpha) * clip.exp() + alpha * partner.exp() + 1.1920929e-07)
            f, t = clip.shape[-2:]
            canvas = torch.zeros(1, f, round(t * cfg.canvas_time))
            pad = (canvas.shape[-1] - t) // 2
            canvas[..., pad:pad + t] = clip
            h = int(np.clip(round(f * rng.uniform(cfg.crop_min, cfg.crop_max)), 1, f))
            w = int(np.clip(round(t * rng.uniform(cfg.crop_min, cfg.crop_max)), 1, canvas.shape[-1]))
            i, j = rng.integers(0, f - h + 1), rng.integers(0, canvas.shape[-1] - w + 1)
            crop = F.interpolate(canvas[None, :, i:i + h, j:j + w], size=(f, t), mode="bicubic",
                                 align_corners=False)[0]
            head, tail = rng.uniform(-1, 1, 2)
            views.append(crop + torch.linspace(head, tail, t))
    for clip in x:
        memory.append(clip)
        del memory[:-cfg.mixup_memory]
    both = post_normalise(torch.stack(views))
    return both[: len(x)], both[len(x):]


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _steps_per_s(name: str, steps: int) -> float:
    cfg = TrainConfig(**read_config_file(name))
    torch.manual_seed(0)
    byol = BYOL(Encoder(cfg.model), cfg.hidden, cfg.projection, cfg.tau)
    augment = Augment(cfg.augment, (1, 64, 96))
    optimizer = make_optimizer(byol, cfg.lr)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 1, 64, 96)
    return 1.0 / _time(lambda: train_step(byol, augment, optimizer, x, g), steps)


def _augment_seconds(threads: int) -> tuple[float, float]:
    """Seconds per batch of 256 clips (two views each): ours, then the per-clip loop."""
    torch.set_num_threads(threads)
    cfg = AugmentConfig()
    x = torch.randn(BATCH, 1, 64, 96)
    batched = Augment(cfg, (1, 64, 96))
    g = torch.Generator().manual_seed(0)
    batched(x, g)  # fill the memory as the loop's is filled
    memory: list[torch.Tensor] = []
    rng = np.random.default_rng(0)
    per_clip_views(x, memory, cfg, rng)
    return _time(lambda: batched(x, g), 5), _time(lambda: per_clip_views(x, memory, cfg, rng), 2)


def run(work: Path) -> tuple[list[dict], dict]:
    from bench.loader_bench import _repeat, _shards
    from shards.diets import load_diet
    from shards.loader import torch_loader
    from shards.sampler import LoaderState, Sampler

    retain_freed_memory()  # as `pretrain` runs on a CPU: both sides of every comparison below get it
    records, augment_ms = [], {}
    for threads in (1, 2):  # one core, then the process's default on this 2-core machine
        ours, naive = _augment_seconds(threads)
        records.append(record("training", f"augment batches/s, {threads} thread(s)", 1 / ours, "per-clip loop",
                              1 / naive))
        augment_ms[f"{threads}_threads"] = {"batched": ours * 1e3, "per_clip": naive * 1e3}
    torch.set_num_threads(1)

    tiny = _steps_per_s("tiny", 5)
    paper = _steps_per_s("paper", 2)
    data = _shards(work.parent / "loader", "wav")
    table = _repeat(load_diet(data, "all"), 4)  # 768 clips: three batches of 256
    batches = iter(torch_loader(table, Sampler(len(table), BATCH, seed=0), LoaderState()))
    next(batches)  # warm-up (files opened, filterbank built)
    t0 = time.perf_counter()
    next(batches)
    next(batches)
    loader_s = (time.perf_counter() - t0) / 2  # seconds per batch of 256
    profile = {"tiny_crops_per_s": tiny * BATCH, "paper_v2_crops_per_s": paper * BATCH,
               "loader_crops_per_s_one_process": BATCH / loader_s,
               "loader_share_of_step_tiny": loader_s / (loader_s + 1 / tiny),
               "loader_share_of_step_paper": loader_s / (loader_s + 1 / paper),
               "augment_ms_per_batch_of_256": augment_ms}
    records.append(record("training", "tiny crops/s (1 thread)", tiny * BATCH, "paper v2 crops/s (1 thread)",
                          paper * BATCH))
    return records, profile
