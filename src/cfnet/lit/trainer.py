"""The Lightning ``Trainer`` of a run, from its config (``conf/trainer/``), callbacks, loggers."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig


def build_trainer(
    config: DictConfig, callbacks: list[L.Callback], logger: list[Logger] | bool
) -> L.Trainer:
    """``config`` instantiated with the run's callbacks and loggers.

    A progress bar is shown only when the callbacks hold one (``callbacks.progress_bar``), so that
    ``~callbacks.progress_bar`` turns it off: Lightning would otherwise add its own bar.
    """
    has_bar = any(isinstance(callback, ProgressBar) for callback in callbacks)
    return instantiate(config, callbacks=callbacks, logger=logger, enable_progress_bar=has_bar)
