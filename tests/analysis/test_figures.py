"""Figures 1-4 on small synthetic tables built to the docs/store.md schemas: the right number of bars, cells
and panels, the display order, the flags, and byte-identical PNGs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from matplotlib.image import AxesImage

from analysis import figures

MODELS = ("yamnet", "byola-v2-random", "run-all")  # deliberately not in display order
TASKS = (("ava", "ap"), ("esc50", "accuracy"), ("vctk", "accuracy"))
DESCRIPTORS = ("rms_db", "erb_low", "erb_mid", "erb_600_1200", "erb_high", "centroid", "flux", "band_var_low",
               "band_var_high", "pitch_midi")
RSA_DATASETS = ("esc50", "nsynth")
SHA = {m: f"{i + 1:x}" * 64 for i, m in enumerate(MODELS)}


def tables(models: tuple[str, ...] = MODELS) -> dict[str, pa.Table]:
    """Every analysis table for `models`, deterministic values in range (scores 0-1, r_s -0.2-0.9)."""
    rng = np.random.default_rng(7)
    created = "2026-12-01T10:00:00Z"
    probes, summary, pairs = [], [], []
    for task, metric in TASKS:
        for m in models:
            scores = np.clip(rng.uniform(0.3, 0.9) + rng.normal(0, 0.02, 3), 0, 1)
            for seed, s in enumerate(scores):
                probes.append({"model": m, "model_sha": SHA.get(m, "0" * 64), "task": task, "dataset": task,
                               "seed": seed, "protocol": "linear", "metric": metric, "valid_score": float(s),
                               "test_score": float(s), "best_epoch": 10, "epochs": 50, "config": "{}",
                               "created": created})
            mean = float(scores.mean())
            summary.append({"model": m, "task": task, "metric": metric, "mean": mean, "sd": float(scores.std(ddof=1)),
                            "n_seeds": 3, "ci_low": mean - 0.04, "ci_high": mean + 0.03, "resamples": 1000})
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                diff = float(rng.uniform(-0.1, 0.2))
                pairs.append({"task": task, "model_a": a, "model_b": b, "diff": diff, "ci_low": diff - 0.05,
                              "ci_high": diff + 0.05, "resamples": 1000})
    rsa, rsa_models = [], []
    for d in RSA_DATASETS:
        for m in models:
            for desc in DESCRIPTORS:
                if desc == "pitch_midi" and d != "nsynth":
                    continue
                r = float(rng.uniform(-0.2, 0.9))
                q = float(rng.uniform(0, 0.2))
                rsa.append({"model": m, "dataset": d, "descriptor": desc, "n_items": 200, "r_s": r, "p": q / 2,
                            "q": q, "significant": bool(r > 0 and q < 0.05), "test": "mantel"})
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                rsa_models.append({"dataset": d, "model_a": a, "model_b": b, "r_s": float(rng.uniform(0.5, 0.95)),
                                   "p": 0.001, "q": 0.002})
    rsa_summary = [{"model": m, "descriptor": desc, "mean_r_s": float(rng.uniform(0, 0.8)),
                    "n_datasets": 1 if desc == "pitch_midi" else 2,
                    "flagged": "NSynth only" if desc == "pitch_midi" else None}
                   for m in models for desc in DESCRIPTORS]
    tsne = []
    for d, how in (("esc50", "class"), ("nsynth", "pitch"), ("vctk", "gender")):
        for k in range(60):
            value = {"class": None, "pitch": str(40 + k % 40), "gender": "FM"[k % 2]}[how]
            tsne.append({"dataset": d, "key": f"{d}-{k:03d}", "model": models[-1], "x": float(rng.normal()),
                         "y": float(rng.normal()), "label": f"c{k % 5}", "colour_by": how, "value": value})
    schema_tsne = pa.schema([("dataset", pa.string()), ("key", pa.string()), ("model", pa.string()),
                             ("x", pa.float64()), ("y", pa.float64()), ("label", pa.string()),
                             ("colour_by", pa.string()), ("value", pa.string())])
    return {"probes": pa.Table.from_pylist(probes), "probe_summary": pa.Table.from_pylist(summary),
            "probe_pairs": pa.Table.from_pylist(pairs), "rsa": pa.Table.from_pylist(rsa),
            "rsa_models": pa.Table.from_pylist(rsa_models),
            "rsa_summary": pa.Table.from_pylist(rsa_summary, schema=pa.schema(
                [("model", pa.string()), ("descriptor", pa.string()), ("mean_r_s", pa.float64()),
                 ("n_datasets", pa.int64()), ("flagged", pa.string())])),
            "tsne": pa.Table.from_pylist(tsne, schema=schema_tsne)}


@pytest.fixture(scope="module")
def t() -> dict[str, pa.Table]:
    return tables()


def test_model_order_trained_then_random_then_baselines():
    names = ["yamnet", "byola-v2-random", "run-speech", "wavlm-base-plus", "byola-v1-default", "run-all",
             "byola-v1-random", "byola-v2-random-tiny"]
    assert figures.model_order(names) == ["run-all", "run-speech", "byola-v1-default", "byola-v1-random",
                                          "byola-v2-random", "byola-v2-random-tiny", "wavlm-base-plus", "yamnet"]
    assert figures.model_kind("byola-v2-random-tiny") == "random"  # the tiny twin is random-init too


def test_task_domains_by_prefix():
    got = {t: figures.task_domain(t) for t in ("vctk", "speech_commands", "esc50", "urbansound8k", "nsynth", "ava",
                                               "ava_limited", "gtzan")}
    assert got == {"vctk": "speech", "speech_commands": "speech", "esc50": "nonspeech", "urbansound8k": "nonspeech",
                   "nsynth": "nonspeech", "ava": "mixed", "ava_limited": "mixed", "gtzan": "other"}


def test_fig1_one_bar_per_model_and_task_grouped_by_domain(t):
    fig = figures.fig_probe_scores(t["probe_summary"])
    axes = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title() for ax in axes] == ["speech", "nonspeech", "mixed"]
    assert [len(ax.patches) for ax in axes] == [3, 3, 3]
    # bars left to right within a task: trained, random-init (hatched, lighter), baseline
    heights = {(round(p.get_x(), 3)): p for p in axes[1].patches}
    ordered = [heights[x] for x in sorted(heights)]
    summary = pl.from_arrow(t["probe_summary"]).filter(pl.col("task") == "esc50")
    expected = [summary.filter(pl.col("model") == m)["mean"].item() for m in ("run-all", "byola-v2-random", "yamnet")]
    assert [p.get_height() for p in ordered] == pytest.approx(expected)
    assert [p.get_hatch() for p in ordered] == [None, "///", None]
    assert ordered[1].get_facecolor()[:3] > ordered[0].get_facecolor()[:3] or \
        np.mean(ordered[1].get_facecolor()[:3]) > np.mean(ordered[0].get_facecolor()[:3])
    assert "AP" in axes[2].get_xticklabels()[0].get_text()
    assert "bootstrap CI" in fig.get_suptitle()
    assert "SD over seeds" in figures.fig_probe_scores(t["probe_summary"], error="sd").get_suptitle()


def test_fig1_accepts_polars_and_refuses_bad_input(t):
    df = pl.from_arrow(t["probe_summary"])
    assert sum(len(ax.patches) for ax in figures.fig_probe_scores(df).axes) == 9
    with pytest.raises(ValueError, match="error='iqr'"):
        figures.fig_probe_scores(df, error="iqr")
    with pytest.raises(ValueError, match=r"missing columns \['sd'\]"):
        figures.fig_probe_scores(df.drop("sd"))
    with pytest.raises(ValueError, match="more than one row"):
        figures.fig_probe_scores(pl.concat([df, df.head(1)]))


def test_fig2_one_panel_per_dataset_pitch_colourbar(t):
    fig = figures.fig_tsne(t["tsne"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(" — ")[0] for ax in panels] == ["esc50", "nsynth", "vctk"]
    assert [len(ax.collections[0].get_offsets()) for ax in panels] == [60, 60, 60]
    colourbars = [ax for ax in fig.axes if ax.get_ylabel() == "pitch (MIDI note number)"]
    assert len(colourbars) == 1
    legends = {ax.get_title().split(" — ")[0]: [x.get_text() for x in ax.get_legend().get_texts()]
               for ax in panels if ax.get_legend()}
    assert legends == {"esc50": ["c0", "c1", "c2", "c3", "c4"], "vctk": ["F", "M"]}


def test_fig2_label_is_class_and_unknown_colouring_refused(t):
    points = pl.from_arrow(t["tsne"]).filter(pl.col("dataset") == "esc50")
    fig = figures.fig_tsne(points.with_columns(colour_by=pl.lit("label")))
    assert [x.get_text() for x in fig.axes[0].get_legend().get_texts()] == ["c0", "c1", "c2", "c3", "c4"]
    with pytest.raises(ValueError, match=r"colour_by values \['speaker'\]"):
        figures.fig_tsne(points.with_columns(colour_by=pl.lit("speaker")))


def test_fig3_heatmap_models_by_descriptors_pitch_flagged(t):
    fig = figures.fig_rsa_descriptors(t["rsa_summary"])
    ax = fig.axes[0]
    image = next(a for a in ax.get_children() if isinstance(a, AxesImage))
    assert image.get_array().shape == (3, 10)
    assert [x.get_text() for x in ax.get_yticklabels()] == ["run-all", "byola-v2-random", "yamnet"]
    labels = [x.get_text() for x in ax.get_xticklabels()]
    assert labels[-1] == "pitch_midi †" and sum("†" in x for x in labels) == 1
    assert "NSynth only" in fig.get_supxlabel()
    summary = pl.from_arrow(t["rsa_summary"])
    v = summary.filter((pl.col("model") == "yamnet") & (pl.col("descriptor") == "rms_db"))["mean_r_s"].item()
    assert image.get_array()[2, 0] == pytest.approx(v)
    assert [a.get_ylabel() for a in fig.axes][1] == "mean Spearman $r_s$"


def test_fig4_symmetric_matrix_averaged_over_datasets(t):
    fig = figures.fig_model_similarity(t["rsa_models"])
    image = fig.axes[0].images[0]
    grid = np.ma.filled(image.get_array(), np.nan)
    assert grid.shape == (3, 3)
    np.testing.assert_array_equal(np.diag(grid), 1.0)
    np.testing.assert_array_equal(grid, grid.T)
    rows = pl.from_arrow(t["rsa_models"])
    pair = rows.filter((pl.col("model_a") == "yamnet") & (pl.col("model_b") == "run-all"))["r_s"]
    assert len(pair) == 2 and grid[0, 2] == pytest.approx(pair.mean())


def test_fig4_counts_a_pair_stored_both_ways_once():
    df = pl.DataFrame({"dataset": ["d", "d", "e"], "model_a": ["a", "b", "a"], "model_b": ["b", "a", "b"],
                       "r_s": [0.5, 0.5, 0.7], "p": [0.0] * 3, "q": [0.0] * 3})
    pairs = figures.model_pairs(df)
    assert pairs.rows() == [("a", "b", pytest.approx(0.6), 2, 0.5, 0.7)]


def test_png_bytes_deterministic(t, tmp_path):
    makers = [(figures.fig_probe_scores, "probe_summary"), (figures.fig_tsne, "tsne"),
              (figures.fig_rsa_descriptors, "rsa_summary"), (figures.fig_model_similarity, "rsa_models")]
    for make, name in makers:
        first = figures.save_png(make(t[name]), tmp_path / f"{name}.png")
        again = figures.save_png(make(t[name]))
        assert first == again and first[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{name}.png").read_bytes() == first
        assert b"Software" not in first and b"matplotlib" not in first


def test_dollar_in_a_name_is_literal():
    df = pl.DataFrame({"model": ["run-$x$"], "task": ["esc50"], "metric": ["accuracy"], "mean": [0.5],
                       "sd": [None], "n_seeds": [1], "ci_low": [0.4], "ci_high": [0.6], "resamples": [100]},
                      schema_overrides={"sd": pl.Float64})
    fig = figures.fig_probe_scores(df)
    figures.save_png(fig)  # mathtext would render "x" in italics; the escaped name draws as typed
    assert fig.legends[0].get_texts()[0].get_text() == r"run-\$x\$"
