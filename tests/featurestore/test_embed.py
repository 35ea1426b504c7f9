"""`featurestore embed`: embeddings equal a direct computation (the shard member decoded by soundfile, the
BYOL-A log-mel, the model's stats, training.models.embed); re-runs skip; crashed runs resume; stats come
from the run, the flags, a diet or the dataset's train split, and are part of the fingerprint."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from featurestore import embed as embed_mod
from featurestore import tables
from featurestore.__main__ import main as store_main
from featurestore.config import EmbedConfig
from featurestore.embed import embed
from featurestore.models import ModelSpec, load
from shards.frontend import BYOLA, LogMel
from shards.storage import Root
from tests.conftest import build_small_collection
from tests.featurestore.conftest import FILE_DATASETS, TINY, TINY_NAME, copy_of
from training.config import TrainConfig, read_config_file
from training.models import Encoder, ModelConfig
from training.models import embed as model_embed
from training.train import pretrain

TINY_WIDTH = 8 * (64 >> 2) + 64  # the tiny config: 8 channels x 16 mel rows after two pools + MLP 64


def members(data: Path, dataset: str) -> dict[str, np.ndarray]:
    """Each clip decoded from its tar member with soundfile, by key (independent of featurestore.audio)."""
    out = {}
    for row in pq.read_table(data / "catalog" / dataset / "clips").to_pylist():
        with tarfile.open(data / "shards" / dataset / f"{row['shard']}.tar") as tar:
            wave, _ = sf.read(io.BytesIO(tar.extractfile(f"{row['key']}.{row['codec']}").read()), dtype="float32")
        out[row["key"]] = wave
    return out


def tiny_random_encoder() -> Encoder:
    torch.manual_seed(0)  # featurestore.models.RANDOM_SEED: the random-init control is reproducible
    return Encoder(ModelConfig(arch="v2", channels=8, d=64))


def direct(encoder: Encoder, wave: np.ndarray, mean: float, std: float) -> np.ndarray:
    """SPEC §3 by hand: the whole file (zero-padded to 1 s), log-mel, normalised, max + mean over frames."""
    if len(wave) < 16_000:
        wave = np.pad(wave, (0, 16_000 - len(wave)))
    x = LogMel(BYOLA)(wave[None].astype(np.float32))
    return model_embed(encoder, ((x - mean) / std).unsqueeze(1))[0].numpy()


def stored_vectors(data: Path, model: str, dataset: str) -> dict[str, np.ndarray]:
    table = tables.read(Root(data), "embeddings", ["key", "embedding"], model=model, dataset=dataset)
    flat = table["embedding"].combine_chunks()
    matrix = flat.values.to_numpy().reshape(len(flat), flat.type.list_size)
    return dict(zip(table["key"].to_pylist(), matrix))


def train_stats(data: Path, dataset: str) -> tuple[float, float]:
    """Mean and std of the log-mel of every train item (whole files, unpadded), in float64."""
    items = tables.read(Root(data), "items", ["clip", "split"], dataset=dataset)
    waves = members(data, dataset)
    values = np.concatenate([LogMel(BYOLA)(waves[k][None]).numpy().ravel().astype(np.float64)
                             for k, s in zip(items["clip"].to_pylist(), items["split"].to_pylist()) if s == "train"])
    return float(values.mean()), float(values.std())


def all_files(data: Path) -> dict[str, int]:
    return {str(p.relative_to(data)): p.stat().st_mtime_ns for p in sorted((data / "store").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dataset", FILE_DATASETS)
def test_tiny_embeddings_equal_a_direct_computation(embedded_set, dataset):
    stats = json.loads((embedded_set / "store" / "stats" / f"{dataset}.json").read_text())
    assert (stats["mean"], stats["std"]) == pytest.approx(train_stats(embedded_set, dataset), rel=1e-6)
    encoder, waves = tiny_random_encoder(), members(embedded_set, dataset)
    got = stored_vectors(embedded_set, TINY_NAME, dataset)
    items = tables.read(Root(embedded_set), "items", ["key"], dataset=dataset)["key"].to_pylist()
    assert sorted(got) == sorted(items)
    for key, vector in got.items():
        assert vector.shape == (TINY_WIDTH,)
        expected = direct(encoder, waves[key], stats["mean"], stats["std"])
        np.testing.assert_allclose(vector, expected, atol=1e-5, rtol=1e-5)
    lineage = tables.manifest(Root(embedded_set), "embeddings", {"model": TINY_NAME, "dataset": dataset})["lineage"]
    assert lineage["stats"] == {"mean": stats["mean"], "std": stats["std"], "source": f"train:{dataset}"}
    assert (lineage["model_id"], lineage["width"], lineage["pooling"]) == (TINY, TINY_WIDTH, "max+mean")
    assert lineage["front_end"] == BYOLA.to_dict()


@pytest.mark.slow
def test_ava_windows_are_embedded_from_their_span_of_the_movie(transfer_set, tmp_path):
    data = copy_of(transfer_set.data, tmp_path / "data")
    (result,) = embed(EmbedConfig(data=str(data), models=(TINY,), datasets=("ava",), device="cpu",
                                  norm_mean=-5.0, norm_std=3.0, pooling="windows"))  # the per-window reference
    items = tables.read(Root(data), "items", dataset="ava").to_pylist()
    assert result.rows == len(items) == 808
    got, movies, encoder = stored_vectors(data, TINY_NAME, "ava"), members(data, "ava"), tiny_random_encoder()
    assert sorted(got) == sorted(i["key"] for i in items)
    for item in items[::17]:  # every movie, both labels, windows at every offset parity
        start = item["start_ms"] * 16
        wave = movies[item["clip"]][start: start + 16_000]
        np.testing.assert_allclose(got[item["key"]], direct(encoder, wave, -5.0, 3.0), atol=1e-5, rtol=1e-5)


def test_the_model_sha_names_the_stats(embedded_set):
    root = Root(embedded_set)
    shas = {d: tables.manifest(root, "embeddings", {"model": TINY_NAME, "dataset": d})["lineage"]["model_sha"]
            for d in FILE_DATASETS}
    assert len(set(shas.values())) == 3  # same weights, each dataset's own stats: three fingerprints
    rows = tables.read(root, "embeddings", ["model", "model_sha", "dataset"], model=TINY_NAME)
    for dataset, sha in shas.items():
        mine = rows.filter(pc.equal(rows["dataset"], dataset))
        assert set(mine["model_sha"].to_pylist()) == {sha} and set(mine["model"].to_pylist()) == {TINY_NAME}


def test_a_re_run_is_skipped_and_rewrites_nothing(embedded_set, tmp_path):
    data = copy_of(embedded_set, tmp_path / "data")
    before = all_files(data)
    results = embed(EmbedConfig(data=str(data), models=(TINY,), datasets=FILE_DATASETS, device="cpu"))
    assert [(r.dataset, r.skipped) for r in results] == [(d, True) for d in FILE_DATASETS]
    assert [r.rows for r in results] == [7, 6, 11]
    assert all_files(data) == before


def test_a_crashed_run_resumes_and_keeps_the_part_it_wrote(transfer_set, embedded_set, tmp_path, monkeypatch):
    data = copy_of(transfer_set.data, tmp_path / "data")
    cfg = EmbedConfig(data=str(data), models=(TINY,), datasets=("esc50",), device="cpu")
    real, calls, crash = embed_mod.embed_job, [], [True]

    def crash_on_second(job):
        calls.append(job.shard)
        if crash[0] and len(calls) == 2:
            raise RuntimeError("killed")
        return real(job)

    monkeypatch.setattr(embed_mod, "embed_job", crash_on_second)
    with pytest.raises(RuntimeError, match="killed"):
        embed(cfg)
    folder = data / "store" / "embeddings" / f"model={TINY_NAME}" / "dataset=esc50"
    (kept,) = folder.glob("*.parquet")
    assert not (folder / "_manifest.json").exists() and kept.name.endswith(f"-{calls[0]}.parquet")
    stamp, content = kept.stat().st_mtime_ns, kept.read_bytes()
    calls.clear()
    crash[0] = False
    (result,) = embed(cfg)
    shards = sorted(p.stem for p in (data / "shards" / "esc50").glob("*.tar"))
    assert len(shards) >= 3 and not result.skipped and result.rows == 7
    assert sorted(calls) == [s for s in shards if not kept.name.endswith(f"-{s}.parquet")]  # the rest only
    assert kept.stat().st_mtime_ns == stamp and kept.read_bytes() == content
    manifest = tables.manifest(Root(data), "embeddings", {"model": TINY_NAME, "dataset": "esc50"})
    assert sorted(f["name"] for f in manifest["files"]) == sorted(p.name for p in folder.glob("*.parquet"))
    assert len(manifest["files"]) == len(shards)
    resumed, straight = stored_vectors(data, TINY_NAME, "esc50"), stored_vectors(embedded_set, TINY_NAME, "esc50")
    assert resumed.keys() == straight.keys() and all(np.array_equal(resumed[k], straight[k]) for k in resumed)


@pytest.fixture(scope="module")
def with_run(embedded_set, tmp_path_factory) -> Path:
    """The embedded set plus a pre-training collection, its `all` diet (with stats) and a 2-step tiny run r1."""
    base = tmp_path_factory.mktemp("withrun")
    data = copy_of(embedded_set, base / "data")
    small = build_small_collection(base / "pre")  # a pretrain collection + diet `all`, in another root
    for sub in ("shards/pretrain", "catalog/pretrain", "diets"):
        copy_of(small / sub, data / sub)
    cfg = TrainConfig(**{**read_config_file("tiny"), "data": str(data), "diet": "all", "run": "r1", "batch_size": 4,
                         "epochs": 1, "max_steps": 2, "stats_crops": 64, "deterministic": True, "workers": 0,
                         "device": "cpu"})
    assert pretrain(cfg).steps == 2
    return data


def test_flags_override_the_train_stats_and_change_the_fingerprint(embedded_set, tmp_path):
    data = copy_of(embedded_set, tmp_path / "data")
    part = {"model": TINY_NAME, "dataset": "esc50"}
    default_sha = tables.manifest(Root(data), "embeddings", part)["lineage"]["model_sha"]
    flags = EmbedConfig(data=str(data), models=(TINY,), datasets=("esc50",), device="cpu", norm_mean=-6.0, norm_std=4.0)
    with pytest.raises(ValueError) as err:  # another fingerprint under the same model name
        embed(flags)
    assert "from another model" in str(err.value) and "--replace" in str(err.value) and "\n" not in str(err.value)
    (flagged,) = embed(EmbedConfig(**{**flags.to_dict(), "replace": True}))
    lineage = tables.manifest(Root(data), "embeddings", part)["lineage"]
    assert lineage["stats"] == {"mean": -6.0, "std": 4.0, "source": "flags"} and flagged.model_sha != default_sha
    encoder, waves = tiny_random_encoder(), members(data, "esc50")
    for key, vector in stored_vectors(data, TINY_NAME, "esc50").items():
        np.testing.assert_allclose(vector, direct(encoder, waves[key], -6.0, 4.0), atol=1e-5, rtol=1e-5)
    shards = len(list((data / "shards" / "esc50").glob("*.tar")))
    folder = data / "store" / "embeddings" / f"model={TINY_NAME}" / "dataset=esc50"
    assert len(list(folder.glob("*.parquet"))) == shards  # the replaced fingerprint's parts are deleted


@pytest.mark.slow
def test_a_diets_stats_override_the_train_stats(with_run, tmp_path):
    data = copy_of(with_run, tmp_path / "data")
    part = {"model": TINY_NAME, "dataset": "esc50"}
    default_sha = tables.manifest(Root(data), "embeddings", part)["lineage"]["model_sha"]
    diet = json.loads((data / "diets" / "all.stats.json").read_text())
    (dieted,) = embed(EmbedConfig(data=str(data), models=(TINY,), datasets=("esc50",), device="cpu",
                                  stats_diet="all", replace=True))
    lineage = tables.manifest(Root(data), "embeddings", part)["lineage"]
    assert lineage["stats"] == {"mean": diet["mean"], "std": diet["std"], "source": "diet:all"}
    assert dieted.model_sha != default_sha
    encoder, waves = tiny_random_encoder(), members(data, "esc50")
    for key, vector in stored_vectors(data, TINY_NAME, "esc50").items():
        np.testing.assert_allclose(vector, direct(encoder, waves[key], diet["mean"], diet["std"]), atol=1e-5, rtol=1e-5)


def run_encoder(data: Path) -> tuple[Encoder, float, float]:
    state = torch.load(data / "models" / "r1" / "encoder.pt", weights_only=True)
    encoder = Encoder(ModelConfig.from_dict(state["model_config"]))
    encoder.load_state_dict(state["encoder"])
    return encoder, state["stats"]["mean"], state["stats"]["std"]


@pytest.mark.slow
def test_a_run_is_embedded_with_its_own_stats(with_run, tmp_path):
    data = copy_of(with_run, tmp_path / "data")
    (result,) = embed(EmbedConfig(data=str(data), models=("run:r1",), datasets=("esc50",), device="cpu"))
    encoder, mean, std = run_encoder(data)
    assert mean != json.loads((data / "store" / "stats" / "esc50.json").read_text())["mean"]
    assert result.model == "run-r1" and result.rows == 7
    lineage = tables.manifest(Root(data), "embeddings", {"model": "run-r1", "dataset": "esc50"})["lineage"]
    assert lineage["width"] == TINY_WIDTH and lineage["model_id"] == "run:r1"
    waves = members(data, "esc50")
    for key, vector in stored_vectors(data, "run-r1", "esc50").items():
        np.testing.assert_allclose(vector, direct(encoder, waves[key], mean, std), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_a_runs_lineage_records_its_stats(with_run, tmp_path):
    data = copy_of(with_run, tmp_path / "data")
    embed(EmbedConfig(data=str(data), models=("run:r1",), datasets=("esc50",), device="cpu"))
    _, mean, std = run_encoder(data)
    lineage = tables.manifest(Root(data), "embeddings", {"model": "run-r1", "dataset": "esc50"})["lineage"]
    assert lineage["stats"] == {"mean": mean, "std": std, "source": "run:r1"}


@pytest.mark.parametrize("model_id, where", [
    ("yamnet:{dir}/yamnet.pt", "put yamnet.pt (convert the official yamnet.h5 with `python -m featurestore "
                               "convert-yamnet yamnet.h5 yamnet.pt`) there"),
    ("wavlm-base-plus:{dir}/WavLM-Base+.pt", "put WavLM-Base+.pt (or the Hugging Face pytorch_model.bin) there"),
    ("byola-v1:{dir}/AudioNTT2020-BYOLA-64x96d2048.pth", "put the BYOL-A v1 .pth file there"),
])
def test_a_missing_weights_file_is_one_line_saying_where_to_put_it(embedded_set, tmp_path, model_id, where):
    model_id = model_id.format(dir=tmp_path)
    kind, path = model_id.split(":", 1)
    with pytest.raises(FileNotFoundError) as err:
        load(Root(embedded_set), ModelSpec(model_id, -5.0, 3.0))
    assert str(err.value) == f"{kind}: no file {path!r}; weights are never downloaded: {where}"


def test_a_missing_weights_file_is_refused_before_any_work(embedded_set, tmp_path, monkeypatch):
    """Every model is checked before the first one runs: the train stats of a dataset (minutes at scale)
    and the embeddings of the models before it are never computed for a run that will fail."""
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the missing file was found")

    monkeypatch.setattr(embed_mod, "dataset_stats", no_work)
    monkeypatch.setattr(embed_mod, "embed_dataset", no_work)
    missing = f"byola-v1:{tmp_path}/v1.pth"
    cfg = EmbedConfig(data=embedded_set, models=("byola-v2:random", missing), datasets=("esc50",), device="cpu")
    with pytest.raises(FileNotFoundError, match=f"byola-v1: no file '{tmp_path}/v1.pth'"):
        embed(cfg)
    with pytest.raises(ValueError, match="byola-v2 takes 'random'"):
        embed(EmbedConfig(data=embedded_set, models=("byola-v2:mine.pth",), datasets=("esc50",), device="cpu"))


def cli_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert store_main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_cli_user_errors_are_one_line_with_exit_code_1(embedded_set, tmp_path, capsys):
    data = copy_of(embedded_set, tmp_path / "data")
    before = all_files(data)
    base = ["embed", "--data", str(data), "--device", "cpu"]
    line = cli_error(capsys, base + ["--model", TINY, "--dataset", "esc-50"])
    assert line.startswith("error: ") and "no transfer dataset 'esc-50'" in line
    assert "expected KIND:ARG" in cli_error(capsys, base + ["--model", "byol:random"])
    assert "expected KIND:ARG" in cli_error(capsys, base + ["--model", "byola-v2"])
    assert "byola-v2 takes 'random'" in cli_error(capsys, base + ["--model", "byola-v2:/x.pth", "--dataset", "esc50"])
    assert "config 'huge'" in cli_error(capsys, base + ["--model", "byola-v2:random:huge", "--dataset", "esc50"])
    assert "no file" in cli_error(capsys, base + ["--model", f"yamnet:{tmp_path}/y.pt", "--dataset", "esc50"])
    assert "no model" in cli_error(capsys, base)
    assert "give both --norm-mean and --norm-std" in cli_error(capsys, base + ["--model", TINY, "--norm-mean", "1"])
    line = cli_error(capsys, base + ["--model", "run:nope", "--dataset", "esc50"])
    assert "no run 'nope' (models/nope/encoder.pt is missing; runs here: none)" in line
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in cli_error(capsys, ["embed", "--data", str(data), "--device", "cuda", "--model", TINY])
    assert all_files(data) == before  # nothing written by a refused command


def test_a_missing_run_is_not_told_to_resume(embedded_set):
    with pytest.raises(FileNotFoundError) as err:
        load(Root(embedded_set), ModelSpec("run:nope"))
    assert "resume" not in str(err.value)


def test_a_model_without_stats_is_refused_by_load(embedded_set):
    with pytest.raises(ValueError, match="carries no normalisation stats: give --norm-mean/--norm-std or --stats-diet"):
        load(Root(embedded_set), ModelSpec(TINY))
