"""`python -m featurestore items|embed|describe|sql|knn|convert-yamnet ...`: parse, call one library
function, print a summary line, return an exit code (0 done, 1 a user's error, one line)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from shards.errors import run_command
from shards.storage import Root

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} items/s" if task.speed else "… items/s")


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeRemainingColumn(), console=console)


def _progress(bar: Progress):
    tasks: dict[str, int] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return update


def cmd_items(args: argparse.Namespace) -> int:
    from featurestore.items import datasets, write_items

    root = Root(args.data)
    for dataset in args.dataset or datasets(root):
        n, sub = write_items(root, dataset)
        console.print(f"{dataset}: {n} items, {sub} in the RSA/t-SNE subsets")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from featurestore.config import EmbedConfig
    from featurestore.embed import embed

    cfg = EmbedConfig(data=args.data, models=tuple(args.model or ()), datasets=tuple(args.dataset or ()),
                      norm_mean=args.norm_mean, norm_std=args.norm_std, stats_diet=args.stats_diet,
                      device=args.device, workers=args.workers, scheduler=args.scheduler, replace=args.replace,
                      pooling=args.pooling)
    start = time.perf_counter()
    with _bar() as bar:
        results = embed(cfg, _progress(bar))
    for r in results:
        console.print(f"{r.model} × {r.dataset}: {r.rows} items {'already stored' if r.skipped else 'embedded'} "
                      f"(model_sha {r.model_sha})")
    console.print(f"embed: {len(results)} (model, dataset) pairs in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from featurestore.config import DescribeConfig
    from featurestore.describe import describe

    cfg = DescribeConfig(data=args.data, datasets=tuple(args.dataset or ()), subset=args.subset,
                         pitch=args.pitch, workers=args.workers, scheduler=args.scheduler)
    with _bar() as bar:
        results = describe(cfg, _progress(bar))
    for dataset, rows in results.items():
        console.print(f"{dataset}: {rows} items described")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from featurestore.sql import query, write_result

    result = query(Root(args.data), args.query)
    if args.out:
        path = write_result(result, args.out)
        console.print(f"{result.num_rows} rows written to {path}")
        return 0
    import polars as pl

    with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        print(pl.from_arrow(result))
    return 0


def cmd_knn(args: argparse.Namespace) -> int:
    from featurestore.knn import knn

    for rank, n in enumerate(knn(Root(args.data), args.model, args.key, args.k, args.dataset), 1):
        print(f"{rank}\t{n.distance:.6f}\t{n.key}\t{n.label}")
    return 0


def cmd_convert_yamnet(args: argparse.Namespace) -> int:
    from featurestore.yamnet import convert_keras_h5

    out = convert_keras_h5(args.h5, args.out)
    console.print(f"YAMNet weights converted: {out} (use the model id yamnet:{out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m featurestore", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_)
        p.set_defaults(func=func)
        return p

    p = verb("items", cmd_items, "(re)build the items and rsa_items tables of transfer datasets")
    p.add_argument("--data", default="./data")
    p.add_argument("--dataset", action="append", help="a transfer dataset (repeatable; default: all present)")

    p = verb("embed", cmd_embed, "embed datasets' items with models into store/embeddings/")
    p.add_argument("--data", default="./data")
    p.add_argument("--model", action="append", help="model id, repeatable: run:<run>, byola-v2:random[:tiny], "
                   "byola-v1:random, byola-v1:<file>, wavlm-base-plus:<file>, yamnet:<file>")
    p.add_argument("--dataset", action="append", help="a transfer dataset (repeatable; default: all present)")
    p.add_argument("--norm-mean", type=float, help="log-mel mean for models without stats of their own")
    p.add_argument("--norm-std", type=float, help="log-mel std for models without stats of their own")
    p.add_argument("--stats-diet", help="take a diet's stats for models without their own")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--workers", type=int, default=0, help="local worker processes over shards (0: this process)")
    p.add_argument("--scheduler", help="Dask scheduler address: embed the shards on that cluster")
    p.add_argument("--replace", action="store_true", help="overwrite another model's rows stored under the same name")
    p.add_argument("--pooling", default="auto", help="windows of long recordings (AVA): windows (each from its own "
                   "audio, the reference), frames (pooled from the recording's frames, BYOL-A), or auto (frames "
                   "where a sample is within tolerance of per-window)")

    p = verb("describe", cmd_describe, "acoustic descriptors of items into store/descriptors/")
    p.add_argument("--data", default="./data")
    p.add_argument("--dataset", action="append", help="a transfer dataset (repeatable; default: all present)")
    p.add_argument("--subset", default="rsa", help="rsa (the RSA items, default), tsne, or all")
    p.add_argument("--pitch", action=argparse.BooleanOptionalAction, default=True, help="YIN pitch and periodicity")
    p.add_argument("--workers", type=int, default=0, help="local worker processes (0: this process)")
    p.add_argument("--scheduler", help="Dask scheduler address")

    p = verb("sql", cmd_sql, "run one read-only SQL query over the store's views")
    p.add_argument("query")
    p.add_argument("--data", default="./data")
    p.add_argument("--out", help="write the result to a .csv or .parquet file instead of printing it")
    p.add_argument("--max-rows", type=int, default=40, help="rows to print")

    p = verb("knn", cmd_knn, "exact cosine nearest neighbours of one item")
    p.add_argument("--data", default="./data")
    p.add_argument("--model", required=True, help="the store's model name (e.g. run-all-v2-s42, byola-v2-random)")
    p.add_argument("--key", required=True, help="the item's key")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--dataset", action="append", help="search only these datasets (default: all)")

    p = verb("convert-yamnet", cmd_convert_yamnet, "convert the official Keras yamnet.h5 to our torch file")
    p.add_argument("h5")
    p.add_argument("out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args, console)


if __name__ == "__main__":
    sys.exit(main())
