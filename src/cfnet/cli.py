"""What the entry points share: the config dir, one-line reporting of user errors, and the check
of config-group options on the command line."""

from __future__ import annotations

import functools
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import InstantiationException
from lightning.fabric.utilities.exceptions import MisconfigurationException

from cfnet import resolvers

resolvers.register()  # before any config is composed
# Lightning-internal notices that say nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r".*is not supported by the model summary.*")
# Wrong for cfnet: the training stream's position is restored through the DataModule's state
# (cfnet.data.sampling), which this check of the loader's own interface does not see.
warnings.filterwarnings("ignore", message=r".*ended before the epoch ended and your dataloader.*")
# The configs: conf/ at the repository root (checkout, editable install), else the copy an
# installed wheel carries as the data package cfnet.conf (pyproject.toml maps conf/ there).
_CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"
_WHEEL_CONF = Path(__file__).resolve().parent / "conf"
CONFIG_DIR = str(_WHEEL_CONF if _WHEEL_CONF.is_dir() else _CHECKOUT_CONF)

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


def _message(err: BaseException) -> str | None:
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        while isinstance(cause, InstantiationException):  # an object built by another one
            cause = cause.__cause__
        if not isinstance(cause, USER_ERRORS):
            return None
        key = next((ln[10:] for ln in str(err).splitlines() if ln.startswith("full_key: ")), "")
        return f"{key}: {cause}" if key else str(cause)
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
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def group_options(group_dir: Path) -> list[str]:
    """The options of a config group: its YAML files (``table2/acf`` for a sub-folder's), minus
    the ``_``-prefixed partials the group's options include (``_defaults``)."""
    return sorted(
        str(path.relative_to(group_dir).with_suffix(""))
        for path in group_dir.rglob("*.yaml")
        if not any(part.startswith("_") for part in path.relative_to(group_dir).parts)
    )


def check_group_choices(argv: list[str], config_dir: str = CONFIG_DIR) -> None:
    """Refuse ``group=option`` overrides naming an option that ``conf/<group>/`` does not have.

    Hydra reports an unknown option over many lines (every file in the folder, partials included,
    and the search path), before any cfnet code runs; this says it in one line, first.
    """
    try:
        with redirect_stderr(io.StringIO()):  # argparse's usage text: Hydra prints it itself
            args, _ = get_args_parser().parse_known_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (Exception, SystemExit):  # malformed command line: Hydra reports it in its words
        return
    for override in overrides:
        group = override.key_or_group
        group_dir = Path(config_dir) / group
        # (hydra/...: options come from Hydra's plugins too, e.g. hydra/launcher=submitit_slurm)
        if (
            override.is_delete()
            or "." in group
            or group.startswith("hydra")
            or not group_dir.is_dir()
        ):
            continue
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue  # Hydra matches a glob against the options itself
        try:
            sweep = override.is_sweep_override()
            choices = list(override.sweep_string_iterator()) if sweep else [override.value()]
        except Exception:  # a sweep Hydra cannot list (interval(...)): Hydra reports it
            continue
        options = group_options(group_dir)
        for choice in choices:
            if choice is None or "${" in str(choice):  # null, or resolved later by Hydra
                continue
            if str(choice) not in options:
                top = [o for o in options if "/" not in o]
                raise ValueError(
                    f"{override.key_or_group}={choice}: no such option in conf/"
                    f"{override.key_or_group}/; allowed: {', '.join(top)}"
                )


def checked_groups(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``@hydra.main`` function: on the command line (no arguments), the config-group
    options are checked (``check_group_choices``) before Hydra composes the config."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            with user_errors():
                check_group_choices(sys.argv[1:])
        return main(*args, **kwargs)

    return run
