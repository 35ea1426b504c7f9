"""`python -m shards verify|diet DATA ...`: check shards; write per-diet indexes."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import track

from shards.diets import DIETS, write_diet
from shards.verify import verify

console = Console(stderr=True)


def cmd_verify(args: argparse.Namespace) -> int:
    report = verify(args.data, args.collection)
    for problem in report.problems:
        console.print("[red]MISMATCH[/red]", escape(problem), highlight=False)
    result = {"ok": report.ok, "shards": report.shards, "samples": report.samples, "problems": report.problems}
    print(json.dumps(result))
    console.print(f"verified {report.shards} shards, {report.samples} samples: "
                  + ("all sound" if report.ok else f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1


def cmd_diet(args: argparse.Namespace) -> int:
    for diet in track(args.diet, description="diets", console=console):
        manifest = write_diet(args.data, diet, args.corpora.split(",") if args.corpora else None, args.collection)
        console.print(f"diet {diet}: {manifest['samples']} samples, {manifest['seconds'] / 3600:.3f} h, "
                      f"{len(manifest['shards'])} shard indexes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shards", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="re-read every shard: checksums, counts, decoding, catalog, idx")
    v.add_argument("data", help="data root (folder or s3://bucket/prefix)")
    v.add_argument("--collection", action="append", help="only this collection (repeatable)")
    v.set_defaults(func=cmd_verify)
    d = verbs.add_parser("diet", help="write per-diet indexes over existing shards (no audio copied)")
    d.add_argument("data", help="data root")
    d.add_argument("--diet", action="append", default=None, help=f"diet name (repeatable; {', '.join(DIETS)})")
    d.add_argument("--corpora", help="comma-separated corpora for a custom diet")
    d.add_argument("--collection", action="append", help="collections to draw from (default: all complete)")
    d.set_defaults(func=cmd_diet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "diet", 0) is None:
        args.diet = list(DIETS)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        console.print("[red]error:[/red]", escape(str(err)), highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
