"""The Lightning ``Trainer`` of a run, from its config (``conf/trainer/``), callbacks, loggers;
``cfnet.evaluate``'s ``device=`` applied to that config."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from cfnet.utils.hardware import inference_device


def build_trainer(
    config: DictConfig, callbacks: list[L.Callback], logger: list[Logger] | bool
) -> L.Trainer:
    """``config`` instantiated with the run's callbacks and loggers.

    A progress bar is shown only when the callbacks hold one (``callbacks.progress_bar``), so that
    ``~callbacks.progress_bar`` turns it off: Lightning would otherwise add its own bar.
    """
    has_bar = any(isinstance(callback, ProgressBar) for callback in callbacks)
    return instantiate(config, callbacks=callbacks, logger=logger, enable_progress_bar=has_bar)


def on_device(config: DictConfig, device: str) -> DictConfig:
    """``config`` on ``cfnet.evaluate``'s ``device=``: ``auto`` leaves the preset's choice
    (``trainer=auto``: CUDA when available); ``cpu`` is ``trainer=cpu``, ``cuda`` / ``cuda:N`` one
    GPU (that one). The precision follows the device (``${precision_on:}`` in conf/evaluate.yaml).
    A multi-process preset (``trainer=ddp``) runs on its ``trainer.devices``: refused here."""
    if device == "auto":
        return config
    chosen = inference_device(device)
    strategy = config.get("strategy", "auto")
    if strategy != "auto":
        raise ValueError(
            f"device={device}: one device, but trainer.strategy={strategy} runs on "
            "trainer.devices; leave device=auto with it"
        )
    config = config.copy()
    config.accelerator = "gpu" if chosen.type == "cuda" else "cpu"
    config.devices = [chosen.index] if chosen.index is not None else 1
    return config
