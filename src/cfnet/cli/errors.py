"""User errors reported as one line: what the user gave (a value, a path, a file) is named, and
the process exits with status 2 instead of printing a traceback; a run dir Hydra made for a run
refused before it did anything is removed."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from cfnet.utils.checks import keyed

# Errors caused by what the user gave (config values, paths, files), as cfnet raises them;
# Lightning's for a misconfigured Trainer; and a training run that diverged (non-finite loss).
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    MisconfigurationException,
    FloatingPointError,
)


def _worker_message(message: str) -> str:
    """A DataLoader worker's error comes back as "Caught X in DataLoader worker process 0. Original
    Traceback …": keep only the original message, which names the file."""
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def constructor_error(err: InstantiationException) -> BaseException | None:
    """What the constructor itself raised, under Hydra's wrapper (one per object that built
    another)."""
    cause = err.__cause__
    while isinstance(cause, InstantiationException):
        cause = cause.__cause__
    return cause


def resolver_error(err: InterpolationResolutionError) -> BaseException | None:
    """What a resolver itself raised (``${folder_classes:...}``: a missing ``classes.txt``), under
    OmegaConf's wrappers (one per interpolation that led to it)."""
    inner: BaseException | None = err
    while isinstance(inner, InterpolationResolutionError):
        inner = inner.__cause__ or inner.__context__
    return inner


def _message(err: BaseException) -> str | None:
    if isinstance(err, InterpolationResolutionError):
        cause = resolver_error(err)
        return str(cause) if isinstance(cause, USER_ERRORS) else None
    if isinstance(err, MissingMandatoryValue):  # (check_command_line reports these first)
        return f"{err.full_key} is required and has no value; pass {err.full_key}=<value>"
    if isinstance(err, InstantiationException):
        cause = constructor_error(err)
        if not isinstance(cause, USER_ERRORS):
            return None
        key = next((ln[10:] for ln in str(err).splitlines() if ln.startswith("full_key: ")), "")
        return keyed(key, str(cause)) if key else str(cause)
    if isinstance(err, USER_ERRORS):
        return _worker_message(str(err))
    if isinstance(err, RuntimeError) and str(err).startswith("DataLoader timed out"):
        return (  # cfnet.data.inflight prints the file the silent worker was reading, at exit
            f"{err} (dataset.loader_timeout): a loader worker sent no batch in that time, e.g. "
            "stuck reading a file (a stalled filesystem); its file is named below"
        )
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
        discard_empty_run_dir()
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def discard_empty_run_dir() -> None:
    """Remove the run dir of a single run that made nothing in it: Hydra creates the dir
    (``.hydra/`` and the job's log) before cfnet sees the config, and Lightning's CSV logger
    writes ``csv/hparams.yaml`` as a failed run ends, so a refused run (a bad value, a missing
    checkpoint, a wrong dataset root), and a command that wrote elsewhere or nothing
    (``cfnet.export output=<dir>``, ``cfnet.stats``), would leave an empty-looking
    ``outputs/<name>/<time>/``. A dir holding any other file (a checkpoint, metrics, a curve) is
    kept, and so is the working directory itself and every sweep's job dir (``report`` lists
    failed jobs)."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.RUN or not hydra_cfg.runtime.output_dir:
        return
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    cwd = Path(hydra_cfg.runtime.cwd).resolve()
    if run_dir == cwd or not run_dir.is_dir() or cwd.is_relative_to(run_dir):
        return
    setup = {f"{hydra_cfg.job.name}.log", "csv/hparams.yaml"}
    subdir = hydra_cfg.output_subdir or ".hydra"
    for path in run_dir.rglob("*"):
        name = path.relative_to(run_dir).as_posix()
        if path.is_file() and name not in setup and path.parts[len(run_dir.parts)] != subdir:
            return
    logging.shutdown()  # close the job's log file before it goes
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:  # outputs/<name>/, outputs/ when this run made them
        if parent == cwd or not parent.is_relative_to(cwd):
            break
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
