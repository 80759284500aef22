"""What a checkpoint says about the run that wrote it: its composed config, overrides and run dir.

Every checkpoint ``cfnet.train`` writes carries them (``RunConfigCheckpoint``: the YAML of
``.hydra/config.yaml``, the command-line overrides and the run dir, under ``KEY``), and
``run_record`` reads them back: ``cfnet.cli.run_config`` to evaluate or predict with the data the
model was trained on and to resume a run in its own dir with its own config, the notebooks to find
a run's curves and settings. Checkpoints written before cfnet stored this fall back to the
``.hydra/config.yaml`` of the run dir they lie in, when there is one (and its classes match the
checkpoint's).

A config names classes by module path (``_target_``), and some of those paths changed when
``src/cfnet`` was grouped by role: ``run_record`` reads a config of before with today's names
(``MOVED``), so that its run can still be resumed, evaluated and predicted from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

KEY = "cfnet_run"  # checkpoint[KEY] = {"config": yaml, "overrides": [...], "run_dir": str}

# Module paths a stored train config may name (``_target_``) → where they are now: the classes
# and functions of cfnet.callbacks, cfnet.checkpoints and cfnet.loggers before src/cfnet was grouped
# by role. (cfnet.lit.SegmentationModule, cfnet.models.*, cfnet.data.* kept their paths.)
MOVED = {
    "cfnet.callbacks.SegmentationReport": "cfnet.lit.reports.SegmentationReport",
    "cfnet.callbacks.BadSampleReport": "cfnet.lit.reports.BadSampleReport",
    "cfnet.callbacks.ModelSummary": "cfnet.lit.reports.ModelSummary",
    "cfnet.callbacks.RNGStateCheckpoint": "cfnet.lit.resume.RNGStateCheckpoint",
    "cfnet.callbacks.PreemptionCheckpoint": "cfnet.lit.resume.PreemptionCheckpoint",
    "cfnet.callbacks.WandbSegmentation": "cfnet.lit.wandb_logging.WandbSegmentation",
    "cfnet.callbacks.WandbCooccurrence": "cfnet.lit.wandb_logging.WandbCooccurrence",
    "cfnet.checkpoints.AtomicCheckpointIO": "cfnet.lit.checkpoint_io.AtomicCheckpointIO",
    "cfnet.loggers.wandb_logger": "cfnet.lit.wandb_logging.wandb_logger",
}
_MOVED_NAME = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, MOVED)) + r")(?![\w.])")


def with_current_names(text: str) -> str:
    """A stored config (YAML) or override with the module paths of ``MOVED`` renamed."""
    return _MOVED_NAME.sub(lambda m: MOVED[m.group(1)], text)


@dataclass(frozen=True)
class RunRecord:
    """What a checkpoint says about the run that wrote it."""

    config: DictConfig  # the composed config, unresolved (as in .hydra/config.yaml)
    overrides: list[str]  # the run's command-line overrides
    run_dir: Path | None  # the run dir the checkpoint lies in, when it still does
    source: str  # "the checkpoint" or the .hydra/config.yaml path it came from


class RunConfigCheckpoint(L.Callback):
    """Stores the run's composed config, overrides and run dir in every checkpoint it writes
    (plain strings: the checkpoint stays readable with ``torch.load(weights_only=True)``)."""

    def __init__(self, config: DictConfig, overrides: Iterable[str]) -> None:
        if "classes" in config.get("dataset", {}):  # dataset=folder: classes.txt, as trained
            config = config.copy()
            config.dataset.classes = OmegaConf.to_container(config.dataset.classes, resolve=True)
        self.yaml = OmegaConf.to_yaml(config, resolve=False)
        self.overrides = list(overrides)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        run_dir = os.path.abspath(trainer.default_root_dir)
        checkpoint[KEY] = {"config": self.yaml, "overrides": self.overrides, "run_dir": run_dir}


def _run_dir_of(ckpt_path: Path, stored: str | None) -> Path | None:
    """``<run>`` for ``<run>/checkpoints/*.ckpt`` and ``<run>/hpc_ckpt_*.ckpt``, when ``<run>``
    is the dir the run wrote (the one stored, or one with Hydra's ``.hydra/config.yaml``)."""
    path = Path(os.path.abspath(ckpt_path))
    candidate = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if stored and Path(stored).is_dir() and os.path.samefile(stored, candidate):
        return Path(stored)
    if (candidate / ".hydra" / "config.yaml").is_file():
        return candidate
    return None


def run_record(ckpt_path: str | Path, checkpoint: dict[str, Any]) -> RunRecord | None:
    """The run's config from the checkpoint, else from the ``.hydra/`` of the run dir it lies in
    (older checkpoints); None when neither is there."""
    stored = checkpoint.get(KEY) if isinstance(checkpoint, dict) else None
    if isinstance(stored, dict) and isinstance(stored.get("config"), str):
        config = OmegaConf.create(with_current_names(stored["config"]))
        overrides = [with_current_names(str(o)) for o in stored.get("overrides", [])]
        run_dir = _run_dir_of(Path(ckpt_path), stored.get("run_dir"))
        return RunRecord(config, overrides, run_dir, "the checkpoint")
    run_dir = _run_dir_of(Path(ckpt_path), None)
    if run_dir is None:
        return None
    config_file = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.create(with_current_names(config_file.read_text()))
    trained = checkpoint.get("hyper_parameters", {}).get("class_names")
    names = OmegaConf.select(config, "dataset.class_names", default=None)
    if names is None or OmegaConf.to_container(names) != trained:
        return None  # a checkpoint copied into another run's dir: that config is not its own
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
    overrides = [with_current_names(str(o)) for o in overrides]
    return RunRecord(config, overrides, run_dir, str(config_file))
