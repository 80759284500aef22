"""What the entry points share: the config dir, one-line reporting of user errors, and the checks
of the command line (config-group options, unknown keys, missing values) before a run starts."""

from __future__ import annotations

import difflib
import functools
import inspect
import io
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from cfnet import resolvers
from cfnet.checks import keyed

resolvers.register()  # before any config is composed
# Lightning-internal notices that say nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r".*is not supported by the model summary.*")
# Wrong for cfnet: the training stream's position is restored through the DataModule's state
# (cfnet.data.sampling), which this check of the loader's own interface does not see.
warnings.filterwarnings("ignore", message=r".*ended before the epoch ended and your dataloader.*")
# model.freeze_backbone keeps the backbone in eval mode on purpose (its BatchNorm statistics).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
# Lightning's notices that say nothing about the user's run: its adverts for its cloud services
# (litlogger, litmodels), and that cfnet's own ModelSummary callback replaces its default one.
_SILENCED = ("💡 Tip", "Trainer already configured with model summary callbacks")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith(_SILENCED)
)
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
        discard_refused_run_dir()
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def discard_refused_run_dir() -> None:
    """Remove the run dir of a single run refused before it made anything: Hydra creates the dir
    (``.hydra/`` and the job's log) before cfnet sees the config, and Lightning's CSV logger
    writes ``csv/hparams.yaml`` as a failed run ends, so a refused run (a bad value, a missing
    checkpoint, a wrong dataset root) would leave an empty-looking ``outputs/<name>/<time>/``.
    A dir holding any other file (a checkpoint, metrics, a curve) is kept, and so is the working
    directory itself and every sweep's job dir (``report`` lists failed jobs)."""
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


def _key_paths(node: DictConfig, prefix: str = "", missing: bool = False) -> Iterator[str]:
    """Every key path of a composed config (``model.heads``, ...), or with ``missing`` those
    whose value is ``???``; without resolving any value (``${hydra:...}`` is not set yet)."""
    for key in node:
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if not missing or child._is_missing():
            yield path
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            yield from _key_paths(child, f"{path}.", missing)


def closest_key(key: str, cfg: DictConfig) -> str | None:
    """The existing key ``key`` most likely meant: a sibling first (``model.head`` →
    ``model.heads``), else any key path (``modle.k`` → ``model.k``)."""
    paths = list(_key_paths(cfg))
    parent, _, name = key.rpartition(".")
    siblings = [p for p in paths if p.rpartition(".")[0] == parent]
    match = difflib.get_close_matches(name, [p.rpartition(".")[2] for p in siblings], n=1)
    if match and (parent or siblings):
        return f"{parent}.{match[0]}" if parent else match[0]
    match = difflib.get_close_matches(key, paths, n=1, cutoff=0.7)
    return match[0] if match else None


_NO_SUCH_KEY = (  # Hydra's words for an override of a key the config does not have
    re.compile(r"Could not override '([^']+)'"),
    re.compile(r"Could not delete from config\. '([^']+)' does not exist"),
)


def _composable(override: Override) -> str | None:
    """``override`` as ``compose`` takes it: a sweep by its first value; None to leave it out
    (Hydra's own settings, sweeps Hydra cannot list)."""
    if override.key_or_group.startswith("hydra"):
        return None
    if not override.is_sweep_override():
        return override.input_line
    try:
        first = next(iter(override.sweep_string_iterator()))
    except Exception:  # interval(...), glob(...): Hydra checks those itself
        return None
    return f"{override.get_key_element()}={first}"


def check_command_line(argv: list[str], config_name: str, config_dir: str = CONFIG_DIR) -> None:
    """Compose the config as Hydra will, before Hydra makes a run dir, and refuse in one line:
    an override of a key the config does not have (naming the closest existing key, where
    Hydra would suggest ``+key=...``, which only fails later), and a mandatory value (``???``)
    left unset (naming it, with the entry point's usage line as the example)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # called from inside Hydra: it has composed
        return
    try:
        with redirect_stderr(io.StringIO()):
            args, _ = get_args_parser().parse_known_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (Exception, SystemExit):  # malformed command line: Hydra reports it in its words
        return
    if args.cfg or args.help or args.hydra_help or args.info or args.config_dir or args.config_path:
        return  # Hydra prints, not runs; or a config this check does not know
    config_name = args.config_name or config_name
    if not (Path(config_dir) / f"{config_name}.yaml").is_file():
        return
    lines = [line for o in overrides if (line := _composable(o)) is not None]
    unknown: list[str] = []
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        while True:
            try:
                cfg = compose(config_name, overrides=lines)
                break
            except ConfigCompositionException as err:
                text = " ".join(str(e) for e in (err, err.__cause__) if e is not None)
                if m := re.search(r"An item is already at '([^']+)'", text):
                    raise ValueError(
                        f"+{m.group(1)}: the key exists; set it without the +: {m.group(1)}=..."
                    ) from None
                keys = [m.group(1) for pattern in _NO_SUCH_KEY if (m := pattern.search(text))]
                bad = [ln for ln in lines if keys and ln.lstrip("~+").split("=")[0] == keys[0]]
                if not bad:  # another composition error: Hydra reports it in its own words
                    return
                unknown.append(keys[0])
                lines.remove(bad[0])
            except Exception:
                return
    hints = []
    for key in unknown:
        match = closest_key(key, cfg)
        hint = f"did you mean {match}?" if match else f"see python -m cfnet.{config_name} --cfg job"
        hints.append(f"{key}: no such key in the {config_name} config; {hint}")
    for override in overrides:  # +key=value: the object built from key's parent must take it
        if override.is_add() or override.is_force_add():
            hint = _unknown_argument(cfg, override.key_or_group)
            hints += [hint] if hint else []
    if hints:
        raise ValueError("; ".join(hints))
    missing = list(_key_paths(cfg, missing=True))
    if missing:
        usage = _usage(Path(config_dir) / f"{config_name}.yaml")
        raise ValueError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required; "
            f"e.g. {usage or f'python -m cfnet.{config_name} {missing[0]}=...'}"
        )


def _unknown_argument(cfg: DictConfig, key: str) -> str | None:
    """For ``+a.b.name=...`` where ``a.b`` is built with ``_target_``: a line naming ``name`` and
    the closest argument the target has, if the target takes no ``name`` (Hydra would add the key,
    and the run would fail later, when the object is built)."""
    from hydra.utils import get_object

    parent_key, _, name = key.rpartition(".")
    if name.startswith("_") and name.endswith("_"):  # Hydra's own: _target_, _partial_, ...
        return None
    node: Any = cfg
    for part in parent_key.split(".") if parent_key else []:
        node = node._get_node(part) if isinstance(node, DictConfig) and part in node else None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        target = get_object(str(node._get_node("_target_")._value()))
        parameters = inspect.signature(target).parameters
    except Exception:  # not importable here, or no signature: the run reports it
        return None
    if name in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return None
    match = difflib.get_close_matches(name, list(parameters), n=1)
    hint = f"did you mean {parent_key}.{match[0]}?" if match else "no close match either"
    return f"{key}: {getattr(target, '__name__', target)} has no argument {name!r}; {hint}"


def _usage(config_file: Path) -> str | None:
    """An entry point's example command: the first line of its config, ``# python -m ...``,
    without its ``[optional ...]`` parts."""
    first = config_file.read_text().splitlines()[0]
    if not first.startswith("# python -m"):
        return None
    return " ".join(re.sub(r"\[[^\]]*\]", "", first.lstrip("# ")).split())


def checked_groups(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``@hydra.main`` function: on the command line (no arguments), the config-group
    options (``check_group_choices``), the keys and the mandatory values (``check_command_line``)
    are checked before Hydra composes the config and makes a run dir. The config is the one
    named like the entry point's file (``cfnet/export.py`` → ``conf/export.yaml``)."""
    config_name = Path(inspect.unwrap(main).__code__.co_filename).stem

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            with user_errors():
                check_group_choices(sys.argv[1:])
                check_command_line(sys.argv[1:], config_name)
        return main(*args, **kwargs)

    return run
