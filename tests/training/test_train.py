"""Pre-training runs on the demo corpora: run folder contents, refusals, and exact resume after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from ingest.__main__ import main as ingest_main
from training.__main__ import main as training_main
from training.config import TrainConfig, read_config_file
from training.models import Encoder, ModelConfig
from training.train import pretrain


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> str:
    top = tmp_path_factory.mktemp("demo")
    assert ingest_main(["demo", "--out", str(top)]) == 0
    assert ingest_main(["shards", "--config", str(top / "corpora.toml"), "--data", str(top / "data"),
                        "--workers", "0"]) in (0, 3)  # 3: the demo's truncated file is quarantined
    return str(top / "data")


def _cfg(data: str, **overrides) -> TrainConfig:
    values = {**read_config_file("tiny"), "data": data, "diet": "all", "batch_size": 4, "epochs": 3,
              "stats_crops": 64, "log_every": 1, "deterministic": True, "workers": 0, "device": "cpu"}
    values.update(overrides)
    return TrainConfig(**values)


def test_packaged_configs_are_valid_and_paper_is_the_default():
    for name in ("tiny", "paper", "paper-v1"):
        TrainConfig(**read_config_file(name))
    paper = TrainConfig(**read_config_file("paper"))
    assert paper.model == TrainConfig().model == ModelConfig()
    assert (paper.lr, paper.batch_size, paper.epochs, paper.tau) == (1e-4, 256, 100, 0.99)
    v1 = TrainConfig(**read_config_file("paper-v1"))
    assert (v1.arch, v1.lr, v1.mixup_alpha, v1.fader) == ("v1", 3e-4, 0.4, False)


def test_a_run_writes_its_folder_and_refuses_to_overwrite(demo_data: str, tmp_path: Path):
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    summary = pretrain(_cfg(data, run="r1"))
    run = Path(data) / "models" / "r1"
    assert {p.name for p in run.iterdir()} >= {"config.json", "checkpoint.pt", "encoder.pt", "metrics.parquet",
                                               "loss.png"}
    metrics = pq.read_table(run / "metrics.parquet").to_pylist()
    assert [m["step"] for m in metrics] == list(range(1, summary.steps + 1))
    assert summary.epochs_done == 3 and summary.steps == 3 * (26 // 4)
    saved = torch.load(run / "encoder.pt", weights_only=True)
    encoder = Encoder(ModelConfig(**saved["model_config"]))
    encoder.load_state_dict(saved["encoder"])
    assert saved["diet"] == "all" and saved["stats"]["std"] > 0 and saved["front_end"]["mel_scale"] == "htk"
    full = torch.load(run / "checkpoint.pt", weights_only=True)  # a checkpoint never needs to run code
    assert full["loader"] == {"epoch": 3, "batch": 0} and full["step"] == summary.steps
    assert json.loads((run / "config.json").read_text())["config"]["run"] == "r1"
    with pytest.raises(ValueError, match="already exists.*--resume"):
        pretrain(_cfg(data, run="r1"))


def test_sigterm_then_resume_gives_the_uninterrupted_losses_bitwise(demo_data: str, tmp_path: Path):
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    reference: dict[int, float] = {}
    pretrain(_cfg(data, run="straight", epochs=5), on_step=lambda s, loss: reference.__setitem__(s, loss))

    def terminate_at_7(step: int, loss: float) -> None:
        if step == 7:  # mid-epoch (6 batches per epoch)
            os.kill(os.getpid(), signal.SIGTERM)

    first = pretrain(_cfg(data, run="cut", epochs=5), on_step=terminate_at_7)
    assert first.stopped_by == "SIGTERM" and first.steps == 7
    resumed: dict[int, float] = {}
    pretrain(_cfg(data, run="cut", epochs=5, resume=True), on_step=lambda s, loss: resumed.__setitem__(s, loss))
    assert sorted(resumed) == list(range(8, 31))
    assert [resumed[s] for s in range(8, 28)] == [reference[s] for s in range(8, 28)]  # 20 losses, bitwise


def test_resume_refuses_a_changed_diet(demo_data: str, tmp_path: Path):
    data = str(tmp_path / "data")
    shutil.copytree(demo_data, data)
    pretrain(_cfg(data, run="r", max_steps=2))
    manifest = Path(data) / "diets" / "all.json"
    manifest.write_text(manifest.read_text().replace('"all"', '"all" ', 1))
    with pytest.raises(ValueError, match="changed since"):
        pretrain(_cfg(data, run="r", resume=True))


def test_cli_errors_are_one_line(demo_data: str, capsys):
    assert training_main(["pretrain", "--data", demo_data, "--diet", "nope", "--config", "tiny"]) == 1
    assert "no diet 'nope'" in capsys.readouterr().err
    assert training_main(["pretrain", "--data", demo_data, "--config", "huge"]) == 1
    assert "not one of ['paper', 'paper-v1', 'tiny']" in capsys.readouterr().err
    assert training_main(["pretrain", "--data", demo_data, "--config", "tiny", "--lr", "nan"]) == 1
    assert "lr=nan" in (err := capsys.readouterr().err) and "finite" in err
