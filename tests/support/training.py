"""Training runs in the test process, checkpoints built in code, and callbacks that stop a run
as a killed job or a scheduler's signal would."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L

from support.configs import CONF_DIR, TINY_NET, compose_config


def train_in_process(cfg_overrides: list[str], output_dir: Path) -> dict[str, float]:
    """``cfnet.train`` without a subprocess (the same compose + ``train(cfg)``), run dir given."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cfnet.train import train

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=cfg_overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir)
        del cfg.hydra
    return train(cfg)


def make_checkpoint(
    tmp_path: Path, dataset: str, varied: bool = False, model: tuple[str, ...] = ()
) -> Path:
    """A randomly initialised tiny model with the classes of ``dataset``, saved as a checkpoint
    (the two keys ``SegmentationModule.from_checkpoint`` reads); ``model``: overrides of the
    model config (``model=fcn``, ``model.use_acf=false``), which also name the file.

    Such a model gives every pixel the same class: its classifier's random bias outweighs the
    features. ``varied=True`` zeroes that bias, so the classes follow the image (several classes
    per image, many pixels that change class when the image is mirrored or rescaled) and a
    protocol that handled images wrongly would change the scores; and it multiplies the
    classifier's weights by 1000, so that the logits spread over tens, as a trained model's do,
    not hundredths (few pixels are then near ties between two classes).
    """
    import torch
    from hydra.utils import instantiate

    cfg = compose_config(
        "train",
        [f"dataset={dataset}", *model, *TINY_NET, "model.aux=false"],
    )
    torch.manual_seed(0)
    module = instantiate(cfg.module)
    if varied:
        classifier = module.net.head.classifier[-1]
        torch.nn.init.zeros_(classifier.bias)
        classifier.weight.data *= 1000
    named = "".join(f"-{o.replace('model.', '').replace('=', '-')}" for o in model)
    path = tmp_path / f"{dataset}{'-varied' if varied else ''}{named}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def assert_resumed_equals_straight(
    straight_dir: Path, resumed_dir: Path, steps: int, rtol: float, atol: float
) -> tuple[dict, dict]:
    """The ``last.ckpt`` of a resumed run against the uninterrupted run's: the same step count
    and the same weights (tolerance: the caller's, by device). Returns both checkpoints."""
    import torch

    straight, resumed = (
        torch.load(Path(d) / "checkpoints" / "last.ckpt", weights_only=True)
        for d in (straight_dir, resumed_dir)
    )
    assert resumed["global_step"] == straight["global_step"] == steps
    for name, tensor in straight["state_dict"].items():
        torch.testing.assert_close(
            resumed["state_dict"][name], tensor, rtol=rtol, atol=atol, msg=name
        )
    return straight, resumed


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
