"""The BYOL-A input stream: normalised 64x96 log-mel crops of a diet, from the torch or the DALI loader.

Both loaders take their samples, order and crops from one `Sampler` and their audio from one
`read_crop` (ranged reads), then apply the one front end; only where the spectrogram is computed differs
(scipy on CPU in loader workers; DALI's spectrogram on the GPU, or on CPU with `device_id=None`, then the
one filterbank and log by torch on the same device).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from shards import layout
from shards.diets import SampleTable, load_diet
from shards.frontend import BYOLA, CROP_SAMPLES, FrontEnd, LogMel, dali_power_spectrogram
from shards.reader import RangeReader, read_crop
from shards.sampler import LoaderState, Sampler, crop_starts
from shards.storage import Root

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "dali")
STATS_CROPS = 10_000


@dataclass(frozen=True, slots=True)
class Batch:
    number: int  # batch number within the epoch on this rank
    x: object  # torch.Tensor (B, 1, n_mels, frames), normalised when stats are given
    corpus_id: np.ndarray  # per sample, indexes SampleTable.corpora


class CropWaves:
    """Sample indices -> (B, CROP_SAMPLES) float32 waveforms, for one epoch's crops."""

    def __init__(self, table: SampleTable, sampler: Sampler, epoch: int, crop: int = CROP_SAMPLES):
        self.table, self.crop = table, crop
        self.starts = crop_starts(table.samples, sampler.crop_fractions(epoch), crop)
        self.reader = RangeReader()

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        t = self.table
        return np.stack([read_crop(self.reader, t.tars[t.tar_id[i]], t.codecs[t.codec_id[i]], int(t.offset[i]),
                                   int(t.size[i]), int(t.samples[i]), int(self.starts[i]), self.crop)
                         for i in indices])


def normalise(x, stats: dict | None):
    return x if stats is None else (x - stats["mean"]) / stats["std"]


def _torch_dataset_class():
    import torch

    class TorchCrops(torch.utils.data.IterableDataset):
        """Batches of this rank; DataLoader workers take batches round-robin (the order it yields in)."""

        def __init__(self, table, sampler, state, stats, fe):
            self.table, self.sampler, self.state, self.stats, self.fe = table, sampler, state, stats, fe

        def __iter__(self) -> Iterator[Batch]:
            info = torch.utils.data.get_worker_info()
            worker, workers = (info.id, info.num_workers) if info else (0, 1)
            waves = CropWaves(self.table, self.sampler, self.state.epoch)
            mel = LogMel(self.fe)
            for number, indices in self.sampler.batches(self.state, worker, workers):
                x = normalise(mel(waves(indices)), self.stats).unsqueeze(1)
                yield Batch(number, x, self.table.corpus_id[indices])

    return TorchCrops


def torch_loader(table: SampleTable, sampler: Sampler, state: LoaderState = LoaderState(),
                 stats: dict | None = None, workers: int = 0, fe: FrontEnd = BYOLA):
    """A torch DataLoader of `Batch`es; `workers` processes each compute their batches' log-mel on CPU."""
    import torch

    dataset = _torch_dataset_class()(table, sampler, state, stats, fe)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                       collate_fn=lambda b: b, persistent_workers=False)


def dali_device() -> int | None:
    """0 when a CUDA GPU is visible, else None (DALI's CPU-only mode)."""
    try:
        import torch

        return 0 if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None


class BatchSource:
    """DALI external-source callable: batch `info.iteration` of the plan, as crops. Picklable, so DALI's
    parallel external source can run it in `read_workers` processes (reads scale with cores)."""

    def __init__(self, table: SampleTable, sampler: Sampler, state: LoaderState):
        self.table, self.sampler, self.state = table, sampler, state
        self.plan = [indices for _, indices in sampler.batches(state)]
        self._waves: CropWaves | None = None

    def __call__(self, info) -> list[np.ndarray]:
        if info.iteration >= len(self.plan):
            raise StopIteration
        if self._waves is None:  # built in the worker process (file handles do not travel)
            self._waves = CropWaves(self.table, self.sampler, self.state.epoch)
        return list(self._waves(self.plan[info.iteration]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_waves": None}


def dali_loader(table: SampleTable, sampler: Sampler, state: LoaderState = LoaderState(),
                stats: dict | None = None, device_id: int | None = None, threads: int = 2,
                read_workers: int = 0, fe: FrontEnd = BYOLA) -> Iterator[Batch]:
    """Batches from a DALI pipeline fed by the sampler: ranged reads on CPU (in `read_workers` processes,
    0 = in the pipeline's thread), spectrogram, mel and log on `device_id` (None = CPU)."""
    from nvidia.dali import fn, pipeline_def, types

    source = BatchSource(table, sampler, state)
    parallel = {"parallel": True, "prefetch_queue_depth": 4} if read_workers else {}

    @pipeline_def(batch_size=sampler.batch_size, num_threads=threads, device_id=device_id,
                  prefetch_queue_depth=2, py_num_workers=max(read_workers, 1), py_start_method="spawn")
    def pipe():
        audio = fn.external_source(source=source, batch=True, batch_info=True, dtype=types.FLOAT, **parallel)
        if device_id is not None:
            audio = audio.gpu()
        return dali_power_spectrogram(audio, fe)

    p = pipe()
    p.build()
    log.info("DALI loader on %s, %d read workers", f"GPU {device_id}" if device_id is not None else "CPU",
             read_workers)
    import torch

    mel = LogMel(fe, device=f"cuda:{device_id}" if device_id is not None else "cpu")
    for number, indices in zip((b for b, _ in sampler.batches(state)), source.plan):
        (out,) = p.run()
        if device_id is not None:
            from nvidia.dali.plugin.pytorch import feed_ndarray

            tensor = out.as_tensor()
            power = torch.empty(tensor.shape(), dtype=torch.float32, device=f"cuda:{device_id}")
            feed_ndarray(tensor, power)
        else:
            power = torch.from_numpy(np.stack([np.array(t) for t in out]))
        yield Batch(number, normalise(mel.from_power(power), stats).unsqueeze(1), table.corpus_id[indices])


def stats_path(diet: str) -> str:
    return f"{layout.diet_manifest_path(diet)[:-len('.json')]}.stats.json"


def compute_stats(data: str, diet: str, crops: int = STATS_CROPS, seed: int = 42, fe: FrontEnd = BYOLA) -> dict:
    """Scalar mean/std of log-mel over `crops` random crops of the diet; stored beside its manifest."""
    table = load_diet(data, diet)
    rng = np.random.default_rng([seed, 10_000])
    picks = rng.integers(0, len(table), size=crops)
    starts = crop_starts(table.samples, rng.random(len(table)), CROP_SAMPLES)
    reader, mel = RangeReader(), LogMel(fe)
    total = total_sq = 0.0
    count = 0
    for chunk in np.array_split(picks, max(1, crops // 256)):
        waves = np.stack([read_crop(reader, table.tars[table.tar_id[i]], table.codecs[table.codec_id[i]],
                                    int(table.offset[i]), int(table.size[i]), int(table.samples[i]),
                                    int(starts[i]), CROP_SAMPLES) for i in chunk])
        x = mel(waves).double()
        total, total_sq, count = total + float(x.sum()), total_sq + float((x * x).sum()), count + x.numel()
    mean = total / count
    stats = {"mean": mean, "std": float(np.sqrt(max(total_sq / count - mean * mean, 1e-12))), "crops": crops,
             "seed": seed, "diet": diet, "front_end": fe.to_dict()}
    Root(data).write_bytes(stats_path(diet), json.dumps(stats, indent=1).encode())
    return stats


def load_stats(data: str, diet: str) -> dict:
    root = Root(data)
    rel = stats_path(diet)
    if not root.exists(rel):
        raise FileNotFoundError(f"{data}: no normalisation stats for diet {diet!r} ({rel}); "
                                f"compute them once with `python -m shards stats {data} --diet {diet}`")
    return json.loads(root.read_bytes(rel))
