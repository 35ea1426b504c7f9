"""Both loaders: same samples, order and crops from one sampler; same numbers; only the diet's bytes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ingest.config import Source
from ingest.engine import build_collection
from ingest.synth import nonspeech, speechlike, write_audio
from shards.diets import load_diet, write_diet
from shards.loader import compute_stats, dali_loader, load_stats, torch_loader
from shards.sampler import LoaderState, Sampler
from tests.conftest import small_config


def _corpus(folder: Path, n_speech: int, n_noise: int) -> list[Source]:
    for i in range(n_speech):
        write_audio(folder / "sp" / f"s{i:03d}.wav", speechlike(0.6 + (i % 7) * 0.25, 16000, seed=i), 16000)
    for i in range(n_noise):
        write_audio(folder / "nz" / f"n{i:03d}.wav", nonspeech(0.6 + (i % 5) * 0.3, 16000, seed=i), 16000)
    return [Source("sp", "folder", str(folder / "sp"), domain="speech"),
            Source("nz", "folder", str(folder / "nz"), domain="nonspeech")]


@pytest.fixture(scope="module", params=["wav", "flac"])
def data(request, tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp(f"loader-{request.param}")
    sources = _corpus(base / "src", 90, 30)
    out = base / "data"
    build_collection(sources, small_config(out, codec=request.param, clip_seconds=None, shard_seconds=20.0))
    for diet in ("speech", "nonspeech", "all"):
        write_diet(str(out), diet)
    return str(out)


def test_torch_batches_are_normalised_64x96_and_identical_with_workers(data):
    table = load_diet(data, "all")
    stats = compute_stats(data, "all", crops=256)
    assert load_stats(data, "all")["mean"] == stats["mean"]
    sampler = Sampler(len(table), 8, seed=1)
    inline = list(torch_loader(table, sampler, stats=stats))
    pooled = list(torch_loader(table, sampler, stats=stats, workers=2))
    assert len(inline) == 15 and inline[0].x.shape == (8, 1, 64, 96)
    assert [b.number for b in pooled] == list(range(15))
    assert all(torch.equal(a.x, b.x) for a, b in zip(inline, pooled))
    everything = torch.cat([b.x for b in inline])
    assert abs(float(everything.mean())) < 0.3 and 0.7 < float(everything.std()) < 1.3


def test_dali_cpu_loader_gives_the_torch_numbers(data):
    table = load_diet(data, "all")
    sampler = Sampler(len(table), 8, seed=2)
    t = list(torch_loader(table, sampler, state=LoaderState(epoch=1)))
    d = list(dali_loader(table, sampler, state=LoaderState(epoch=1), device_id=None))
    assert [b.number for b in d] == [b.number for b in t]
    # same crops, same numbers on every bin within 60 dB of its frame's peak: float32 FFT rounding is
    # ~1e-7 of the peak, so quieter bins (silent synthetic gaps, zero-padded tails) are rounding noise
    for a, b in zip(t, d):
        audible = a.x > a.x.amax(dim=2, keepdim=True) - np.log(1e6)
        assert audible.float().mean() > 0.5 and float((a.x - b.x).abs()[audible].max()) < 2e-4


def test_dali_parallel_reads_give_the_same_batches(data):
    table = load_diet(data, "all")
    sampler = Sampler(len(table), 8, seed=4)
    serial = list(dali_loader(table, sampler, device_id=None))
    parallel = list(dali_loader(table, sampler, device_id=None, read_workers=2))
    assert [b.number for b in parallel] == [b.number for b in serial] == list(range(15))
    assert all(torch.equal(a.x, b.x) for a, b in zip(serial, parallel))


def test_resume_mid_epoch_continues_exactly(data):
    table = load_diet(data, "all")
    sampler = Sampler(len(table), 4, seed=3)
    full = list(torch_loader(table, sampler, state=LoaderState(epoch=4)))
    rest = list(torch_loader(table, sampler, state=LoaderState(epoch=4, batch=9), workers=2))
    assert [b.number for b in rest] == list(range(9, len(full)))
    assert all(torch.equal(a.x, b.x) for a, b in zip(full[9:], rest))


def test_batches_mix_corpora_in_proportion_to_the_diet(data):
    """Each batch is a random draw from the whole diet: per-batch shares of the 75 % corpus have the
    hypergeometric mean and spread (a shard-level sampler over interleaved shards would be too uniform
    or too lumpy)."""
    table = load_diet(data, "all")
    names = np.array(table.corpora)[table.corpus_id]
    share = float(np.mean(names == "sp"))
    assert share == pytest.approx(0.75)
    batch, n = 10, len(table)
    shares = [float(np.mean(np.array(table.corpora)[b.corpus_id] == "sp"))
              for epoch in range(6) for b in torch_loader(table, Sampler(n, batch, seed=5), LoaderState(epoch=epoch))]
    expected_sd = np.sqrt(share * (1 - share) / batch * (n - batch) / (n - 1))
    assert abs(np.mean(shares) - share) < 0.02
    assert 0.6 * expected_sd < np.std(shares) < 1.4 * expected_sd


def test_datasets_pickle_for_spawned_workers(data):
    import pickle

    from shards.frontend import BYOLA
    from shards.loader import TorchCrops, _as_is

    table = load_diet(data, "all")
    dataset = TorchCrops(table, Sampler(len(table), 8), LoaderState(), None, BYOLA)
    clone = pickle.loads(pickle.dumps(dataset))
    assert [b.number for b in clone] == list(range(15)) and pickle.loads(pickle.dumps(_as_is)) is _as_is


def test_a_diet_reads_only_its_own_bytes(data):
    from shards.loader import CropWaves
    from shards.reader import MEMBER_HEAD

    speech = load_diet(data, "speech")
    assert set(speech.corpora) == {"sp"} and len(speech) == 90
    sampler = Sampler(len(speech), 10, seed=0)
    waves = CropWaves(speech, sampler, epoch=0)
    for _, indices in sampler.batches():
        waves(indices)
    if speech.codecs == ["wav"]:  # only each crop's bytes: 2 bytes per sample read
        expected = int(np.minimum(speech.frames[sampler.rank_order(0)] - waves.starts[sampler.rank_order(0)],
                                  15200).sum() * 2)
    else:  # whole FLAC members of the diet's samples, nothing else
        expected = int(speech.size[sampler.rank_order(0)].sum())
    # plus each clip's tar + WAV/FLAC headers, checked against the index on every read
    assert waves.reader.bytes_read == expected + len(sampler.rank_order(0)) * MEMBER_HEAD
