"""The report on small synthetic tables: every figure embedded, every table and fingerprint present, HTML
escaped, missing inputs said to be missing, in-memory writing, and (where Chromium exists) a real browser
rendering the figures."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from matplotlib.image import imread

from analysis.report import FIGURES, HTML, MARKDOWN, ModelProvenance, Report, render_report, write_report
from tests.analysis.test_figures import SHA, TASKS, tables

DATASETS = tuple(dataset for dataset, _ in TASKS)

BANNER = "Synthetic demo, not the study: every number below is a real result of the demo run."
HEADINGS = ("Summary", "Fig. 1: probe scores", "Probe table", "Paired differences", "Fig. 3: RSA, model × descriptor",
            "RSA summary", "RSA on esc50", "RSA on nsynth", "Fig. 4: model similarity", "Model similarity table",
            "Fig. 2: t-SNE", "Provenance")
COLUMN_HEADS = ("mean ± SD", "95 % CI", "n seeds", "diff (a − b)", "CI excludes 0", "q (BH)", "significant",
                "mean r_s", "range over datasets", "fingerprint (sha256)", "store files")


def provenance(models) -> dict[str, dict]:
    return {m: {"id": f"id:{m}", "shas": {d: SHA.get(m, "0" * 64) for d in DATASETS},
                "files": [f"store/embeddings/model={m}/dataset=esc50/part-000001-a.parquet"]} for m in models}


def make_report(t: dict[str, pa.Table], **overrides) -> Report:
    models = sorted(set(pl.DataFrame(t["probe_summary"])["model"].to_list())) if "probe_summary" in t else []
    base = Report(code_version="0123abc", created="2026-12-01T10:00:00Z", provenance=provenance(models),
                  store_files=("store/probe_summary/_manifest.json", "store/rsa/_manifest.json"), banner=BANNER,
                  name="demo", **t)
    return replace(base, **overrides) if overrides else base


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Path], dict[str, pa.Table]]:
    out = tmp_path_factory.mktemp("report") / "reports" / "demo"
    t = tables()
    return out, write_report(out, make_report(t)), t


def sections(page: str) -> dict[str, str]:
    parts = re.split(r'<h2 id="[^"]*">', page)[1:]
    return {p.split("</h2>")[0]: p for p in parts}


def test_writes_every_file_html_last(written):
    out, paths, _ = written
    assert [p.name for p in paths] == [n for n, _ in FIGURES] + [MARKDOWN, HTML]
    assert all(p.is_file() and p.parent == out for p in paths)
    assert not list(out.glob(".*"))  # no temporaries left


def test_html_embeds_every_figure_as_the_png_written(written):
    out, _, _ = written
    page = (out / HTML).read_text()
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 4
    assert [base64.b64decode(u) for u in uris] == [(out / n).read_bytes() for n in
                                                   ("fig1_probes.png", "fig3_rsa.png", "fig4_models.png",
                                                    "fig2_tsne.png")]
    # self-contained: no external resource of any kind
    assert not re.search(r"https?://|<link|<script|@import|url\(", page)
    assert page.count("<img ") == 4


def test_every_heading_table_and_fingerprint_present(written):
    out, _, _ = written
    page, md = (out / HTML).read_text(), (out / MARKDOWN).read_text()
    for h in HEADINGS:
        assert f">{h}</h" in page.replace("&#x27;", "'") and re.search(rf"^#+ {re.escape(h)}$", md, re.M), h
    for c in COLUMN_HEADS:
        assert f">{c}</th>" in page and f"| {c} |" in md, c
    assert page.count("<table>") == 7  # probes, pairs, RSA summary, RSA x 2 datasets, similarity, provenance
    for m, sha in SHA.items():
        assert sha in page and sha in md and f"id:{m}" in page
    assert BANNER in page and page.index(BANNER) < page.index(">Summary</h2>")
    assert md.splitlines()[2] == f"> **{BANNER}**"
    for text in ("Code version: 0123abc", "Created: 2026-12-01T10:00:00Z", "store/rsa/_manifest.json"):
        assert text in page and text in md


def test_numbers_match_the_tables(written):
    out, _, t = written
    page = sections((out / HTML).read_text())
    s = pl.from_arrow(t["probe_summary"]).filter((pl.col("model") == "yamnet") & (pl.col("task") == "ava")).row(
        0, named=True)
    cells = f"{s['mean']:.3f} ± {s['sd']:.3f}</td><td class=\"num\">[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</td>"
    assert cells in page["Fig. 1: probe scores"]
    pairs = pl.from_arrow(t["probe_pairs"])
    excluding = pairs.filter((pl.col("ci_low") > 0) | (pl.col("ci_high") < 0)).height
    assert 0 < excluding < pairs.height
    assert page["Paired differences"].count("<tr class=marked>") == excluding
    rsa = pl.from_arrow(t["rsa"])
    for d in ("esc50", "nsynth"):
        part = page["Fig. 3: RSA, model × descriptor"].split(f"<h3>RSA on {d}</h3>")[1].split("</table>")[0]
        assert part.count("<tr class=marked>") == rsa.filter((pl.col("dataset") == d) & pl.col("significant")).height


def test_markdown_references_the_four_pngs(written):
    out, _, _ = written
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / MARKDOWN).read_text())
    assert sorted(refs) == sorted(n for n, _ in FIGURES)
    assert all((out / r).is_file() for r in refs)


def test_html_escapes_model_names(tmp_path):
    t = tables(models=("run-<b>x</b>", "byola-v2-random", "yamnet"))
    files = render_report(make_report(t))
    page, md = files[HTML].decode(), files[MARKDOWN].decode()
    assert "run-&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page
    assert "run-&lt;b>x&lt;/b>" in md and "<b>" not in md


def test_missing_tsne_says_not_computed(tmp_path):
    t = tables()
    paths = write_report(tmp_path, make_report(t, tsne=None))
    assert "fig2_tsne.png" not in [p.name for p in paths] and not (tmp_path / "fig2_tsne.png").exists()
    page, md = (tmp_path / HTML).read_text(), (tmp_path / MARKDOWN).read_text()
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "Fig. 2: not computed" in sections(page)["Fig. 2: t-SNE"] and "Fig. 2: not computed" in md
    assert "Not computed: t-SNE." in page and "fig2_tsne.png" not in md


def test_nothing_but_provenance_renders_every_section_not_computed():
    files = render_report(Report(code_version="v", created="c", provenance={}, probe_summary=pa.table(
        {c: pa.array([], pa.float64()) for c in ("mean", "sd", "ci_low", "ci_high")}
        | {c: pa.array([], pa.string()) for c in ("model", "task", "metric")}
        | {c: pa.array([], pa.int64()) for c in ("n_seeds", "resamples")})))
    page = files[HTML].decode()
    assert list(files) == [MARKDOWN, HTML]
    # Figs. 1-4, the probe, pairs, RSA-summary, RSA-per-dataset and similarity tables
    assert page.count("not computed") == 9 and "<img" not in page
    assert "Not computed: probe scores, paired differences, RSA, RSA summary, model similarity, t-SNE." in page


def test_write_bytes_callable_gets_everything_in_memory(written, tmp_path):
    out, _, _ = written
    got: dict[str, bytes] = {}
    paths = write_report(tmp_path / "remote", make_report(tables()),
                         write_bytes=lambda name, data: got.__setitem__(name, data))
    assert list(got) == [p.name for p in paths] and list(got)[-1] == HTML
    assert not list(tmp_path.iterdir())
    # deterministic: the same tables, built afresh, give the same bytes as the fixture's report
    assert got == {name: (out / name).read_bytes() for name in got}


def test_polars_input_and_provenance_objects():
    t = {k: pl.from_arrow(v) for k, v in tables().items()}
    r = make_report(t)
    assert r.provenance["yamnet"] == ModelProvenance("id:yamnet", {d: SHA["yamnet"] for d in DATASETS}, (
        "store/embeddings/model=yamnet/dataset=esc50/part-000001-a.parquet",))
    assert ModelProvenance.from_dict(r.provenance["yamnet"].to_dict()) == r.provenance["yamnet"]
    assert render_report(r)[HTML].decode().count("<img ") == 4


def test_refuses_a_number_without_provenance():
    t = tables()
    with pytest.raises(ValueError, match="model 'yamnet' appears in probes but has no provenance entry"):
        make_report(t, provenance={m: v for m, v in provenance(SHA).items() if m != "yamnet"})
    bad = provenance(SHA) | {"yamnet": {"id": "yamnet:x", "shas": {d: "f" * 64 for d in DATASETS}}}
    with pytest.raises(ValueError, match="probes of 'yamnet' on [a-z_]+ carry model_sha 1111"):
        make_report(t, provenance=bad)
    with pytest.raises(ValueError, match="error_bars='iqr'"):
        make_report(t, error_bars="iqr")


def test_a_model_normalised_per_dataset_has_a_fingerprint_per_dataset():
    """A random-init encoder takes each dataset's train stats, so its embeddings carry one sha per dataset:
    the report accepts probes that match their own dataset's sha and lists each (the demo's case)."""
    t = tables()
    probes = pl.from_arrow(t["probes"]).with_columns(
        pl.when(pl.col("model") == "yamnet").then(pl.lit("a" * 64) + pl.col("dataset")).otherwise(pl.col("model_sha"))
        .alias("model_sha")).to_arrow().cast(t["probes"].schema)
    per_dataset = provenance(SHA) | {"yamnet": {"id": "yamnet:x", "shas": {d: "a" * 64 + d for d in DATASETS}}}

    def report(prov):
        return Report(code_version="0123abc", created="2026-12-01T10:00:00Z", provenance=prov,
                      **(t | {"probes": probes}))

    r = report(per_dataset)
    assert r.provenance["yamnet"].fingerprints() == ", ".join(f"{d}: {'a' * 64 + d}" for d in sorted(DATASETS))
    assert r.provenance["byola-v2-random"].fingerprints() == SHA["byola-v2-random"]  # one sha: shown once
    assert f"esc50: {'a' * 64}esc50" in render_report(r)[HTML].decode()
    swapped = per_dataset | {"yamnet": {"id": "yamnet:x", "shas": {d: "a" * 64 + "x" for d in DATASETS}}}
    with pytest.raises(ValueError, match="probes of 'yamnet' on ava carry model_sha"):
        report(swapped)


CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium/chromium-browser/google-chrome on PATH (apt: chromium)")
def test_headless_chromium_renders_the_figures(written, tmp_path):
    """A real browser decodes the four data URIs: the screenshot holds the figures' saturated colours (the
    page's own colours are pale), and roughly as many of them as the PNGs themselves."""
    out, _, _ = written
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--screenshot={shot}", "--window-size=1280,7000", (out / HTML).as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    image = imread(shot)
    assert image.shape[:2] == (7000, 1280)
    rgb = image[..., :3]
    saturated = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.4).sum())
    in_pngs = sum(int(((p[..., :3].max(axis=2) - p[..., :3].min(axis=2)) > 0.4).sum())
                  for p in (imread(out / n) for n, _ in FIGURES))
    assert saturated > 0.5 * in_pngs > 0
    assert np.isclose(rgb[5, 5], 1.0).all()  # white page background
