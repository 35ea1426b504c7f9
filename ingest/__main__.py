"""`python -m ingest shards|transfer|demo ...`: parse, call one library function, return an exit code.

Exit status: 0 clean, 3 finished with quarantined input (see catalog/<collection>/quarantine/), 1 error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ingest import demo
from ingest.config import IngestConfig
from ingest.engine import Progress as EngineProgress
from ingest.engine import Summary, build_collection, write_pretrain_diets
from ingest.sources import keep_whole, load_config, parse_cli_source
from ingest.windows import write_windows
from shards import layout, lease
from shards.configs import add_arguments, from_args, from_mapping
from shards.errors import run_command

EXIT_OK, EXIT_ERROR, EXIT_QUARANTINED = 0, 1, 3
console = Console(stderr=True)


class RichProgress(EngineProgress):
    """Clips and hours written, and speed as a multiple of real time."""

    def __init__(self, bar: Progress):
        self.bar, self.task, self.t0, self.seconds = bar, None, time.perf_counter(), 0.0

    def planned(self, clips: int, seconds: float) -> None:
        self.task = self.bar.add_task("shards", total=clips, hours=0.0, xrt=0.0)
        self.total_hours = seconds / 3600

    def shard_done(self, result) -> None:
        self.seconds += result.source_seconds
        xrt = self.seconds / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=result.clips + len(result.quarantined),
                        hours=self.seconds / 3600, xrt=xrt)


def _progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("clips · {task.fields[hours]:.2f} h · {task.fields[xrt]:.0f}× realtime"),
                    TimeRemainingColumn(), console=console, transient=False)


def _summary_table(summary: Summary) -> Table:
    table = Table(title=f"collection {summary.collection} ({summary.fingerprint})")
    for col in ("corpus", "recordings", "clips", "hours", "quarantined", "duplicates", "tails dropped"):
        table.add_column(col, justify="left" if col == "corpus" else "right")
    for name, c in sorted(summary.corpora.items()):
        table.add_row(name, str(c["recordings"]), str(c["clips"]), f"{c['seconds'] / 3600:.3f}",
                      str(c["quarantined"]), str(c["duplicates"]), str(c["tails_dropped"]))
    return table


def _run(sources, cfg: IngestConfig, purpose: str = "pretrain") -> int:
    with _progress_bar() as bar:
        summary = build_collection(sources, cfg, RichProgress(bar), purpose=purpose)
    console.print(_summary_table(summary))
    clips = sum(c["clips"] for c in summary.corpora.values())
    console.print(f"{summary.collection}: {clips} clips in {summary.shards} shards "
                  f"({summary.shards_skipped} already committed), {summary.quarantined} quarantined, "
                  f"{summary.duplicates} duplicates removed")
    for name, c in sorted(summary.corpora.items()):
        if c["held_out"]:
            console.print(f"{name}: {c['held_out']} valid/test recordings left out (pre-training uses only the "
                          "train split; ingest them with `python -m ingest transfer`)")
    if purpose == "pretrain":
        for diet, manifest in write_pretrain_diets(cfg.data).items():
            console.print(f"diet {diet}: {manifest['clips']} clips, {manifest['seconds'] / 3600:.3f} h")
    return EXIT_QUARANTINED if summary.quarantined else EXIT_OK


def cmd_shards(args: argparse.Namespace) -> int:
    settings, sources = load_config(args.config) if args.config else ({}, [])
    sources += [parse_cli_source(spec, args.domain) for spec in args.corpus or []]
    sources = keep_whole(sources, args.keep_whole or [])
    if not sources:
        raise ValueError("no corpora: give --config FILE with enabled [corpora.*] tables or --corpus NAME=ADAPTER:PATH")
    from_mapping(IngestConfig, settings, where=f"{args.config} [settings]")  # check before flags override
    cfg = from_args(IngestConfig, args, base=settings)
    if args.plan_only:
        summary = build_collection(sources, cfg, plan_only=True)
        console.print(_summary_table(summary))
        console.print(f"plan of {summary.collection}: {summary.planned_clips} clips "
                      f"({summary.planned_seconds / 3600:.3f} h) in {summary.planned_shards} shards would be written "
                      f"to {cfg.data}; {summary.quarantined} quarantined at the probe, {summary.duplicates} "
                      "duplicates (catalog/<collection>/plan.parquet)")
        return EXIT_OK
    return _run(sources, cfg)


def cmd_transfer(args: argparse.Namespace) -> int:
    """Each labelled dataset becomes its own collection, never cut: one sample per file."""
    status = EXIT_OK
    for spec in args.dataset:
        source = parse_cli_source(spec, args.domain)
        cfg = replace(from_args(IngestConfig, args), collection=source.name, clip_seconds=None)
        status = max(status, _run([source], cfg, purpose="transfer"))
        windows = write_windows(source, cfg)
        if windows:
            console.print(f"{source.name}: {windows} windows in catalog/{source.name}/windows.parquet")
    return status


def cmd_unlock(args: argparse.Namespace) -> int:
    """Break a collection's (or the diets') lease by hand, when the run that held it is dead (another host,
    a lost job)."""
    what = "the diets" if args.diets else f"collection {args.collection}"
    removed = lease.unlock(args.data, None if args.diets else layout.check_collection(args.collection))
    if removed is None:
        console.print(f"{what}: no lease to remove")
    else:
        console.print(f"{what}: removed the lease of {removed.describe()}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    path = demo.generate(args.out)
    console.print(f"demo corpora and config written: {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("shards", help="ingest pre-training corpora into a shard collection")
    p.add_argument("--config", help="corpora TOML ([settings] + [corpora.<name>] tables)")
    p.add_argument("--corpus", action="append", metavar="NAME=ADAPTER:PATH", help="a corpus (repeatable)")
    p.add_argument("--domain", choices=("speech", "nonspeech"), help="domain of --corpus folder/csv sources")
    p.add_argument("--plan-only", action="store_true",
                   help="list, probe and freeze the plan, say what would be written, and stop (no shard jobs)")
    p.add_argument("--keep-whole", action="append", metavar="NAME",
                   help="keep this folder/csv corpus's files whole instead of cutting 10-s clips (repeatable)")
    add_arguments(p, IngestConfig)
    p.set_defaults(func=cmd_shards)
    t = verbs.add_parser("transfer", help="ingest labelled transfer datasets (one collection each, never cut)")
    t.add_argument("--dataset", action="append", required=True, metavar="NAME=ADAPTER:PATH",
                   help="e.g. esc50=esc50:/data/ESC-50-master or mine=csv:/data/mine/metadata.csv")
    t.add_argument("--domain", choices=("speech", "nonspeech", "mixed"), help="domain of csv datasets")
    add_arguments(t, IngestConfig, skip=("collection", "clip_seconds", "segment_seconds", "tail", "min_tail_seconds"))
    t.set_defaults(func=cmd_transfer)
    u = verbs.add_parser("unlock", help="break the lease of a dead run on a collection or the diets (see the refusal)")
    u.add_argument("--data", required=True, help="data root: a folder or s3://bucket/prefix")
    whose = u.add_mutually_exclusive_group(required=True)
    whose.add_argument("--collection", help="the collection whose lease to break")
    whose.add_argument("--diets", action="store_true", help="break the diets' lease (diets/_LEASE)")
    u.set_defaults(func=cmd_unlock)
    d = verbs.add_parser("demo", help="synthesise the built-in demo corpora and their config")
    d.add_argument("--out", default="demo", help="folder for the demo corpora (default: demo)")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:  # shards and transfer commit shard by shard: after an I/O failure a re-run resumes
        return run_command(args, console, resumable=args.verb in ("shards", "transfer"))
    except KeyboardInterrupt:
        console.print("interrupted: committed shards are kept; re-run the same command to resume")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
