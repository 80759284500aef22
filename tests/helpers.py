"""Test helpers: the tiny-run config, subprocess entry points, an interruption callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L

# A run that exercises the whole application in seconds: 64² synthetic images, a tiny backbone.
TINY_RUN = [
    "model.backbone=resnet10t",
    "model.channels=16",
    "model.aux_channels=8",
    "model.heads=2",
    "dataset.sizes={train:8,val:5,test:4}",
    "dataset.image_size=64",
    "dataset.base_size=64",
    "dataset.crop_size=64",
    "dataset.batch_size=4",
    "dataset.eval_batch_size=2",
    "trainer.max_epochs=1",
    "trainer.precision=32-true",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "~callbacks.progress_bar",
]


# The same for the file datasets' tiny trees (12×16-pixel images): small crops, a tiny model.
TINY_FILE_RUN = [
    "dataset.base_size=16",
    "dataset.crop_size=12",
    "dataset.num_workers=0",
    "dataset.batch_size=2",
    "model.backbone=resnet10t",
    "model.channels=16",
    "model.aux_channels=8",
    "model.heads=2",
    "trainer.precision=32-true",
    "~callbacks.progress_bar",
]


def run_cli(module: str, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """Run ``python -m <module> <args>`` as a user would; returns the CompletedProcess."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python -m {module} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def train_in_process(cfg_overrides: list[str], output_dir: Path) -> dict[str, float]:
    """``cfnet.train`` without a subprocess (the same compose + ``train(cfg)``), run dir given."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cfnet.train import train
    from conftest import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=cfg_overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir)
        del cfg.hydra
    return train(cfg)


def make_checkpoint(tmp_path: Path, dataset: str) -> Path:
    """A randomly initialised tiny model with the classes of ``dataset``, saved as a checkpoint
    (the two keys ``SegmentationModule.from_checkpoint`` reads)."""
    import torch
    from hydra.utils import instantiate

    from conftest import compose_config

    cfg = compose_config(
        "train",
        [f"dataset={dataset}", "model.backbone=resnet10t", "model.channels=16", "model.aux=false"],
    )
    torch.manual_seed(0)
    module = instantiate(cfg.module)
    path = tmp_path / f"{dataset}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class SimulatedKill(Exception):
    """Stands for a job killed mid-run (Lightning would turn KeyboardInterrupt into sys.exit)."""


class InterruptAfterEpoch(L.Callback):
    """Simulates a killed job: raises as the epoch after ``epoch`` starts, i.e. once ``epoch``
    has been validated and every end-of-epoch checkpoint has been written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch + 1:
            raise SimulatedKill(f"killed after epoch {self.epoch}")
