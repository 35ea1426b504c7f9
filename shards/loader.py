"""The BYOL-A input stream: normalised 64x96 log-mel crops of a diet, from the torch or the DALI loader.

Both loaders take their samples, order and crops from one `Sampler` and their audio from one
`crop_range`/`decode_crop` (ranged reads), then apply the one front end; only where the spectrogram is computed differs
(scipy on CPU in loader workers; DALI's spectrogram on the GPU, or on CPU with `device_id=None`, then the
one filterbank and log by torch on the same device).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shards import layout
from shards.config import DEFAULT_LOADER, LoaderConfig
from shards.diets import ClipTable, load_diet
from shards.frontend import BYOLA, CROP_SAMPLES, FrontEnd, LogMel, dali_power_spectrogram
from shards.reader import (DamagedShard, RangeReader, check_member_head, crop_range, decode_crop,
                           member_head_range)
from shards.sampler import LoaderState, Sampler, crop_starts
from shards.storage import Root

log = logging.getLogger(__name__)
STATS_EPOCH = 10_000  # the stats' crops come from their own (seed, epoch), apart from any training epoch


@dataclass(frozen=True, slots=True)
class Batch:
    number: int  # batch number within the epoch on this rank
    x: object  # torch.Tensor (B, 1, n_mels, frames), normalised when stats are given
    corpus_id: np.ndarray  # per sample, indexes ClipTable.corpora


class CropWaves:
    """Sample indices -> (B, CROP_SAMPLES) float32 waveforms, for one epoch's crops.

    Every read is checked cheaply against the diet (a damaged, zero-filled or swapped shard raises
    `DamagedShard` naming the tar and member, never yields wrong audio): each tar's size once per reader,
    and each clip's tar and WAV headers (`check_member_head`, ~0.5 KB read beside the crop)."""

    def __init__(self, table: ClipTable, sampler: Sampler, epoch: int, crop: int = CROP_SAMPLES,
                 cfg: LoaderConfig = DEFAULT_LOADER):
        self.table, self.crop = table, crop
        self.starts = crop_starts(table.frames, sampler.crop_fractions(epoch), crop)
        self.reader = RangeReader(open_files=cfg.open_files)
        self._sized: set[int] = set()

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        t = self.table
        codecs = [t.codecs[t.codec_id[i]] for i in indices]
        for tar in set(t.tar_id[indices].tolist()) - self._sized:
            self._check_size(tar)
        ranges = [(t.tars[t.tar_id[i]], *crop_range(codec, int(t.offset[i]), int(t.size[i]), int(t.frames[i]),
                                                    int(self.starts[i]), self.crop))
                  for i, codec in zip(indices, codecs)]
        heads = [(t.tars[t.tar_id[i]], *member_head_range(int(t.offset[i]))) for i in indices]
        datas = self.reader.read_many(ranges + heads)  # remote ranges of the batch are fetched concurrently
        for i, codec, head in zip(indices, codecs, datas[len(ranges):]):
            problem = check_member_head(head, codec, int(t.size[i]), int(t.frames[i]))
            if problem is not None:
                raise DamagedShard(f"{t.tars[t.tar_id[i]]}: member at byte {int(t.offset[i])}: {problem} "
                                   "(damaged shard: run `python -m shards verify`)")
        out = []
        for data, codec, i in zip(datas, codecs, indices):
            try:
                out.append(decode_crop(data, codec, int(self.starts[i]), self.crop, int(t.frames[i])))
            except DamagedShard as err:
                raise DamagedShard(f"{t.tars[t.tar_id[i]]}: member at byte {int(t.offset[i])}: {err}") from None
        return np.stack(out)

    def _check_size(self, tar: int) -> None:
        t = self.table
        if t.tar_bytes:
            size = self.reader.size(t.tars[tar])
            if size != t.tar_bytes[tar]:
                raise DamagedShard(f"{t.tars[tar]}: {size} bytes, the shard index says {t.tar_bytes[tar]} "
                                   "(truncated, replaced or swapped shard: run `python -m shards verify`)")
        self._sized.add(tar)

    def close(self) -> None:
        self.reader.close()


def normalise(x, stats: dict | None):
    return x if stats is None else (x - stats["mean"]) / stats["std"]


class TorchCrops(torch.utils.data.IterableDataset):
    """Batches of this rank; DataLoader workers take batches round-robin (the order it yields in).
    Module-level and picklable, so workers start under spawn/forkserver too."""

    def __init__(self, table: ClipTable, sampler: Sampler, state: LoaderState, stats: dict | None,
                 fe: FrontEnd, cfg: LoaderConfig = DEFAULT_LOADER):
        self.table, self.sampler, self.state, self.stats, self.fe, self.cfg = table, sampler, state, stats, fe, cfg

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        waves = CropWaves(self.table, self.sampler, self.state.epoch, cfg=self.cfg)
        mel = LogMel(self.fe)
        try:
            for number, indices in self.sampler.batches(self.state, worker, workers):
                x = normalise(mel(waves(indices)), self.stats).unsqueeze(1)
                yield Batch(number, x, self.table.corpus_id[indices])
        finally:
            waves.close()


def _as_is(batch: Batch) -> Batch:
    """The DataLoader's collate_fn: batches are already made (a named function, so it pickles)."""
    return batch


def torch_loader(table: ClipTable, sampler: Sampler, state: LoaderState = LoaderState(),
                 stats: dict | None = None, workers: int | None = None, fe: FrontEnd = BYOLA,
                 cfg: LoaderConfig = DEFAULT_LOADER):
    """A torch DataLoader of `Batch`es; `workers` (default cfg.workers) processes each compute their
    batches' log-mel on CPU."""
    workers = cfg.workers if workers is None else workers
    dataset = TorchCrops(table, sampler, state, stats, fe, cfg)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is,
                                       persistent_workers=False)


def dali_device() -> int | None:
    """This process's GPU (torch's current device: under torchrun, set it from LOCAL_RANK first), or
    None when no GPU is visible (DALI's CPU-only mode)."""
    if not torch.cuda.is_available():
        return None
    local_rank = os.environ.get("LOCAL_RANK")
    return int(local_rank) if local_rank is not None else torch.cuda.current_device()


class BatchSource:
    """DALI external-source callable: batch `info.iteration` of the plan, as crops. Picklable, so DALI's
    parallel external source can run it in `read_workers` processes (reads scale with cores)."""

    def __init__(self, table: ClipTable, sampler: Sampler, state: LoaderState, cfg: LoaderConfig = DEFAULT_LOADER):
        self.table, self.sampler, self.state, self.cfg = table, sampler, state, cfg
        self.plan = [indices for _, indices in sampler.batches(state)]
        self._waves: CropWaves | None = None

    def __call__(self, info) -> list[np.ndarray]:
        if info.iteration >= len(self.plan):
            if self._waves is not None:
                self._waves.close()
            raise StopIteration
        if self._waves is None:  # built in the worker process (file handles do not travel)
            self._waves = CropWaves(self.table, self.sampler, self.state.epoch, cfg=self.cfg)
        return list(self._waves(self.plan[info.iteration]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_waves": None}


def dali_loader(table: ClipTable, sampler: Sampler, state: LoaderState = LoaderState(),
                stats: dict | None = None, device_id: int | None | str = "auto", threads: int | None = None,
                read_workers: int | None = None, fe: FrontEnd = BYOLA,
                cfg: LoaderConfig = DEFAULT_LOADER) -> Iterator[Batch]:
    """Batches from a DALI pipeline fed by the sampler: ranged reads on CPU (in `read_workers` processes,
    0 = in the pipeline's thread), spectrogram, mel and log on `device_id` ("auto": this process's GPU
    when there is one, else the CPU; None forces the CPU). Queue depths and threads from `cfg`; the
    choice of device is logged."""
    from nvidia.dali import fn, pipeline_def, types

    if device_id == "auto":
        device_id = dali_device()

    read_workers = cfg.read_workers if read_workers is None else read_workers  # None: the config's
    threads = cfg.dali_threads if threads is None else threads
    source = BatchSource(table, sampler, state, cfg)
    parallel = {"parallel": True, "prefetch_queue_depth": cfg.dali_read_queue} if read_workers else {}

    @pipeline_def(batch_size=sampler.batch_size, num_threads=threads, device_id=device_id,
                  prefetch_queue_depth=cfg.dali_queue, py_num_workers=max(read_workers, 1), py_start_method="spawn")
    def pipe():
        audio = fn.external_source(source=source, batch=True, batch_info=True, dtype=types.FLOAT, **parallel)
        if device_id is not None:
            audio = audio.gpu()
        return dali_power_spectrogram(audio, fe)

    p = pipe()
    p.build()
    log.info("DALI loader on %s, %d read workers", f"GPU {device_id}" if device_id is not None else "CPU",
             read_workers)
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
    return layout.diet_stats_path(diet)


def compute_stats(data: str, diet: str, cfg: LoaderConfig = DEFAULT_LOADER, fe: FrontEnd = BYOLA,
                  crops: int | None = None) -> dict:
    """Scalar mean/std of log-mel over `crops` (default cfg.stats_crops) random crops of the diet, seeded
    by `cfg.seed`; stored beside its manifest."""
    crops, seed = cfg.stats_crops if crops is None else crops, cfg.seed
    if crops < 1:
        raise ValueError(f"crops={crops}: expected 1 or more")
    table = load_diet(data, diet, require_verified=cfg.require_verified)
    rng = np.random.default_rng([seed, STATS_EPOCH])
    picks = rng.integers(0, len(table), size=crops)
    waves = CropWaves(table, Sampler(len(table), 1, seed=seed), epoch=STATS_EPOCH, cfg=cfg)  # own crop positions
    mel = LogMel(fe)
    total = total_sq = 0.0
    count = 0
    try:
        for chunk in np.array_split(picks, max(1, crops // 256)):
            x = mel(waves(chunk)).double()
            total, total_sq, count = total + float(x.sum()), total_sq + float((x * x).sum()), count + x.numel()
    finally:
        waves.close()
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
