"""`python -m training pretrain ...`: parse, call `pretrain`, return an exit code (0 done or stopped cleanly
by a signal with a checkpoint written, 1 error)."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shards.configs import add_arguments, from_args, from_mapping
from shards.errors import run_command
from training.config import TrainConfig, config_names, read_config_file
from training.train import Progress as TrainProgress
from training.train import pretrain

console = Console(stderr=True)


class RichProgress(TrainProgress):
    def __init__(self, bar: Progress):
        self.bar, self.task = bar, None

    def started(self, total_steps: int, step: int) -> None:
        self.task = self.bar.add_task("pretrain", total=total_steps, completed=step, epoch=0, loss=float("nan"),
                                      rate=0.0)

    def stepped(self, step: int, epoch: int, loss: float, crops_per_s: float) -> None:
        self.bar.update(self.task, completed=step, epoch=epoch, loss=loss, rate=crops_per_s)


def cmd_pretrain(args: argparse.Namespace) -> int:
    base = read_config_file(args.config) if args.config else {}
    from_mapping(TrainConfig, base, where=f"config {args.config}")  # the file alone must be valid
    cfg = from_args(TrainConfig, args, base=base)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("steps · epoch {task.fields[epoch]} · loss {task.fields[loss]:.4f} · "
                             "{task.fields[rate]:.0f} crops/s"), TimeRemainingColumn(), console=console) as bar:
        summary = pretrain(cfg, RichProgress(bar))
    where = f"{cfg.data.rstrip('/')}/models/{summary.run}"
    if summary.stopped_by:
        console.print(f"stopped by {summary.stopped_by} at step {summary.steps}: checkpoint written to {where}; "
                      "continue with --resume")
    else:
        console.print(f"{summary.run}: {summary.steps} steps, {summary.epochs_done} epochs this run, "
                      f"last loss {summary.last_loss:.4f}; checkpoint, encoder, metrics and loss.png in {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pretrain", help="pre-train BYOL-A on a diet")
    p.add_argument("--config", help=f"a packaged config ({', '.join(config_names())}) or a .toml file; "
                                    "flags override its keys")
    add_arguments(p, TrainConfig)
    p.set_defaults(func=cmd_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args, console)


if __name__ == "__main__":
    sys.exit(main())
