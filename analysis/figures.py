"""Figures 1-4 of the paper (SPEC §5), drawn from the analysis tables whose schemas docs/store.md fixes.

Each function takes one table (a pyarrow Table or a polars DataFrame) and returns a matplotlib Figure made
without pyplot, on an Agg canvas: the report renders many figures in one process, and pyplot's global figure
registry would keep every one of them alive. `save_png` fixes the dpi and drops the Software/date metadata so
that the same tables give byte-identical PNGs, and so byte-identical reports.

Models are drawn in one order everywhere (`model_order`): trained models first (our `run-*` runs, then other
trained checkpoints), then random-init encoders (`*-random`, `*-random-tiny`, hatched and lighter in Fig. 1,
grey italic labels in the heat maps), then the baselines the paper compares (YAMNet, WavLM Base+).
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

log = logging.getLogger(__name__)

TableLike = pa.Table | pl.DataFrame

# 110 dpi keeps a 10-inch figure about 1,100 px wide: sharp in a 1,100-px report column, small as base64.
DPI = 110
# The widest figure, in inches (1,155 px): wider ones would be scaled down in the report, text and all.
MAX_WIDTH = 10.5
# The columns each figure or report table reads (docs/store.md; `tsne` is the t-SNE points table).
COLUMNS: dict[str, tuple[str, ...]] = {
    "probes": ("model", "model_sha", "task", "dataset", "seed", "metric", "test_score", "created"),
    "probe_summary": ("model", "task", "metric", "mean", "sd", "n_seeds", "ci_low", "ci_high", "resamples"),
    "probe_pairs": ("task", "model_a", "model_b", "diff", "ci_low", "ci_high", "resamples"),
    "rsa": ("model", "dataset", "descriptor", "n_items", "r_s", "p", "q", "significant", "test"),
    "rsa_models": ("dataset", "model_a", "model_b", "r_s", "p", "q"),
    "rsa_summary": ("model", "descriptor", "mean_r_s", "n_datasets", "flagged"),
    "tsne": ("dataset", "key", "model", "x", "y", "label", "colour_by", "value"),
}
# Fig. 1's domains, matched by task-name prefix (so `ava_limited` is mixed); anything else is "other".
DOMAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("speech", ("speech_commands", "vctk")),
    ("nonspeech", ("esc50", "urbansound8k", "nsynth")),
    ("mixed", ("ava",)),
)
DOMAIN_NAMES = tuple(d for d, _ in DOMAINS) + ("other",)
BASELINES = ("yamnet", "wavlm-base-plus")
ERROR_BARS = {"ci": "95 % bootstrap CI over test items (over movies for AVA)", "sd": "± 1 SD over seeds"}
# How a t-SNE panel is coloured; "label" (the items column analysis.similarity names) is the same as "class".
COLOUR_BY = ("class", "label", "pitch", "gender")
FLAG_MARK = "†"


def frame(table: TableLike, name: str) -> pl.DataFrame:
    """The table as polars, checked for the columns the figures and report read (one clear error, not a
    KeyError deep inside matplotlib)."""
    if name not in COLUMNS:
        raise ValueError(f"unknown table {name!r}, expected one of {sorted(COLUMNS)}")
    df = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    if not isinstance(df, pl.DataFrame):
        raise ValueError(f"{name}: expected a pyarrow Table or polars DataFrame, got {type(table).__name__}")
    missing = [c for c in COLUMNS[name] if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}, expected {list(COLUMNS[name])}")
    return df


def model_kind(model: str) -> str:
    """'random' for random-init encoders, 'baseline' for the compared supervised/speech models, else 'trained'."""
    if model.endswith(("-random", "-random-tiny")):  # docs/store.md names; -tiny: the twin of a tiny run
        return "random"
    if model.startswith(BASELINES):
        return "baseline"
    return "trained"


def model_order(models: list[str]) -> list[str]:
    rank = {"trained": 0, "random": 1, "baseline": 2}
    return sorted(set(models), key=lambda m: (rank[model_kind(m)], not m.startswith("run-"), m))


def task_domain(task: str) -> str:
    for domain, prefixes in DOMAINS:
        if task.startswith(prefixes):
            return domain
    return "other"


def task_order(tasks: list[str]) -> list[str]:
    return sorted(set(tasks), key=lambda t: (DOMAIN_NAMES.index(task_domain(t)), t))


def model_colours(models: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per model, by display order, shared by every figure of a report."""
    ordered = model_order(models)
    cmap = colormaps["tab10" if len(ordered) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(ordered)}


def fig_probe_scores(probe_summary: TableLike, error: str = "ci") -> Figure:
    """Fig. 1: test score per model per task, tasks grouped by domain; `error` is 'ci' (the bootstrap
    interval) or 'sd' (over seeds), named on the figure."""
    if error not in ERROR_BARS:
        raise ValueError(f"fig_probe_scores: error={error!r}, expected one of {sorted(ERROR_BARS)}")
    df = frame(probe_summary, "probe_summary").filter(pl.col("mean").is_not_null())
    if df.is_empty():
        raise ValueError("probe_summary: no rows with a mean score to plot")
    dup = df.group_by("model", "task").len().filter(pl.col("len") > 1)
    if not dup.is_empty():
        raise ValueError(f"probe_summary: more than one row for (model, task) {dup.row(0)[:2]}")
    models = model_order(df["model"].to_list())
    colours = model_colours(models)
    rows = {(r["model"], r["task"]): r for r in df.iter_rows(named=True)}
    tasks = task_order(df["task"].to_list())
    groups = [(d, [t for t in tasks if task_domain(t) == d]) for d in DOMAIN_NAMES]
    groups = [(d, ts) for d, ts in groups if ts]
    fig = _new_figure(max(6.5, 2.0 + 0.32 * len(tasks) * (len(models) + 1.5)), 5.0)
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False, width_ratios=[len(ts) for _, ts in groups])[0]
    width = 0.8 / len(models)
    for ax, (domain, dtasks) in zip(axes, groups):
        for i, model in enumerate(models):
            found = [(j, rows[(model, t)]) for j, t in enumerate(dtasks) if (model, t) in rows]
            if not found:
                continue
            xs = np.array([j for j, _ in found]) - 0.4 + width * (i + 0.5)
            ys = np.array([r["mean"] for _, r in found], dtype=float)
            ax.bar(xs, ys, width, yerr=_yerr(ys, [r for _, r in found], error), label=model,
                   error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"}, **_bar_style(model, colours[model]))
        labels = [f"{_plain(t)}\n({rows_metric(rows, t)})" for t in dtasks]
        ax.set_xticks(range(len(dtasks)), labels, rotation=30 if max(map(len, dtasks)) > 9 else 0,
                      ha="right" if max(map(len, dtasks)) > 9 else "center")
        ax.set_xlim(-0.5, len(dtasks) - 0.5)
        ax.set_title(domain, fontsize=10)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel("test score (accuracy or AP, 0–1)")
    fig.suptitle(f"Linear-probe test scores per task\nerror bars: {ERROR_BARS[error]}", fontsize=11)
    handles = [Patch(label=_plain(m), **_bar_style(m, colours[m])) for m in models]
    columns = max(1, min(len(models), int(fig.get_figwidth() // 2.3)))  # ~2.3 in per entry: none clipped
    fig.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False, fontsize=9)
    return fig


def rows_metric(rows: dict[tuple[str, str], dict], task: str) -> str:
    """The task's metric as a tick suffix ('acc.' or 'AP'); a task whose models disagree says so."""
    metrics = {r["metric"] for (_, t), r in rows.items() if t == task}
    return "AP" if metrics == {"ap"} else "acc." if metrics == {"accuracy"} else "/".join(sorted(metrics))


def fig_tsne(points: TableLike) -> Figure:
    """Fig. 2: one t-SNE panel per (dataset, model), coloured as its `colour_by` says (class, pitch with a
    colourbar, or gender)."""
    df = frame(points, "tsne")
    if df.is_empty():
        raise ValueError("tsne: no points to plot")
    bad = sorted(set(df["colour_by"].drop_nulls().to_list()) - set(COLOUR_BY))
    if bad or df["colour_by"].null_count():
        raise ValueError(f"tsne: colour_by values {bad or [None]}, expected one of {list(COLOUR_BY)}")
    models = model_order(df["model"].to_list())
    panels = sorted({(d, m) for d, m in df.select("dataset", "model").iter_rows()},
                    key=lambda p: (p[0], models.index(p[1])))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(MAX_WIDTH / 3 * ncols, 3.5 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (dataset, model) in zip(axes, panels):
        part = df.filter((pl.col("dataset") == dataset) & (pl.col("model") == model)).sort("key")
        how = part["colour_by"].unique().to_list()
        if len(how) != 1:
            raise ValueError(f"tsne: {dataset}/{model} mixes colour_by values {sorted(how)}, expected one")
        _scatter(fig, ax, part, how[0])
        ax.set_title(f"{_plain(dataset)} — {_plain(model)}\ncoloured by {how[0]}, n = {len(part):,}", fontsize=9)
        ax.set_xlabel("t-SNE 1 (arbitrary units)", fontsize=8)
        ax.set_ylabel("t-SNE 2 (arbitrary units)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.remove()
    fig.suptitle("t-SNE of validation embeddings", fontsize=11)
    return fig


# Fig. 3 shows the named descriptors and the 32 band levels; the 64 per-band flux statistics would crowd it
# past reading and stay in the report's RSA table.
FIG3_HIDDEN = re.compile(r"^flux_erb_")


def fig_rsa_descriptors(rsa_summary: TableLike) -> Figure:
    """Fig. 3: mean Spearman r_s (model DSM vs descriptor DSM, over datasets) per model and descriptor;
    descriptors with a `flagged` note (pitch: NSynth only) carry a mark and a footnote."""
    df = frame(rsa_summary, "rsa_summary")
    if df.is_empty():
        raise ValueError("rsa_summary: no rows to plot")
    models = model_order(df["model"].to_list())
    descriptors = df["descriptor"].unique(maintain_order=True).to_list()
    hidden = [d for d in descriptors if FIG3_HIDDEN.match(d)]
    descriptors = [d for d in descriptors if d not in hidden] or descriptors
    grid = _grid(df, "model", "descriptor", "mean_r_s", models, descriptors)
    noted = df.filter(pl.col("flagged").is_not_null() & (pl.col("flagged") != ""))
    flags = {d: sorted(set(g["flagged"].to_list())) for (d,), g in noted.group_by("descriptor", maintain_order=True)}
    lim = max(0.1, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.1)
    fig = _new_figure(max(6.0, 2.6 + 0.62 * len(descriptors)), max(3.6, 1.9 + 0.42 * len(models)))
    ax = fig.subplots()
    image = _heatmap(ax, grid, "RdBu_r", -lim, lim)
    xlabels = [_plain(f"{d} {FLAG_MARK}" if d in flags else d) for d in descriptors]
    ax.set_xticks(range(len(descriptors)), xlabels, rotation=60, ha="right",
                  fontsize=8 if len(descriptors) <= 24 else 6.5)
    for tick, d in zip(ax.get_xticklabels(), descriptors):
        if d in flags:
            tick.set_color("firebrick")
    _model_ticks(ax, models, axis="y")
    fig.colorbar(image, ax=ax, shrink=0.9, label="mean Spearman $r_s$")
    ax.set_title("RSA: model DSM vs acoustic-descriptor DSM, mean $r_s$ over datasets", fontsize=11)
    ax.set_xlabel("acoustic descriptor" + (f" ({len(hidden)} per-band flux columns: see the RSA table)"
                                           if hidden and len(hidden) < len(df["descriptor"].unique()) else ""),
                  fontsize=9)
    if flags:
        notes = "; ".join(f"{d}: {', '.join(f)}" for d, f in flags.items())
        fig.supxlabel(_plain(f"{FLAG_MARK} {notes}. Grey: no value."), fontsize=8, color="firebrick")
    return fig


def fig_model_similarity(rsa_models: TableLike) -> Figure:
    """Fig. 4: Spearman r_s between model DSMs, per pair averaged over datasets; the diagonal is 1 by
    definition, a pair never compared is grey."""
    df = frame(rsa_models, "rsa_models")
    if df.is_empty():
        raise ValueError("rsa_models: no rows to plot")
    pairs = model_pairs(df)
    models = model_order(pairs["model_a"].to_list() + pairs["model_b"].to_list())
    both = pl.concat([pairs.select("model_a", "model_b", "r_s"),
                      pairs.select(model_a="model_b", model_b="model_a", r_s="r_s")])
    grid = _grid(both, "model_a", "model_b", "r_s", models, models)
    np.fill_diagonal(grid, 1.0)
    low = min(0.0, float(np.nanmin(grid)))
    fig = _new_figure(max(4.8, 2.8 + 0.62 * len(models)), max(4.0, 2.0 + 0.55 * len(models)))
    ax = fig.subplots()
    image = _heatmap(ax, grid, "viridis", low, 1.0)
    _model_ticks(ax, models, axis="x")
    _model_ticks(ax, models, axis="y")
    fig.colorbar(image, ax=ax, shrink=0.9, label="Spearman $r_s$ between model DSMs")
    n = sorted(set(pairs["n_datasets"].to_list()))
    ax.set_title(f"Model × model similarity (mean over {'/'.join(map(str, n))} datasets)", fontsize=11)
    return fig


def model_pairs(rsa_models: TableLike) -> pl.DataFrame:
    """One row per unordered model pair: mean r_s over datasets, their count and range (a pair stored both
    ways, or per dataset, counts once per dataset)."""
    df = frame(rsa_models, "rsa_models")
    a, b = pl.min_horizontal("model_a", "model_b"), pl.max_horizontal("model_a", "model_b")
    df = df.with_columns(model_a=a, model_b=b).filter(pl.col("model_a") != pl.col("model_b"))
    df = df.unique(["dataset", "model_a", "model_b"], keep="first", maintain_order=True)
    return (df.group_by("model_a", "model_b")
            .agg(r_s=pl.col("r_s").mean(), n_datasets=pl.len(), low=pl.col("r_s").min(), high=pl.col("r_s").max())
            .sort("model_a", "model_b"))


def save_png(fig: Figure, path: str | Path | None = None) -> bytes:
    """The figure as PNG bytes (and written to `path`, atomically, when given); no timestamp or version in
    the file, so equal figures give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    data = buf.getvalue()
    if path is not None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return data


def _plain(text: str) -> str:
    """Names shown literally: a '$' would otherwise start matplotlib mathtext."""
    return text.replace("$", r"\$")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(width, MAX_WIDTH), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _bar_style(model: str, colour: tuple) -> dict:
    if model_kind(model) == "random":
        light = tuple(0.45 * np.array(colour[:3]) + 0.55) + (1.0,)
        return {"facecolor": light, "edgecolor": colour, "hatch": "///", "linewidth": 0.8}
    return {"facecolor": colour, "edgecolor": colour, "linewidth": 0.8}


def _yerr(ys: np.ndarray, rows: list[dict], error: str) -> np.ndarray:
    """2 x n error lengths; a missing bound draws no bar, and an interval not around the mean (a CI of one
    seed's test items beside the mean over seeds) is clipped at the bar rather than refused."""
    def get(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
    if error == "sd":
        sd = get("sd")
        return np.vstack([sd, sd])
    return np.vstack([np.maximum(ys - get("ci_low"), 0), np.maximum(get("ci_high") - ys, 0)])


def _scatter(fig: Figure, ax, part: pl.DataFrame, how: str) -> None:
    xy = part.select("x", "y").to_numpy().astype(float)
    if how == "pitch":
        pitch = part["value"].cast(pl.Utf8).cast(pl.Float64, strict=False).to_numpy()
        points = ax.scatter(xy[:, 0], xy[:, 1], c=pitch, cmap=colormaps["viridis"].with_extremes(bad="0.75"), s=5,
                            linewidths=0, plotnonfinite=True)
        fig.colorbar(points, ax=ax, shrink=0.85, label="pitch (MIDI note number)")
        return
    how = "class" if how == "label" else how
    source = "label" if how == "class" else "value"
    cats = part[source].cast(pl.Utf8).fill_null(part["label"].cast(pl.Utf8)).fill_null("(none)").to_list()
    names = sorted(set(cats))
    if len(names) <= 10:
        colours = [colormaps["tab10"](i) for i in range(len(names))]
    elif len(names) <= 20:
        colours = [colormaps["tab20"](i) for i in range(len(names))]
    else:
        colours = [colormaps["turbo"](v) for v in np.linspace(0.05, 0.95, len(names))]
    index = {n: i for i, n in enumerate(names)}
    ax.scatter(xy[:, 0], xy[:, 1], c=[colours[index[c]] for c in cats], s=5, linewidths=0)
    if len(names) <= 12:
        handles = [Patch(color=colours[i], label=_plain(n)) for i, n in enumerate(names)]
        ax.legend(handles=handles, fontsize=7, loc="upper right", frameon=True, framealpha=0.8, title=how,
                  title_fontsize=7)
    else:
        ax.text(0.01, 0.01, f"{len(names)} {how}es, one colour each (no legend)", transform=ax.transAxes,
                fontsize=7, color="0.3")


def _grid(df: pl.DataFrame, row: str, col: str, value: str, rows: list[str], cols: list[str]) -> np.ndarray:
    grid = np.full((len(rows), len(cols)), np.nan)
    ri, ci = {r: i for i, r in enumerate(rows)}, {c: i for i, c in enumerate(cols)}
    for r, c, v in df.select(row, col, value).iter_rows():
        if v is not None and r in ri and c in ci:
            grid[ri[r], ci[c]] = v
    return grid


def _heatmap(ax, grid: np.ndarray, cmap: str, vmin: float, vmax: float):
    colours = colormaps[cmap].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=colours, vmin=vmin, vmax=vmax, aspect="auto")
    if grid.size <= 400 and grid.shape[1] <= 16:  # values in cells only where they fit (the tables list them)
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                dark = image.norm(v) < 0.25 or image.norm(v) > 0.75 if cmap == "RdBu_r" else image.norm(v) < 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.tick_params(length=0)
    return image


def _model_ticks(ax, models: list[str], axis: str) -> None:
    """Model tick labels; random-init ones grey italic, as Fig. 1 draws them lighter."""
    if axis == "x":
        ax.set_xticks(range(len(models)), [_plain(m) for m in models], rotation=45, ha="right", fontsize=8)
        ticks = ax.get_xticklabels()
    else:
        ax.set_yticks(range(len(models)), [_plain(m) for m in models], fontsize=8)
        ticks = ax.get_yticklabels()
    for tick, m in zip(ticks, models):
        if model_kind(m) == "random":
            tick.set_color("0.4")
            tick.set_fontstyle("italic")
