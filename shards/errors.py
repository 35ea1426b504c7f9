"""Which exceptions a CLI reports as one line (a user's mistake or an environment problem) rather than
a traceback (a bug): bad values, missing or unreadable paths, I/O and network failures, S3 credentials."""

from __future__ import annotations

import argparse
from typing import Any


def user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        pass
    return tuple(errors)


RESUME_HINT = " (committed work is kept: re-run the same command to resume)"


def one_line(err: BaseException, resumable: bool = False) -> str:
    """The error's first line. `resumable`: the command commits its work piece by piece (ingest writing
    shards), so after an I/O failure a re-run resumes: say so. Read-only commands (verify, stream, diet)
    have nothing to resume and keep the default."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if resumable and isinstance(err, OSError) and \
            not isinstance(err, (FileNotFoundError, PermissionError, NotADirectoryError)):
        text += RESUME_HINT
    return text


def run_command(args: argparse.Namespace, console: Any, resumable: bool = False) -> int:
    """The one way every CLI (`python -m ingest|shards|training`) runs its verb: `args.func(args)`'s exit
    code, or, for a user's mistake or an environment problem, one red line (never wrapped, whatever the
    terminal's width) and exit code 1."""
    from rich.markup import escape

    try:
        return args.func(args)
    except user_errors() as err:
        console.print("[red]error:[/red]", escape(one_line(err, resumable=resumable)), highlight=False, soft_wrap=True)
        return 1
