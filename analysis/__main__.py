"""`python -m analysis probe|rsa|tsne|report ...`: the study's analyses over the feature store only
(never audio or models). Each verb calls one library function, prints its summary, and returns an exit
code (0 done, 1 a user's error, one line)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from rich.console import Console

from shards.errors import run_command

console = Console(stderr=True)


def _list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_probe(args: argparse.Namespace) -> int:
    from analysis.probing import probe

    start = time.perf_counter()

    def done(model: str, task: str, rows) -> None:
        scores = rows["test_score"].to_pylist()
        console.print(f"  {model} on {task}: {rows['metric'][0].as_py()} "
                      + ", ".join(f"{s:.3f}" for s in scores) + f" ({len(scores)} seeds)")

    summary, pairs = probe(args.data, _list(args.models), _list(args.datasets), args.seeds, args.protocol,
                           args.resamples, args.device, done, args.buffer_mb)
    for row in summary.to_pylist():
        console.print(f"{row['model']} · {row['task']}: {row['metric']} {row['mean']:.3f} ± {row['sd']:.3f} "
                      f"(95 % CI {row['ci_low']:.3f}–{row['ci_high']:.3f}, {row['n_seeds']} seeds)")
    console.print(f"probe: {summary.num_rows} (model, task) results, {pairs.num_rows} paired differences in "
                  f"{time.perf_counter() - start:.1f} s; tables probes, predictions, probe_summary, probe_pairs")
    return 0


def cmd_rsa(args: argparse.Namespace) -> int:
    from analysis.similarity import rsa

    start = time.perf_counter()
    rows, pairs, summary = rsa(args.data, _list(args.models), _list(args.datasets), args.permutations, args.test,
                               lambda d: console.print(f"  rsa {d} done"))
    kept = sum(rows["significant"].to_pylist())
    console.print(f"rsa: {rows.num_rows} model×descriptor tests ({kept} significant after BH), "
                  f"{pairs.num_rows} model×model tests, {summary.num_rows} summary rows in "
                  f"{time.perf_counter() - start:.1f} s")
    return 0


def cmd_tsne(args: argparse.Namespace) -> int:
    from analysis.similarity import tsne

    points = tsne(args.data, args.model, _list(args.datasets))
    console.print(f"tsne: {points.num_rows} points of {len(set(points['dataset'].to_pylist()))} datasets")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.reporting import report

    written = report(args.data, args.name, args.banner)
    console.print(f"report: {len(written)} files; open {written[-1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("probe", help="linear probes per model, task and seed; summary and paired intervals")
    p.add_argument("--data", default="./data")
    p.add_argument("--models", help="comma-separated store model names (default: every model embedded)")
    p.add_argument("--datasets", help="comma-separated datasets (default: every dataset a model has)")
    p.add_argument("--seeds", type=int, default=5, help="probe seeds per (model, task)")
    p.add_argument("--protocol", default="paper", help="paper (default) or evar")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples for the intervals")
    p.add_argument("--device", help="cpu or cuda (default: the GPU when present)")
    p.add_argument("--buffer-mb", type=int, help="training shuffle buffer in MiB (default 256; a probe holds "
                   "about two buffers and a part, whatever the table's size)")
    p.set_defaults(func=cmd_probe)

    p = verbs.add_parser("rsa", help="RSA of models vs acoustic descriptors and models vs models")
    p.add_argument("--data", default="./data")
    p.add_argument("--models", help="comma-separated store model names (default: all)")
    p.add_argument("--datasets", help="comma-separated datasets (default: all described)")
    p.add_argument("--permutations", type=int, default=10_000, help="Mantel permutations per test")
    p.add_argument("--test", default="mantel", help="mantel (default, one-sided) or spearman (plain p)")
    p.set_defaults(func=cmd_rsa)

    p = verbs.add_parser("tsne", help="2-D t-SNE of each dataset's t-SNE items (Fig. 2)")
    p.add_argument("--data", default="./data")
    p.add_argument("--model", help="store model name (default: the BYOL-A (all) run)")
    p.add_argument("--datasets", help="comma-separated datasets (default: all the model has)")
    p.set_defaults(func=cmd_tsne)

    p = verbs.add_parser("report", help="write DATA/reports/<name>/ (report.html, report.md, figures)")
    p.add_argument("--data", default="./data")
    p.add_argument("--name", default="study")
    p.add_argument("--banner", help="a line at the top of the report (the demo says it is not the study)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args, console)


if __name__ == "__main__":
    sys.exit(main())
