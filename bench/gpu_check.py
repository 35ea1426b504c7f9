"""`make gpu-check`: the DALI GPU pipeline, GPU parity and GPU throughput, as one JSON report.

Builds a small collection of 10-s synthetic clips (WAV and FLAC), then on GPU 0:
- parity: the DALI loader on the GPU and the torch GPU path vs the CPU front end, and DALI on the GPU vs
  DALI on the CPU, on the same crops (< 2e-4 on bins within 60 dB of a frame's peak);
- throughput: crops/s of the DALI loader on the GPU (ranged reads on CPU, mel on GPU) and of the torch
  loader with its log-mel on the GPU, for both codecs, against the CPU torch loader in the same run.
Writes `$OUT/gpu_check.json` when OUT is set (the device tool), else `bench/gpu_check.json`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _batches_per_s(make_iter, batches: int) -> float:
    it = make_iter()
    next(it)  # warm-up (pipeline build, CUDA init, first reads)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - t0)


def _errors(x, reference) -> dict:
    """Max and 99.9th-percentile |x - reference| on bins within 40 and 60 dB of their frame's peak."""
    err = (x - reference).abs()
    out = {}
    for db in (40, 60):
        mask = reference > reference.amax(dim=1, keepdim=True) - np.log(10 ** (db / 10))
        values = err[mask].numpy()
        out[f"max_abs_{db}db"] = float(values.max())
        out[f"p999_abs_{db}db"] = float(np.quantile(values, 0.999))
    return out


def main() -> int:
    import torch

    from bench.loader_bench import BATCH, _repeat, _shards
    from shards.diets import load_diet
    from shards.frontend import LogMel
    from shards.loader import CropWaves, dali_loader, torch_loader
    from shards.sampler import LoaderState, Sampler

    gpu = torch.cuda.is_available()
    report: dict = {"gpu": torch.cuda.get_device_name(0) if gpu else None, "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__, "results": {}}
    try:
        import nvidia.dali as dali

        report["dali"] = dali.__version__
    except ImportError as err:
        report["dali"] = f"not importable: {err}"
    work = Path(os.environ.get("GPU_CHECK_WORK", "bench/work/gpu"))
    for codec in ("wav", "flac"):
        data = _shards(work, codec)
        table = _repeat(load_diet(data, "all"), 64)
        sampler = Sampler(len(table), BATCH, seed=0)
        res: dict = {}
        waves = CropWaves(table, sampler, 0)
        _, first = next(sampler.batches())
        crops = waves(first)
        reference = LogMel()(crops)
        if gpu:
            via_torch = LogMel(device="cuda")(crops).cpu()
            dali_gpu = next(dali_loader(table, sampler, LoaderState(), device_id=0)).x[:, 0].cpu()
            dali_cpu = next(dali_loader(table, sampler, LoaderState(), device_id=None)).x[:, 0]
            for name, other in (("torch_gpu", via_torch), ("dali_gpu", dali_gpu), ("dali_cpu", dali_cpu)):
                res[f"{name}_vs_cpu"] = _errors(other, reference)
            res["dali_gpu_vs_dali_cpu"] = _errors(dali_gpu, dali_cpu)
            # GPU parity: every GPU path gives the CPU front end's numbers (< 2e-4 within 60 dB of a
            # frame's peak), and DALI on the GPU gives DALI-on-CPU's
            res["parity_ok"] = max(res["torch_gpu_vs_cpu"]["max_abs_60db"], res["dali_gpu_vs_cpu"]["max_abs_60db"],
                                   res["dali_gpu_vs_dali_cpu"]["max_abs_60db"]) < 2e-4
            for workers in (0, 4, 8):
                res[f"dali_gpu_crops_per_s_{workers}_read_workers"] = BATCH * _batches_per_s(
                    lambda t=table, s=sampler, w=workers: dali_loader(t, s, LoaderState(), device_id=0, threads=4,
                                                                      read_workers=w), 30)
        res["torch_cpu_crops_per_s"] = BATCH * _batches_per_s(lambda t=table, s=sampler: iter(torch_loader(t, s)), 5)
        res["torch_cpu_4workers_crops_per_s"] = BATCH * _batches_per_s(
            lambda t=table, s=sampler: iter(torch_loader(t, s, workers=4)), 20)
        t0 = time.perf_counter()
        for _, idx in list(sampler.batches())[:20]:
            waves(idx)
        res["read_only_crops_per_s_one_core"] = 20 * BATCH / (time.perf_counter() - t0)
        report["results"][codec] = res
    out = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else Path("bench/gpu_check.json")
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    ok = all(r.get("parity_ok", True) for r in report["results"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
