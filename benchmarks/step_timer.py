"""A Lightning callback that times steady-state training steps of a real ``python -m cfnet.train``
run (used by benchmarks/gpu_speed.py through ``+callbacks.speed._target_=step_timer.StepTimer``).

The device is synchronised at both ends of the timed window, so the figure is what the GPU
delivered, loader and optimiser included, not how fast Python queued the kernels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(L.Callback):
    """Writes ``path`` (JSON): images/s over the steps after the first ``skip`` (warm-up, compile),
    the device, and the peak memory PyTorch allocated on it.

    Args:
        path: where to write the JSON.
        skip: optimiser steps left out at the start (cuDNN autotuning, ``torch.compile``).
    """

    def __init__(self, path: str, skip: int = 10) -> None:
        self.path, self.skip = Path(path), skip
        self.start: float | None = None
        self.first_step = 0
        self.run_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.start is None and trainer.global_step >= self.skip:
            synchronize(pl_module.device)
            self.start, self.first_step = time.perf_counter(), trainer.global_step
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        if self.start is None:
            raise RuntimeError(f"the run ended before step {self.skip}: nothing was timed")
        seconds = time.perf_counter() - self.start
        steps = trainer.global_step - self.first_step
        batch = trainer.datamodule.per_process_batch(trainer.datamodule.batch_size)
        device = pl_module.device
        report = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "timed_steps": steps,
            "batch_per_process": batch,
            "processes": trainer.world_size,
            "images_per_s": round(steps * batch * trainer.world_size / seconds, 1),
            "s_per_step": round(seconds / steps, 4),
            "seconds_to_first_timed_step": round(self.start - self.run_start, 1),
            "max_memory_allocated_gib": (
                round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if device.type == "cuda"
                else None
            ),
        }
        if trainer.is_global_zero:
            self.path.write_text(json.dumps(report, indent=2) + "\n")
