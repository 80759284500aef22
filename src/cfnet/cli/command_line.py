"""The command line, parsed as Hydra parses it, and checked before a run starts: config-group
options, unknown keys (with the closest existing key) and missing mandatory values, each refused in
one line before Hydra composes the config and makes a run dir."""

from __future__ import annotations

import argparse
import difflib
import inspect
import io
import re
from collections.abc import Iterator
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from cfnet.cli.config import CONFIG_DIR


@dataclass(frozen=True)
class CommandLine:
    """A command line as Hydra reads it: its options (``--cfg``, ``-m``, ...) and its overrides."""

    options: argparse.Namespace
    overrides: list[Override]


def parse_command_line(argv: list[str]) -> CommandLine | None:
    """``argv`` (``sys.argv[1:]``) parsed with Hydra's own parser, before Hydra runs; None when
    it is malformed, which Hydra then reports in its own words."""
    try:
        with redirect_stderr(io.StringIO()):  # argparse's usage text: Hydra prints it itself
            options, _ = get_args_parser().parse_known_args(argv)
        overrides = OverridesParser.create().parse_overrides(options.overrides)
    except (Exception, SystemExit):
        return None
    return CommandLine(options, overrides)


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
    command_line = parse_command_line(argv)
    for override in command_line.overrides if command_line else []:
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
    left unset (naming it, with the entry point's usage line as the example). With ``--cfg``
    (Hydra prints the config instead of running) the keys are checked, not the values."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # called from inside Hydra: it has composed
        return
    command_line = parse_command_line(argv)
    if command_line is None:
        return
    args, overrides = command_line.options, command_line.overrides
    if args.help or args.hydra_help or args.info or args.config_dir or args.config_path:
        return  # Hydra prints its help, or a config this check does not know
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
    missing = [] if args.cfg else list(_key_paths(cfg, missing=True))
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
