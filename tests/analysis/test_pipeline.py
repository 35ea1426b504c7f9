"""`make demo`'s path, reduced: demo corpora -> shards -> a 2-step tiny run -> embed (trained and random-init)
-> describe -> probe -> RSA -> t-SNE -> report, through each stage's CLI as the Makefile calls it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from analysis.__main__ import main as analysis_main
from featurestore import tables
from featurestore.__main__ import main as store_main
from ingest.__main__ import main as ingest_main
from shards.storage import Root
from training.__main__ import main as training_main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> str:
    top = tmp_path_factory.mktemp("demo")
    data = str(top / "data")
    assert ingest_main(["demo", "--out", str(top)]) == 0
    assert ingest_main(["shards", "--config", str(top / "corpora.toml"), "--data", data, "--workers", "0"]) in (0, 3)
    assert ingest_main(["transfer", "--dataset", f"esc50=esc50:{top / 'ESC-50-master'}", "--data", data,
                        "--workers", "0"]) in (0, 3)
    assert training_main(["pretrain", "--data", data, "--diet", "all", "--config", "tiny", "--batch-size", "8",
                          "--max-steps", "2", "--run", "all-tiny"]) == 0
    assert store_main(["embed", "--data", data, "--model", "run:all-tiny", "--model", "byola-v2:random:tiny"]) == 0
    assert store_main(["describe", "--data", data]) == 0
    assert analysis_main(["probe", "--data", data, "--seeds", "2", "--resamples", "200"]) == 0
    assert analysis_main(["rsa", "--data", data, "--permutations", "99"]) == 0
    assert analysis_main(["tsne", "--data", data]) == 0
    assert analysis_main(["report", "--data", data, "--name", "demo", "--banner", "Synthetic demo, not the study"]) == 0
    return data


def test_every_stage_lands_its_table(demo_root: str):
    root = Root(demo_root)
    assert tables.rows(root, "items", dataset="esc50") == 50  # the demo's 5 classes x 5 folds x 2 takes
    assert {p["model"] for p in tables.partitions(root, "embeddings")} == {"run-all-tiny", "byola-v2-random-tiny"}
    assert tables.rows(root, "embeddings", model="run-all-tiny") == 50
    assert tables.rows(root, "descriptors") == 10  # the RSA items: fold 4 (valid) = 10 files
    probes = tables.read(root, "probes")
    assert sorted(set(zip(probes["model"].to_pylist(), probes["seed"].to_pylist()))) == [
        ("byola-v2-random-tiny", 0), ("byola-v2-random-tiny", 1), ("run-all-tiny", 0), ("run-all-tiny", 1)]
    assert pc.all(pc.equal(probes["task"], "esc50")).as_py()
    summary = tables.read(root, "probe_summary")
    for row in summary.to_pylist():
        assert row["ci_low"] <= row["mean"] + 0.2 and 0 <= row["ci_low"] <= row["ci_high"] <= 1
    assert tables.rows(root, "probe_pairs") == 1
    rsa = tables.read(root, "rsa")
    assert set(rsa["model"].to_pylist()) == {"run-all-tiny", "byola-v2-random-tiny"}
    assert "pitch_midi" not in rsa["descriptor"].to_pylist()  # pitch only for NSynth (SPEC §4)
    assert tables.rows(root, "tsne") == 10


def test_probe_scores_are_the_predictions(demo_root: str):
    """The stored test score of every seed equals the accuracy recomputed from its stored predictions."""
    root = Root(demo_root)
    probes = tables.read(root, "probes").to_pylist()
    preds = tables.read(root, "predictions")
    for row in probes:
        mine = preds.filter(pc.and_(pc.equal(preds["model"], row["model"]), pc.equal(preds["seed"], row["seed"])))
        assert mine.num_rows == 10  # fold 5 (test)
        assert row["test_score"] == pytest.approx(sum(mine["correct"].to_pylist()) / mine.num_rows, abs=1e-12)
        assert mine["correct"].to_pylist() == [p == t for p, t in zip(mine["prediction"].to_pylist(),
                                                                       mine["label"].to_pylist())]


def test_the_report_has_every_figure_and_names_every_model(demo_root: str):
    folder = Path(demo_root) / "reports" / "demo"
    html = (folder / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == 4
    assert "Synthetic demo, not the study" in html
    root = Root(demo_root)
    for part in tables.partitions(root, "embeddings"):
        assert tables.manifest(root, "embeddings", part)["lineage"]["model_sha"] in html
    for name in ("fig1_probes.png", "fig2_tsne.png", "fig3_rsa.png", "fig4_models.png", "report.md"):
        assert (folder / name).stat().st_size > 0


def test_a_rerun_of_embed_skips_what_is_stored(demo_root: str, capsys):
    manifest = Path(demo_root) / "store/embeddings/model=run-all-tiny/dataset=esc50/_manifest.json"
    before = json.loads(manifest.read_text())
    assert store_main(["embed", "--data", demo_root, "--model", "run:all-tiny"]) == 0
    assert "already stored" in capsys.readouterr().err
    assert json.loads(manifest.read_text()) == before


def test_user_mistakes_are_one_line(demo_root: str, capsys):
    assert analysis_main(["probe", "--data", demo_root, "--models", "no-such-model"]) == 1
    assert analysis_main(["rsa", "--data", demo_root, "--test", "pearson"]) == 1
    assert store_main(["sql", "--data", demo_root, "drop view items"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.startswith("error:")]) == 3
