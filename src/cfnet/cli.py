"""What the entry points share: the config dir and one-line reporting of user errors."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.errors import InstantiationException

from cfnet import resolvers

resolvers.register()  # before any config is composed
# Lightning-internal notices that say nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r".*is not supported by the model summary.*")
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")

# Errors caused by what the user gave (config values, paths, files), as cfnet raises them.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def _worker_message(message: str) -> str:
    """A DataLoader worker's error comes back as "Caught X in DataLoader worker process 0. Original
    Traceback …": keep only the original message, which names the file."""
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def _message(err: BaseException) -> str | None:
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        if not isinstance(cause, USER_ERRORS):
            return None
        key = next((ln[10:] for ln in str(err).splitlines() if ln.startswith("full_key: ")), "")
        return f"{key}: {cause}" if key else str(cause)
    if isinstance(err, USER_ERRORS):
        return _worker_message(str(err))
    return None


@contextmanager
def user_errors() -> Iterator[None]:
    """Report a user error as one line on stderr and exit 2; anything else keeps its traceback.

    ``HYDRA_FULL_ERROR=1`` re-raises user errors too, for the full traceback.
    """
    try:
        yield
    except Exception as err:
        message = _message(err)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
