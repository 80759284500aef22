"""The checkpoint is the source of truth for what a model was trained on.

Every checkpoint ``cfnet.train`` writes carries its run's composed config, overrides and run dir
(``cfnet.utils.run_record``). From it:

* ``evaluate`` / ``predict`` (``dataset_from_checkpoint``) score and predict with the dataset the
  model was trained on -- name, classes, image sizes, normalisation -- unless the command line
  names a ``dataset=`` (then that one, whole) or ``dataset.*`` keys (then those, on top of the
  checkpoint's); a geometry that differs from the training data is said in one line. A model
  saved the Hub's way carries only its dataset's name (config.json): ``dataset_from_pretrained``
  uses that dataset's config of ``conf/dataset/``, with the same command-line rules.
* ``train ckpt_path=…`` (``resume_config``) continues the run with the run's own config in the
  run's own dir (``ResumeFromCommandLine``, before Hydra makes a new dir), whatever the command line
  composed by default; an override that would change the run (model, data, schedule) is refused
  in one line naming the keys, and a few that only change where or how it runs are allowed
  (``RESUME_ALLOWED``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from cfnet.cli.command_line import group_options, parse_command_line
from cfnet.cli.config import CONFIG_DIR
from cfnet.models.hub import Pretrained
from cfnet.utils.checkpoint_files import TRAINING_KEYS, read_checkpoint
from cfnet.utils.run_record import run_record

# Keys of the dataset config that say how it is read or which part of it, not what the data is:
# left out of the "differs from the training data" line (docs/evaluation.md).
DATASET_RUNTIME_KEYS = frozenset(
    {
        "root",
        "splits",  # which list files a split reads
        "sizes",  # the synthetic dataset's images per split
        "seed",  # the synthetic dataset's generator seed (as root: which instance of the data)
        "num_workers",
        "loader_timeout",
        "batch_size",
        "eval_batch_size",
        "on_bad_sample",
        "val_split",
        "test_split",
        "shuffle_seed",
        "flip",
        "scale_range",
    }
)

# Overrides a resume accepts although they change the config: where the run's data and outputs
# are, the hardware it runs on, how it loads and logs -- not the model, the data, the optimiser or
# the schedule (``trainer.max_epochs`` / ``max_steps`` included: the poly LR schedule restored from
# the checkpoint ends at the run's own length, so a longer run would train on at LR 0).
RESUME_ALLOWED = (
    "paths.",
    "dataset.root",
    "dataset.num_workers",
    "dataset.loader_timeout",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.precision",
    "trainer.sync_batchnorm",
    "trainer.log_every_n_steps",
    "logger",
    "callbacks.progress_bar",
    "callbacks.wandb_media",
    "experiment_name",
    "test",
)


# ---- evaluate / predict: the dataset of the checkpoint ---------------------------------------
def task_overrides() -> list[str]:
    """The command line's overrides (none when the config was not composed by Hydra's main)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _parsed(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def _flat(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) pairs of a nested dict; lists are leaves."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flat(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    absent = "<absent>"
    a, b = dict(_flat(old)), dict(_flat(new))
    return {
        k: (a.get(k, absent), b.get(k, absent))
        for k in sorted(a.keys() | b.keys())
        if a.get(k, absent) != b.get(k, absent)
    }


def dataset_from_checkpoint(
    cfg: DictConfig, ckpt_path: str, checkpoint: dict[str, Any], own_keys: Iterable[str] = ()
) -> str | None:
    """Replace ``cfg.dataset`` by the dataset config the checkpoint was trained with, in place.

    Kept from the composed ``cfg.dataset``: the keys the command's own config sets (``own_keys``,
    e.g. evaluate's ``test_split: ${split}``) and the ``dataset.*`` overrides of the command line;
    a ``dataset=<name>`` on the command line keeps the composed config whole. Interpolations in the
    checkpoint's dataset config (``${paths.data_dir}``) resolve on this machine. Returns the one
    line to print about it; None when the checkpoint says nothing of its data (written before
    cfnet stored it, and not in its run dir): ``cfg.dataset`` then stays as composed.
    """
    record = run_record(ckpt_path, checkpoint)
    if record is None or "dataset" not in record.config:
        return None
    explicit = _dataset_overrides()
    trained = record.config.dataset
    with open_dict(cfg):
        if any(o.key_or_group == "dataset" for o in explicit):
            used = "as given on the command line"
        else:
            changed = _replace_dataset(cfg, trained, explicit, own_keys)
            used = f"as trained (config from {record.source})" + (
                f", with {', '.join(changed)} from the command line" if changed else ""
            )
        # the checkpoint's dataset config, resolved here (same interpolation context as cfg's)
        reference = cfg.copy()
        reference.dataset = trained
        before = OmegaConf.to_container(reference.dataset, resolve=True)
        after = OmegaConf.to_container(cfg.dataset, resolve=True)
    differs = {
        k: v
        for k, v in _differences(before, after).items()
        if k.split(".")[0] not in DATASET_RUNTIME_KEYS
    }
    line = f"dataset: {cfg.dataset.name} {used}"
    if differs:
        shown = [f"{k} {_short(old)} → {_short(new)}" for k, (old, new) in differs.items()]
        if len(shown) > DIFFERENCES_SHOWN:
            more = len(shown) - DIFFERENCES_SHOWN
            shown = [*shown[:DIFFERENCES_SHOWN], f"and {more} more"]
        line += f"; differs from the training data ({trained.name}, config from "
        line += f"{record.source}): {', '.join(shown)}"
    return line


DIFFERENCES_SHOWN = 6  # keys the "differs" line names (then "and N more"): it stays one line


def _dataset_overrides() -> list[Any]:
    """The command line's ``dataset=`` and ``dataset.*`` overrides, parsed."""
    return [o for o in _parsed(task_overrides()) if o.key_or_group.split(".")[0] == "dataset"]


def _replace_dataset(
    cfg: DictConfig, dataset: DictConfig, explicit: list[Any], own_keys: Iterable[str]
) -> list[str]:
    """``cfg.dataset`` becomes a copy of ``dataset``, but for the keys the command's own config
    sets (``own_keys``) and the command line's ``dataset.*`` overrides (``explicit``), which keep
    their composed values (raw: ``${split}`` stays an interpolation). Returns the overridden keys,
    as the command line names them. (``cfg`` open for new keys.)"""
    composed = OmegaConf.to_container(cfg.dataset, resolve=False)
    replaced = OmegaConf.create(OmegaConf.to_container(dataset))
    keys = [*own_keys, *(o.key_or_group[len("dataset.") :] for o in explicit)]
    for key in keys:
        value: Any = composed
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        OmegaConf.update(replaced, key, value, merge=False, force_add=True)
    for o in explicit:
        if o.is_delete():
            replaced.pop(o.key_or_group[len("dataset.") :], None)
    cfg.dataset = replaced
    return [o.key_or_group for o in explicit]


def dataset_from_pretrained(
    cfg: DictConfig, found: Pretrained, own_keys: Iterable[str] = ()
) -> str:
    """``dataset_from_checkpoint`` for a model saved the Hub's way (``found``): its config.json
    names the dataset it was trained on, and ``cfg.dataset`` becomes that dataset's config of
    ``conf/dataset/`` (``own_keys`` and the command line's ``dataset.*`` kept), unless the command
    line names a ``dataset=``. Returns the one line to print about it; a config.json that names no
    dataset this cfnet has a config for, with none on the command line, is refused in one line."""
    explicit = _dataset_overrides()
    if any(o.key_or_group == "dataset" for o in explicit):
        return f"dataset: {cfg.dataset.name} as given on the command line"
    name = found.config["dataset"]
    options = group_options(Path(CONFIG_DIR) / "dataset")
    if name not in options:
        said = "no dataset" if name is None else f"dataset {name!r}, which cfnet has no config for"
        raise ValueError(
            f"{found.config_name} names {said}: pass dataset=<one of {', '.join(options)}>"
        )
    with open_dict(cfg):
        changed = _replace_dataset(cfg, _dataset_config(name), explicit, own_keys)
    with_keys = f", with {', '.join(changed)} from the command line" if changed else ""
    return f"dataset: {name} as named by {found.config_name}{with_keys}"


def _dataset_config(name: str) -> DictConfig:
    """``conf/dataset/<name>.yaml`` as Hydra composes the group (interpolations unresolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"+dataset={name}"]
    if GlobalHydra.instance().is_initialized():
        return compose(overrides=overrides).dataset
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(overrides=overrides).dataset


def _short(value: Any, limit: int = 40) -> str:
    """A config value as the "differs" line shows it: a long list is cut short."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- train: resume with the run's own config, in its own dir --------------------------------
def _hydra_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ResumeFromCommandLine:
    """``train ckpt_path=<run>/…`` on the command line: the checkpoint is read once, before Hydra
    composes, and its contents go on to the run (``checkpoint``) instead of being read again.

    ``run_dir_overrides`` (``cfnet.cli.entry_point.hydra_main``'s ``before``) reads it -- a
    missing or unreadable file is refused in one line before Hydra makes a run dir -- and returns
    the Hydra overrides that make the run continue in the checkpoint's own run dir, with no
    ``.hydra/`` output (the run's record of how it was started stays as it was): nothing when the
    command line names a run dir, sweeps, or the checkpoint lies outside a run dir.
    """

    def __init__(self) -> None:
        self._read: tuple[str, dict[str, Any]] | None = None  # (absolute path, contents)

    def run_dir_overrides(self, argv: list[str]) -> list[str]:
        command_line = parse_command_line(argv)
        if command_line is None or command_line.options.multirun:
            return []  # malformed: Hydra reports it; a sweep: each job reads its own
        overrides = command_line.overrides
        ckpt = next((o.value() for o in overrides if o.key_or_group == "ckpt_path"), None)
        if not ckpt or not isinstance(ckpt, str):
            return []
        checkpoint = read_checkpoint(ckpt, "checkpoint to resume from", require=TRAINING_KEYS)
        self._read = (os.path.abspath(os.path.expanduser(ckpt)), checkpoint)
        if any(o.key_or_group.startswith("hydra.run") for o in overrides):
            return []
        record = run_record(ckpt, checkpoint)
        if record is None or record.run_dir is None:
            return []
        return [f"hydra.run.dir={_hydra_quote(str(record.run_dir))}", "hydra.output_subdir=null"]

    def checkpoint(self, ckpt_path: str) -> dict[str, Any]:
        """The contents of ``ckpt_path``: those read from the command line when it is that file
        (handed over once), else read now."""
        path = os.path.abspath(os.path.expanduser(ckpt_path))
        if self._read is not None and self._read[0] == path:
            checkpoint, self._read = self._read[1], None
            return checkpoint
        return read_checkpoint(ckpt_path, "checkpoint to resume from", require=TRAINING_KEYS)


def _allowed(key: str) -> bool:
    return any(key == p.rstrip(".") or key.startswith(p.rstrip(".") + ".") for p in RESUME_ALLOWED)


def _compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        cfg = compose("train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def resume_config(
    cfg: DictConfig, checkpoint: dict[str, Any], given: list[str]
) -> tuple[DictConfig, list[str]]:
    """The config to resume ``cfg.ckpt_path`` with, and the overrides to record with it.

    ``cfg`` was composed by Hydra's main from the command line's overrides ``given``. The result
    is the run's own composed config (``run_record``), plus the overrides that ``RESUME_ALLOWED``
    lets through; any other override that changes the run's config is refused in one line.
    Without a record of the run (an old checkpoint moved out of its run dir), ``cfg`` as composed.
    """
    from hydra.core.hydra_config import HydraConfig

    record = run_record(cfg.ckpt_path, checkpoint)
    if record is None:
        print(
            f"note: {cfg.ckpt_path} carries no run config (written before cfnet stored it, and "
            "no run dir next to it): resuming with the config of this command line"
        )
        return cfg, given
    user = [o for o in _parsed(given) if o.key_or_group != "ckpt_path"]
    user_keys = {o.key_or_group for o in user}
    recorded = [o for o in _parsed(record.overrides) if o.key_or_group != "ckpt_path"]
    original = [o.input_line for o in recorded if o.key_or_group not in user_keys]
    config = record.config
    if user:
        changes = _differences(
            _compose([o.input_line for o in recorded]),  # the run's config, from today's conf/
            _compose(original + [o.input_line for o in user]),  # … with this command line's
        )
        refused = {k: v for k, v in changes.items() if not _allowed(k)}
        if refused:
            what = ", ".join(f"{k} ({old} → {new})" for k, (old, new) in refused.items())
            raise ValueError(
                f"resuming {cfg.ckpt_path} continues its run as configured; these overrides "
                f"would change its model, data or schedule: {what}. Drop them to resume, or "
                "start a new run (without ckpt_path) to train another configuration; to train "
                f"on from these weights, start it with model.init_from={cfg.ckpt_path}"
            )
        config = OmegaConf.create(OmegaConf.to_container(config))
        for key, (_, new) in changes.items():
            if new == "<absent>":
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(config, parent) if parent else config
                if node is not None:
                    node.pop(leaf, None)
            else:
                OmegaConf.update(config, key, new, merge=False, force_add=True)
    config = OmegaConf.create(OmegaConf.to_container(config))
    config.ckpt_path = cfg.ckpt_path
    OmegaConf.set_struct(config, True)
    where = HydraConfig.get().runtime.output_dir
    print(f"resuming {cfg.ckpt_path} with its run's config ({record.source}) in {where}")
    return config, original + [o.input_line for o in user]
