"""Which exceptions a CLI reports as one line (a user's mistake or an environment problem) rather than
a traceback (a bug): bad values, missing or unreadable paths, I/O and network failures, S3 credentials."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        pass
    return tuple(errors)


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, (FileNotFoundError, PermissionError, NotADirectoryError)):
        text += " (committed work is kept: re-run the same command to resume)"
    return text
