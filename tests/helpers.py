"""Test helpers: the tiny-run config, subprocess entry points (one at a time or a batch), callbacks
that interrupt a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

from cli_server import forked_run

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


def run_cli(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` as a user would; returns the CompletedProcess.

    The process is a fork of a server that has imported the libraries already
    (``cli_server``), unless the call needs a fresh interpreter."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    result = forked_run(module, list(args), full_env, cwd) or subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
        cwd=cwd,
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
    has been validated and every end-of-epoch checkpoint has been written. With ``marker``, once
    per run: it writes ``marker`` when it raises and does nothing once it exists (a resumed run
    keeps its callbacks, this one too)."""

    def __init__(self, epoch: int, marker: str | None = None) -> None:
        self.epoch, self.marker = epoch, Path(marker) if marker else None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch + 1:
            if self.marker is not None:
                if self.marker.exists():
                    return
                self.marker.write_text("")
            raise SimulatedKill(f"killed after epoch {self.epoch}")


class WaitForSignal(L.Callback):
    """Stands for the moment a scheduler stops a job: at the end of optimiser step ``step`` -- or
    of the first validation batch of fitting, with ``in_validation`` -- write ``marker`` (the
    test's cue to send signals from outside) and wait, up to a minute, until SIGTERM has arrived.
    The run then stops where Lightning and cfnet stop it, as it would in production. With
    ``hold``, it then writes ``<marker>.signalled`` and stays ``hold`` s longer (the cue for a
    second signal)."""

    def __init__(
        self, marker: str, step: int = -1, in_validation: bool = False, hold: float = 0
    ) -> None:
        self.marker, self.step, self.in_validation = Path(marker), step, in_validation
        self.hold = hold

    def _wait(self, trainer: L.Trainer) -> None:
        if self.marker.exists():  # once per run
            return
        self.marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.hold:
            Path(f"{self.marker}.signalled").write_text("")
            deadline = time.monotonic() + self.hold
            while time.monotonic() < deadline:
                time.sleep(0.01)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.in_validation and trainer.global_step == self.step:
            self._wait(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if self.in_validation and not trainer.sanity_checking:
            self._wait(trainer)


def run_cli_batch(
    calls: list[tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]],
    cwd: Path | None = None,
) -> list[subprocess.CompletedProcess]:
    """``run_cli(module, *args, env=env, check=False)`` for each call, in ``cwd`` (default: this
    process's); returns one CompletedProcess per call."""
    return [
        run_cli(call[0], *call[1], env=call[2] if len(call) > 2 else None, check=False, cwd=cwd)
        for call in calls
    ]
