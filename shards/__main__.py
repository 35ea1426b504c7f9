"""`python -m shards verify|diet|stats|stream DATA ...`: check shards, write diets and their stats, stream."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shards import layout
from shards.config import BACKENDS, LoaderConfig, RemoteConfig, VerifyConfig
from shards.configs import add_arguments, from_args
from shards.diets import DIETS, write_default_diets, write_diet
from shards.errors import run_command
from shards.lease import DIETS_WAIT_SECONDS
from shards.storage import Root
from shards.verify import verify

console = Console(stderr=True, soft_wrap=True)  # one line per message, whatever the width


def cmd_verify(args: argparse.Namespace) -> int:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def progress(what: str, done: int, total: int | None) -> None:
            bar.update(task, description=escape(what), completed=done, total=total)

        report = verify(args.data, args.collection, from_args(VerifyConfig, args), from_args(RemoteConfig, args),
                        progress)
    for problem in report.problems:
        console.print("[red]MISMATCH[/red]", escape(problem), highlight=False)
    result = {"ok": report.ok, "shards": report.shards, "clips": report.clips, "problems": report.problems,
              "verified": report.verified}
    print(json.dumps(result))
    console.print(f"verified {report.shards} shards, {report.clips} clips: "
                  + ("all sound" if report.ok else f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1


def cmd_diet(args: argparse.Namespace) -> int:
    if args.diet is None and not args.corpora and not args.collection:
        manifests = write_default_diets(args.data, args.wait)  # skips (with a warning) a diet that selects nothing
    else:
        manifests = {diet: write_diet(args.data, diet, args.corpora.split(",") if args.corpora else None,
                                      args.collection, args.wait) for diet in args.diet or list(DIETS)}
    for diet, manifest in manifests.items():
        console.print(f"diet {diet}: {manifest['clips']} clips, {manifest['seconds'] / 3600:.3f} h, "
                      f"{len(manifest['shards'])} shard indexes")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from shards.loader import compute_stats

    cfg = from_args(LoaderConfig, args)
    diets = args.diet
    if diets is None:  # every default diet that was written
        root = Root(args.data)
        diets = [d for d in DIETS if root.exists(layout.diet_manifest_path(d))]
        if not diets:
            raise FileNotFoundError(f"{args.data}: no diets (run `python -m shards diet {args.data}` first)")
    for diet in diets:
        stats = compute_stats(args.data, diet, cfg)
        console.print(f"diet {diet}: log-mel mean {stats['mean']:.4f}, std {stats['std']:.4f} "
                      f"over {stats['crops']} crops")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from shards.stream import stream

    report = stream(args.data, args.diet, from_args(LoaderConfig, args), backend=args.backend, batches=args.batches)
    print(json.dumps(report))
    console.print(f"{report['backend']} on {report['device']}: {report['crops_per_s']:.0f} crops/s, "
                  f"{report['mb_per_s']:.1f} MB/s read; batch {report['shape']}, mean {report['mean']:.3f}, "
                  f"std {report['std']:.3f}; corpora {report['corpus_share']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shards", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="re-read every shard: checksums, counts, decoding, catalog, idx, diets")
    v.add_argument("data", help="data root (folder or s3://bucket/prefix)")
    v.add_argument("--collection", action="append", help="only this collection (repeatable)")
    add_arguments(v, VerifyConfig)
    add_arguments(v, RemoteConfig)
    v.set_defaults(func=cmd_verify)
    d = verbs.add_parser("diet", help="write per-diet indexes over existing shards (no audio copied)")
    d.add_argument("data", help="data root")
    d.add_argument("--diet", action="append", default=None, help=f"diet name (repeatable; {', '.join(DIETS)})")
    d.add_argument("--corpora", help="comma-separated corpora for a custom diet")
    d.add_argument("--collection", action="append", help="collections to draw from (default: all complete)")
    d.add_argument("--wait", type=float, default=DIETS_WAIT_SECONDS, metavar="SECONDS",
                   help="how long to wait while another run (an ingest, another `shards diet`) writes the diets "
                        f"before refusing (default {DIETS_WAIT_SECONDS:g})")
    d.set_defaults(func=cmd_diet)
    s = verbs.add_parser("stats", help="compute a diet's log-mel normalisation stats once")
    s.add_argument("data", help="data root")
    s.add_argument("--diet", action="append", default=None, help="diet (repeatable; default: all three)")
    add_arguments(s, LoaderConfig, skip=("batch_size", "workers", "read_workers", "dali_threads", "dali_queue",
                                         "dali_read_queue"))
    s.set_defaults(func=cmd_stats)
    t = verbs.add_parser("stream", help="read a diet through a loader: throughput and a batch summary")
    t.add_argument("data", help="data root (folder, s3://bucket/prefix or https://host/prefix)")
    t.add_argument("--diet", default="all", help="diet to stream (default: all)")
    t.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: DALI on a GPU when there is one, else torch")
    t.add_argument("--batches", type=int, default=20, help="batches to time (after one warm-up batch)")
    add_arguments(t, LoaderConfig, skip=("stats_crops",))
    t.set_defaults(func=cmd_stream)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args, console)


if __name__ == "__main__":
    sys.exit(main())
