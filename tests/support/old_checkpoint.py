"""Checkpoints as cfnet wrote them before ``src/cfnet`` was grouped by role (commit 450fb53).

``tests/fixtures/checkpoint_before_regrouping.yaml`` holds what such a checkpoint held besides
its tensors, as that code wrote it: the run config it stores (naming ``cfnet.callbacks.*``,
``cfnet.checkpoints.AtomicCheckpointIO``, ``cfnet.loggers.wandb_logger``), its
hyper-parameters, its keys. The checkpoints are built around it here, at test time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import instantiate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_before_regrouping.yaml"


def before_regrouping() -> dict[str, Any]:
    """The fixture: ``cfnet_run`` (config YAML, overrides), ``hyper_parameters``, ``keys`` (the
    checkpoint's top-level keys) and ``callbacks`` (the state keys of its callbacks)."""
    return yaml.safe_load(FIXTURE.read_text())


def run_record_of_then(run_dir: Path) -> dict[str, Any]:
    """The ``cfnet_run`` entry of such a checkpoint lying in ``run_dir``."""
    return {**before_regrouping()["cfnet_run"], "run_dir": str(run_dir)}


def old_checkpoint(run_dir: Path) -> Path:
    """``<run_dir>/checkpoints/old.ckpt``: what evaluate, predict and export read of such a
    checkpoint (its run record and hyper-parameters) around fresh weights of the tiny model its
    hyper-parameters describe, built as a plain ``cfnet.models`` segmentor (seed 0)."""
    hparams = before_regrouping()["hyper_parameters"]
    torch.manual_seed(0)
    net = instantiate({**hparams["model"], "pretrained": None})
    path = run_dir / "checkpoints" / "old.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": hparams,
        "cfnet_run": run_record_of_then(run_dir),
    }
    torch.save(checkpoint, path)
    return path
