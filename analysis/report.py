"""The study's report: Figures 1-4, the probe, paired-difference and RSA tables, and where every number came
from, as one self-contained `report.html` (CSS inline, PNGs as data URIs) and `report.md` beside the PNGs.

The report is built once as a list of blocks (heading, paragraph, list, figure, table) and rendered twice, so
the HTML and the Markdown cannot disagree. Everything is made in memory and handed to one `write_bytes(name,
data)` callable, so the caller may pass the store root's atomic writer (S3) instead of the local default.
A table that was not given (or is empty) makes its section say "not computed", never a crash; a model that
appears in a table without a provenance entry, or whose probes carry another fingerprint, is refused: a
number whose model cannot be named does not belong in the report.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analysis import figures
from analysis.figures import TableLike

log = logging.getLogger(__name__)

# File names in the report folder, in the order they are written (the HTML last: it is what people open).
FIGURES = (("fig1_probes.png", "Fig. 1"), ("fig2_tsne.png", "Fig. 2"), ("fig3_rsa.png", "Fig. 3"),
           ("fig4_models.png", "Fig. 4"))
MARKDOWN, HTML = "report.md", "report.html"
NOT_COMPUTED = "not computed"
TABLES = ("probes", "probe_summary", "probe_pairs", "rsa", "rsa_models", "rsa_summary", "tsne")


@dataclass(frozen=True, slots=True)
class ModelProvenance:
    """Where a model's numbers come from: the id a user typed, its fingerprint on each dataset, the store
    files read for it. One model can have several fingerprints: a model without stats of its own (a
    random-init encoder, official weights) is normalised with each dataset's train-split stats, and the
    stats are part of the fingerprint."""
    id: str
    shas: Mapping[str, str]  # dataset -> model_sha of its embeddings
    files: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping) -> ModelProvenance:
        return cls(id=str(d["id"]), shas={str(k): str(v) for k, v in d["shas"].items()},
                   files=tuple(str(f) for f in d.get("files", ())))

    def to_dict(self) -> dict:
        return {"id": self.id, "shas": dict(self.shas), "files": list(self.files)}

    def fingerprints(self) -> str:
        """One fingerprint when every dataset shares it, else `dataset: sha` for each."""
        if len(set(self.shas.values())) == 1:
            return next(iter(self.shas.values()))
        return ", ".join(f"{d}: {sha}" for d, sha in sorted(self.shas.items()))


@dataclass(frozen=True)
class Report:
    """Everything one report shows. Tables follow docs/store.md (`tsne`: dataset, key, model, x, y, label,
    colour_by, value); None means not computed. `provenance` maps model name -> ModelProvenance (a plain
    {id, sha, files} mapping is converted). `banner` heads the report (the demo says it is not the study)."""
    code_version: str
    created: str
    provenance: Mapping[str, ModelProvenance]
    probes: TableLike | None = None
    probe_summary: TableLike | None = None
    probe_pairs: TableLike | None = None
    rsa: TableLike | None = None
    rsa_models: TableLike | None = None
    rsa_summary: TableLike | None = None
    tsne: TableLike | None = None
    store_files: tuple[str, ...] = ()
    banner: str | None = None
    name: str = "report"
    error_bars: str = "ci"  # Fig. 1: "ci" (bootstrap interval) or "sd" (over seeds)
    frames: dict[str, pl.DataFrame] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prov = {str(k): v if isinstance(v, ModelProvenance) else ModelProvenance.from_dict(v)
                for k, v in self.provenance.items()}
        object.__setattr__(self, "provenance", prov)
        if self.error_bars not in figures.ERROR_BARS:
            raise ValueError(f"Report: error_bars={self.error_bars!r}, expected one of {sorted(figures.ERROR_BARS)}")
        frames = {t: figures.frame(getattr(self, t), t) for t in TABLES if getattr(self, t) is not None}
        object.__setattr__(self, "frames", {t: df for t, df in frames.items() if not df.is_empty()})
        for t, df in self.frames.items():
            for col in ("model", "model_a", "model_b"):
                for m in df[col].drop_nulls().unique().sort().to_list() if col in df.columns else ():
                    if m not in prov:
                        raise ValueError(f"Report: model {m!r} appears in {t} but has no provenance entry")
        if "probes" in self.frames:
            pairs = self.frames["probes"].select("model", "dataset", "model_sha").unique().sort("model", "dataset")
            for m, dataset, sha in pairs.iter_rows():
                if sha != prov[m].shas.get(dataset):
                    raise ValueError(f"Report: probes of {m!r} on {dataset} carry model_sha {sha}, provenance "
                                     f"says {prov[m].shas.get(dataset)}")


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of the document. kind: h2|h3|p|ul|figure|table|banner|none; `cols` holds (name, style)
    with style text|num|code; `marked` row indices are highlighted."""
    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    cols: tuple[tuple[str, str], ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    marked: frozenset[int] = frozenset()
    image: bytes = b""


def render_report(inputs: Report) -> dict[str, bytes]:
    """Every file of the report, name -> bytes, in writing order."""
    pngs = _figures(inputs)
    blocks = _blocks(inputs, pngs)
    out = dict(pngs)
    out[MARKDOWN] = _markdown(inputs, blocks).encode()
    out[HTML] = _html(inputs, blocks).encode()
    return out


def write_report(out_dir: str | Path, inputs: Report,
                 write_bytes: Callable[[str, bytes], None] | None = None) -> list[Path]:
    """Render the report and hand each file to `write_bytes(name, data)` (default: an atomic local write
    into `out_dir`); returns the files' paths under `out_dir`, the HTML last."""
    files = render_report(inputs)
    write = write_bytes or _local_writer(Path(out_dir))
    for name, data in files.items():
        write(name, data)
    log.info("report %s: wrote %d files to %s (%d figures)", inputs.name, len(files), out_dir,
             sum(n.endswith(".png") for n in files))
    return [Path(out_dir) / name for name in files]


def _local_writer(out_dir: Path) -> Callable[[str, bytes], None]:
    def write(name: str, data: bytes) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out_dir / name)
    return write


def _figures(inputs: Report) -> dict[str, bytes]:
    f = inputs.frames
    makers = {"fig1_probes.png": ("probe_summary", lambda df: figures.fig_probe_scores(df, inputs.error_bars)),
              "fig2_tsne.png": ("tsne", figures.fig_tsne),
              "fig3_rsa.png": ("rsa_summary", figures.fig_rsa_descriptors),
              "fig4_models.png": ("rsa_models", figures.fig_model_similarity)}
    return {name: figures.save_png(make(f[table])) for name, (table, make) in makers.items() if table in f}


def _blocks(inputs: Report, pngs: dict[str, bytes]) -> list[Block]:
    f = inputs.frames
    out = [Block("banner", inputs.banner)] if inputs.banner else []
    out += [Block("h2", "Summary"), Block("ul", items=_summary(inputs))]
    out += [Block("h2", "Fig. 1: probe scores"), *_figure(pngs, "fig1_probes.png", _fig1_caption(inputs))]
    out += [Block("h3", "Probe table"), *_probe_table(f.get("probe_summary"))]
    out += [Block("h2", "Paired differences"), *_pairs_table(f.get("probe_pairs"))]
    out += [Block("h2", "Fig. 3: RSA, model × descriptor"), *_figure(pngs, "fig3_rsa.png", (
        "Spearman r_s between each model's DSM and each descriptor's DSM, averaged over datasets as SPEC §4 "
        "defines it (significant correlations: r_s > 0, BH q < 0.05); † marks a flagged descriptor."))]
    out += [Block("h3", "RSA summary"), *_rsa_summary_table(f.get("rsa_summary"))]
    out += _rsa_tables(f.get("rsa"))
    out += [Block("h2", "Fig. 4: model similarity"), *_figure(pngs, "fig4_models.png", (
        "Spearman r_s between the models' DSMs, averaged over datasets; the diagonal is 1 by definition."))]
    out += [Block("h3", "Model similarity table"), *_similarity_table(f.get("rsa_models"))]
    out += [Block("h2", "Fig. 2: t-SNE"), *_figure(pngs, "fig2_tsne.png", (
        "t-SNE of validation embeddings per dataset, coloured by class (NSynth by pitch, VCTK by gender)."))]
    out += [Block("h2", "Provenance"), *_provenance(inputs)]
    return out


def _summary(inputs: Report) -> tuple[str, ...]:
    f = inputs.frames
    models = figures.model_order(list(inputs.provenance))
    kinds = {k: [m for m in models if figures.model_kind(m) == k] for k in ("trained", "random", "baseline")}
    items = [f"Models: {len(models)} (trained: {_names(kinds['trained'])}; random-init: {_names(kinds['random'])}; "
             f"baselines: {_names(kinds['baseline'])})."]
    if "probe_summary" in f:
        s = f["probe_summary"]
        tasks = figures.task_order(s["task"].to_list())
        by_domain = [f"{d}: {', '.join(t for t in tasks if figures.task_domain(t) == d)}"
                     for d in figures.DOMAIN_NAMES if any(figures.task_domain(t) == d for t in tasks)]
        items.append(f"Probe tasks: {len(tasks)} ({'; '.join(by_domain)}); seeds per model and task: "
                     f"{_span(s['n_seeds'])}; bootstrap resamples: {_span(s['resamples'])}.")
        best = (s.filter(pl.col("mean").is_not_null()).sort("mean", descending=True, maintain_order=True)
                .unique("task", keep="first", maintain_order=True))
        items += [f"Best on {t}: {r['model']}, {'AP' if r['metric'] == 'ap' else r['metric']} {_num(r['mean'])}."
                  for t in tasks for r in best.filter(pl.col("task") == t).iter_rows(named=True)]
    if "rsa" in f:
        r = f["rsa"]
        items.append(f"RSA datasets: {_names(sorted(r['dataset'].unique().to_list()))}; significant model–descriptor "
                     f"correlations: {r['significant'].sum()} of {len(r)}.")
    missing = [what for what, table in (("probe scores", "probe_summary"), ("paired differences", "probe_pairs"),
                                        ("RSA", "rsa"), ("RSA summary", "rsa_summary"),
                                        ("model similarity", "rsa_models"), ("t-SNE", "tsne")) if table not in f]
    if missing:
        items.append(f"Not computed: {', '.join(missing)}.")
    return tuple(items)


def _fig1_caption(inputs: Report) -> str:
    return (f"Mean test score over seeds per model and task (accuracy; AP for AVA), grouped by domain. Error bars: "
            f"{figures.ERROR_BARS[inputs.error_bars]}. Hatched, lighter bars: random-init encoders.")


def _figure(pngs: dict[str, bytes], name: str, caption: str) -> list[Block]:
    if name not in pngs:
        return [Block("none", f"{dict(FIGURES)[name]}: {NOT_COMPUTED} (its table was not given or is empty).")]
    label = dict(FIGURES)[name]
    return [Block("figure", text=f"{label}. {caption}", items=(name, label), image=pngs[name])]


def _probe_table(df: pl.DataFrame | None) -> list[Block]:
    if df is None:
        return [Block("none", f"Probe table: {NOT_COMPUTED}.")]
    rows = [(r["model"], r["task"], r["metric"], f"{_num(r['mean'])} ± {_num(r['sd'])}",
             _ci(r["ci_low"], r["ci_high"]), str(r["n_seeds"])) for r in _sorted(df, "model", "task")]
    cols = (("model", "text"), ("task", "text"), ("metric", "text"), ("mean ± SD", "num"), ("95 % CI", "num"),
            ("n seeds", "num"))
    note = (f"Mean and SD over seeds; 95 % CI: bootstrap over test items (over movies for AVA), "
            f"{_span(df['resamples'])} resamples; — where undefined (SD of one seed).")
    return [Block("p", note), Block("table", cols=cols, rows=tuple(rows))]


def _pairs_table(df: pl.DataFrame | None) -> list[Block]:
    if df is None:
        return [Block("none", f"Paired differences: {NOT_COMPUTED}.")]
    rows, marked = [], set()
    for i, r in enumerate(_sorted(df, "model_a", "task", second="model_b")):
        excludes = r["ci_low"] is not None and r["ci_high"] is not None and (r["ci_low"] > 0 or r["ci_high"] < 0)
        if excludes:
            marked.add(i)
        rows.append((r["task"], r["model_a"], r["model_b"], _num(r["diff"], signed=True),
                     _ci(r["ci_low"], r["ci_high"]), "yes" if excludes else "no"))
    cols = (("task", "text"), ("model a", "text"), ("model b", "text"), ("diff (a − b)", "num"), ("95 % CI", "num"),
            ("CI excludes 0", "text"))
    note = (f"Paired bootstrap over the same test items, {_span(df['resamples'])} resamples; highlighted rows: the "
            f"interval excludes 0.")
    return [Block("p", note), Block("table", cols=cols, rows=tuple(rows), marked=frozenset(marked))]


def _rsa_summary_table(df: pl.DataFrame | None) -> list[Block]:
    """Fig. 3's numbers as descriptor rows x model columns (the figure's transpose: a page is taller than wide)."""
    if df is None:
        return [Block("none", f"RSA summary: {NOT_COMPUTED}.")]
    models = figures.model_order(df["model"].to_list())
    cells = {(r["model"], r["descriptor"]): r for r in df.iter_rows(named=True)}
    rows = []
    for d in df["descriptor"].unique(maintain_order=True).to_list():
        part = df.filter(pl.col("descriptor") == d)
        flags = sorted(set(part["flagged"].drop_nulls().to_list()) - {""})
        rows.append((d, "; ".join(flags), _span(part["n_datasets"]),
                     *(_num(cells[(m, d)]["mean_r_s"]) if (m, d) in cells else "—" for m in models)))
    cols = (("descriptor", "text"), ("flag", "text"), ("n datasets", "num"), *((m, "num") for m in models))
    note = "Mean Spearman r_s over datasets (the values of Fig. 3); columns: models."
    return [Block("p", note), Block("table", cols=cols, rows=tuple(rows))]


def _rsa_tables(df: pl.DataFrame | None) -> list[Block]:
    if df is None:
        return [Block("h3", "RSA per dataset"), Block("none", f"RSA per dataset: {NOT_COMPUTED}.")]
    out = []
    order = {d: i for i, d in enumerate(df["descriptor"].unique(maintain_order=True).to_list())}
    models = figures.model_order(df["model"].to_list())
    cols = (("model", "text"), ("descriptor", "text"), ("n items", "num"), ("r_s", "num"), ("q (BH)", "num"),
            ("significant", "text"), ("test", "text"))
    for dataset in sorted(df["dataset"].unique().to_list()):
        part = df.filter(pl.col("dataset") == dataset)
        rows = sorted(part.iter_rows(named=True), key=lambda r: (models.index(r["model"]), order[r["descriptor"]]))
        marked = frozenset(i for i, r in enumerate(rows) if r["significant"])
        out += [Block("h3", f"RSA on {dataset}"),
                Block("p", f"{len(marked)} of {len(rows)} significant (highlighted)."),
                Block("table", cols=cols, marked=marked, rows=tuple(
                    (r["model"], r["descriptor"], str(r["n_items"]), _num(r["r_s"]), _q(r["q"]),
                     "yes" if r["significant"] else "no", r["test"] or "") for r in rows))]
    return out


def _similarity_table(df: pl.DataFrame | None) -> list[Block]:
    if df is None:
        return [Block("none", f"Model similarity: {NOT_COMPUTED}.")]
    pairs = figures.model_pairs(df)
    models = figures.model_order(pairs["model_a"].to_list() + pairs["model_b"].to_list())
    rows = []
    for r in pairs.iter_rows(named=True):  # each pair as Fig. 4's upper triangle reads it: a before b
        a, b = sorted((r["model_a"], r["model_b"]), key=models.index)
        rows.append({**r, "model_a": a, "model_b": b})
    rows.sort(key=lambda r: (models.index(r["model_a"]), models.index(r["model_b"])))
    cols = (("model a", "text"), ("model b", "text"), ("mean r_s", "num"), ("range over datasets", "num"),
            ("n datasets", "num"))
    return [Block("table", cols=cols, rows=tuple(
        (r["model_a"], r["model_b"], _num(r["r_s"]), _ci(r["low"], r["high"]), str(r["n_datasets"])) for r in rows))]


def _provenance(inputs: Report) -> list[Block]:
    probes = inputs.frames.get("probes")
    runs = dict(probes.group_by("model").len().iter_rows()) if probes is not None else {}
    models = figures.model_order(list(inputs.provenance))
    rows = tuple((m, inputs.provenance[m].id, inputs.provenance[m].fingerprints(), str(runs.get(m, 0)),
                  ", ".join(inputs.provenance[m].files) or "—") for m in models)
    cols = (("model", "text"), ("id", "text"), ("fingerprint (sha256)", "code"), ("probe runs", "num"),
            ("store files", "code"))
    items = (f"Code version: {inputs.code_version}", f"Created: {inputs.created}",
             f"Store files read: {', '.join(inputs.store_files) or 'none listed'}")
    return [Block("table", cols=cols, rows=rows), Block("ul", items=items)]


def _sorted(df: pl.DataFrame, model_col: str, task_col: str, second: str | None = None) -> list[dict]:
    """Rows by task (domain order), then model display order (then a second model column)."""
    models = figures.model_order(df[model_col].to_list() + (df[second].to_list() if second else []))
    tasks = figures.task_order(df[task_col].to_list())
    return sorted(df.iter_rows(named=True), key=lambda r: (
        tasks.index(r[task_col]), models.index(r[model_col]), models.index(r[second]) if second else 0))


def _num(v: float | None, signed: bool = False) -> str:
    if v is None or v != v:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _q(v: float | None) -> str:
    return "<0.001" if v is not None and 0 <= v < 0.001 else _num(v)


def _ci(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{_num(low)}, {_num(high)}]"


def _span(col: pl.Series) -> str:
    values = sorted(set(col.drop_nulls().to_list()))
    if not values:
        return "—"
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}–{values[-1]:,}"


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"


def _markdown(inputs: Report, blocks: list[Block]) -> str:
    def esc(s: str) -> str:
        """Only what Markdown would read as markup: a tag or entity start ('q < 0.05' stays as typed)."""
        return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", re.sub(r"&(?=#?\w+;)", "&amp;", s)).replace("\n", " ")

    lines = [f"# audiodiet report: {esc(inputs.name)}", ""]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            lines += [f"{'#' * int(b.kind[1])} {esc(b.text)}", ""]
        elif b.kind == "banner":
            lines += [f"> **{esc(b.text)}**", ""]
        elif b.kind == "p":
            lines += [esc(b.text), ""]
        elif b.kind == "none":
            lines += [f"*{esc(b.text)}*", ""]
        elif b.kind == "ul":
            lines += [f"- {esc(i)}" for i in b.items] + [""]
        elif b.kind == "figure":
            lines += [f"![{b.items[1]}]({b.items[0]})", "", esc(b.text), ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(esc(c).replace("|", "\\|") for c, _ in b.cols) + " |")
            lines.append("|" + "|".join("---:" if k == "num" else "---" for _, k in b.cols) + "|")
            lines += ["| " + " | ".join(esc(v).replace("|", "\\|") for v in row) + " |" for row in b.rows]
            lines.append("")
    return "\n".join(lines)


CSS = """
body{margin:0;background:#fff;color:#1f2328;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",
sans-serif}
main{max-width:1120px;margin:0 auto;padding:20px 32px 64px}
h1{font-size:1.6em;margin:.3em 0 .2em}h2{font-size:1.3em;border-bottom:1px solid #d8dee4;padding-bottom:.2em;
margin-top:2.2em}h3{font-size:1.05em;margin-top:1.6em}
.banner{background:#fff8e1;border:1px solid #e3b341;border-left:6px solid #d4a72c;border-radius:4px;padding:10px 16px;
font-weight:600;margin:12px 0}
nav{font-size:13px;color:#57606a}nav a{color:#0969da;text-decoration:none;margin-right:14px}
figure{margin:12px 0 8px}img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption,p.note{font-size:13px;color:#57606a;margin:4px 0 8px}
.none{color:#9a6700;font-style:italic;background:#fff8c5;display:inline-block;padding:2px 8px;border-radius:3px}
.scroll{max-height:560px;overflow:auto;border:1px solid #eaeef2;display:inline-block;max-width:100%}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0;font-weight:600}
.num,.text{text-align:right;white-space:nowrap}.text{text-align:left}
.code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;word-break:break-all;max-width:34em}
tr.marked td{background:#dafbe1}
ul{padding-left:1.3em}li{margin:2px 0}
@media print{.scroll{max-height:none;overflow:visible}th{position:static}}
"""


def _html(inputs: Report, blocks: list[Block]) -> str:
    def esc(s: str) -> str:
        return html.escape(s, quote=True)

    heads = [b.text for b in blocks if b.kind == "h2"]
    nav = " ".join(f'<a href="#{_anchor(h)}">{esc(h)}</a>' for h in heads)
    parts = [f"<h1>audiodiet report: {esc(inputs.name)}</h1>", f"<nav>{nav}</nav>"]
    for b in blocks:
        if b.kind == "h2":
            parts.append(f'<h2 id="{_anchor(b.text)}">{esc(b.text)}</h2>')
        elif b.kind == "h3":
            parts.append(f"<h3>{esc(b.text)}</h3>")
        elif b.kind == "banner":
            parts.append(f'<div class="banner" role="note">{esc(b.text)}</div>')
        elif b.kind == "p":
            parts.append(f'<p class="note">{esc(b.text)}</p>')
        elif b.kind == "none":
            parts.append(f'<p><span class="none">{esc(b.text)}</span></p>')
        elif b.kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "figure":
            data = base64.b64encode(b.image).decode()
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(b.text)}">'
                         f"<figcaption>{esc(b.text)}</figcaption></figure>")
        elif b.kind == "table":
            head = "".join(f'<th class="{k}">{esc(c)}</th>' if k == "num" else f"<th>{esc(c)}</th>" for c, k in b.cols)
            body = "".join(("<tr class=marked>" if i in b.marked else "<tr>")
                           + "".join(f'<td class="{k}">{esc(v)}</td>' for v, (_, k) in zip(row, b.cols)) + "</tr>"
                           for i, row in enumerate(b.rows))
            parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                         "</div>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>audiodiet report: {esc(inputs.name)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
