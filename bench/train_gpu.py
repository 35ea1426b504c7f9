"""BYOL-A training steps on a GPU: the real DALI loader vs in-memory batches, and where a step's time goes.

`paper` v2 (SPEC §2: 6.3 M parameters, batch 256, Adam 1e-4, bf16 autocast), on the WAV collection that
`bench/gpu_check.py` builds. Reported (crops/s = clips per second through the optimiser):
- in_memory: steps on a few batches already on the GPU (the model's own ceiling), for eager NCHW, channels_last
  and channels_last + torch.compile of the forward;
- dali_loader: the fastest of those fed by `dali_loader(read_workers=4)` (ranged reads on CPU, log-mel on GPU);
- loader_only: the DALI loader alone; loader_overhead = 1 - dali_loader / in_memory;
- profile: per-step milliseconds of augment, forward, backward, optimiser, EMA (CUDA events).
Run by `make gpu-check` after the front-end checks; writes `$OUT/train_gpu.json` (else bench/train_gpu.json).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path


def _rate(step, batches, steps: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        step(next(batches))
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    sync()
    return steps / (time.perf_counter() - t0)


def main() -> int:
    import torch

    from bench.loader_bench import BATCH, _repeat, _shards
    from shards.diets import load_diet
    from shards.loader import compute_stats, dali_loader
    from shards.sampler import LoaderState, Sampler
    from training.augment import Augment, AugmentConfig
    from training.byol import BYOL
    from training.models import Encoder, ModelConfig, parameter_count
    from training.step import make_optimizer, train_step

    if not torch.cuda.is_available():
        print("no GPU: nothing to measure")
        return 0
    steps = int(os.environ.get("TRAIN_STEPS", "200"))
    device = torch.device("cuda:0")
    torch.backends.cudnn.benchmark = True
    report: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": BATCH,
                    "steps": steps, "model": "paper v2", "parameters": parameter_count(Encoder(ModelConfig()))}
    sync = torch.cuda.synchronize
    memory = [torch.randn(BATCH, 1, 64, 96, device=device) for _ in range(8)]

    def make_step(variant: str):
        """A fresh model and its step function: eager NCHW, channels_last, or channels_last + torch.compile."""
        torch.manual_seed(42)
        byol = BYOL(Encoder(ModelConfig())).to(device)
        if variant != "eager":
            byol = byol.to(memory_format=torch.channels_last)
        network = torch.compile(byol) if variant == "compile" else None
        augment = Augment(AugmentConfig(), (1, 64, 96), device)
        optimizer = make_optimizer(byol, 1e-4)
        g = torch.Generator(device=device).manual_seed(42)

        def step(x):
            return train_step(byol, augment, optimizer, x, g, bf16=True, network=network)
        return step, byol, augment, optimizer, g

    rates = {}
    for variant in ("eager", "channels_last", "compile"):
        try:
            step = make_step(variant)[0]
            rates[variant] = BATCH * _rate(step, itertools.cycle(memory), steps, 30, sync)
        except Exception as err:  # noqa: BLE001 - a variant that fails to compile is a finding, not the end
            report[f"{variant}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            continue
        report[f"in_memory_crops_per_s_{variant}"] = rates[variant]
    best = max(rates, key=rates.get)
    report["in_memory_crops_per_s"], report["best_variant"] = rates[best], best

    work = Path(os.environ.get("GPU_CHECK_WORK", "bench/work/gpu"))
    data = _shards(work, "wav")
    stats = compute_stats(data, "all", crops=1024)
    base = load_diet(data, "all")
    # one epoch (one DALI pipeline) covers warm-up and the timed steps, as in a real epoch of 15,000 batches
    table = _repeat(base, (steps + 40) * BATCH // len(base) + 1)
    sampler = Sampler(len(table), BATCH, seed=42)

    def loader_batches():
        for epoch in itertools.count():
            for batch in dali_loader(table, sampler, LoaderState(epoch=epoch), stats, device_id=0, threads=4,
                                     read_workers=4):
                yield batch.x

    step, byol, augment, optimizer, g = make_step(best)
    report["dali_loader_crops_per_s"] = BATCH * _rate(step, loader_batches(), steps, 20, sync)
    report["loader_only_crops_per_s"] = BATCH * _rate(lambda x: x, loader_batches(), steps, 20, sync)
    report["loader_overhead"] = 1 - report["dali_loader_crops_per_s"] / report["in_memory_crops_per_s"]

    # where a step's time goes (CUDA events around each phase, 50 steps on in-memory batches)
    phases = ("augment", "forward", "backward", "optimizer", "ema")
    totals = dict.fromkeys(phases, 0.0)
    for x in itertools.islice(itertools.cycle(memory), 50):
        events = [torch.cuda.Event(enable_timing=True) for _ in range(len(phases) + 1)]
        events[0].record()
        v1, v2 = augment(x, g)
        events[1].record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = byol(v1, v2)
        events[2].record()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        events[3].record()
        optimizer.step()
        events[4].record()
        byol.update_target()
        events[5].record()
        sync()
        for i, name in enumerate(phases):
            totals[name] += events[i].elapsed_time(events[i + 1]) / 50
    report["profile_ms_per_step"] = {k: round(v, 3) for k, v in totals.items()}
    report["goal_10k_crops_per_s"] = report["dali_loader_crops_per_s"] >= 10_000
    report["goal_loader_overhead_le_10pct"] = report["loader_overhead"] <= 0.10
    out = Path(os.environ["OUT"]) / "train_gpu.json" if os.environ.get("OUT") else Path("bench/train_gpu.json")
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
