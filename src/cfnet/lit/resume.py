"""Exact resumes: the RNG states in every checkpoint, and a resumable checkpoint saved where a
SIGTERM (cluster stop, SLURM preemption / requeue) or Ctrl-C stopped training."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


class RNGStateCheckpoint(L.Callback):
    """Stores the RNG states (torch, CUDA, numpy, python) in checkpoints and restores them on
    resume, so dropout and other random draws continue exactly as in an uninterrupted run.

    Everything is kept as tensors and plain numbers: checkpoints stay loadable with
    ``torch.load(weights_only=True)``. (With DDP, rank 0's states are saved and restored on every
    rank.) Random augmentation inside albumentations keeps its own generators and is not covered.
    """

    KEY = "cfnet_rng_states"

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint[self.KEY] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "python": random.getstate(),
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(self.KEY)
        if states is None:  # a checkpoint written without this callback
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
        np_state = states["numpy"]
        np.random.set_state(
            (
                "MT19937",
                np_state["keys"].numpy().astype(np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["gauss"],
            )
        )
        version, internal, gauss_next = states["python"]
        random.setstate((version, tuple(internal), gauss_next))


class PreemptionCheckpoint(Checkpoint):
    """On SIGTERM or Ctrl-C, save a checkpoint to resume from, at the step where training stopped.

    SIGTERM is how a plain cluster, Kubernetes and SLURM (preemption, time limit, ``scancel``,
    ``scontrol requeue``) stop a job. Lightning turns it into ``SIGTERMException`` at the next
    batch boundary (on every DDP process); this callback then saves the whole training state
    there -- weights, optimiser, LR schedule, loops, RNG states, the loader's position within the
    epoch -- as Lightning's ``<run dir>/hpc_ckpt_<N>.ckpt``: on SLURM, a requeued job started
    with ``ckpt_path=null`` resumes from the newest of them by itself; elsewhere, pass it as
    ``ckpt_path``. Nothing is saved for any other exception (a NaN loss must not overwrite good
    checkpoints) nor outside fitting.

    A SIGTERM during a validation of fitting lets that validation finish first (its metrics, and
    the best / last checkpoints written after it, would otherwise be lost: Lightning 2.6 stops the
    validation half-way and a run resumed from there does not run it again). The job then needs a
    grace period (SLURM ``KillWait``, Kubernetes ``terminationGracePeriodSeconds``) longer than one
    validation pass; were it killed sooner, the checkpoints of the previous epoch are intact.

    Ctrl-C (SIGINT) during fitting is handled the same way: the first one stops at the next batch
    boundary and saves the checkpoint (Lightning's own handling would stop at once and save
    nothing); a second one aborts at once, saving nothing. The process then exits with 130
    (``cfnet.train``), as a process ended by SIGINT does.

    A ``Checkpoint`` subclass, so Lightning runs its hooks after every other callback's and after
    the ``ModelCheckpoint``-s listed before it (``conf/callbacks/default.yaml``).
    """

    def __init__(self) -> None:
        self.saved: str | None = None
        self.deferred = False  # a SIGTERM held back until the running validation is complete
        self.signal = signal.SIGTERM  # what stopped the run: SIGTERM, or SIGINT (Ctrl-C)
        self._previous_sigint: Any = None  # the SIGINT handler to put back after fitting

    # ---- Ctrl-C -------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint(trainer))

    def _on_sigint(self, trainer: L.Trainer) -> Callable[[int, Any], None]:
        pid = os.getpid()

        def handle(signum: int, frame: Any) -> None:
            # Ctrl-C in a terminal reaches the whole process group: DataLoader workers forked
            # from this process inherit this handler and leave the stop to the training process
            # (with Python's default they would die, and the run with them).
            if os.getpid() != pid:
                return
            if self.signal == signal.SIGINT:  # the second Ctrl-C: abort now, save nothing
                self._restore_sigint()
                print("Ctrl-C again: aborting without saving", file=sys.stderr, flush=True)
                raise KeyboardInterrupt
            self.signal = signal.SIGINT
            if trainer.is_global_zero:
                print(
                    "Ctrl-C: stopping after this training step to save a resumable checkpoint "
                    "(a running validation finishes first); press Ctrl-C again to abort at once",
                    file=sys.stderr,
                    flush=True,
                )
            trainer._signal_connector.received_sigterm = True  # Lightning's own stop, as SIGTERM

        return handle

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._restore_sigint()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if fitting and trainer.received_sigterm:  # Lightning would stop after this batch
            trainer._signal_connector.received_sigterm = False
            self.deferred = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The ModelCheckpoint-s have saved (their hooks ran before this one): hand the SIGTERM
        # back; the training loop stops at its next check, right after this validation.
        if self.deferred:
            self.deferred = False
            trainer._signal_connector.received_sigterm = True

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        name = "Ctrl-C" if self.signal == signal.SIGINT else "SIGTERM"
        if trainer.sanity_checking or trainer.global_step == 0:
            if trainer.is_global_zero:  # nothing trained yet: starting again loses nothing
                print(f"{name}: stopped before the first training step; nothing to save")
            return
        # Lightning's numbering (hpc_ckpt_1, _2, ...) and place, which its SLURM resume reads.
        self.saved = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(self.saved, weights_only=False)  # the full training state
        if trainer.is_global_zero:
            slurm = "; a requeued SLURM job with the same run dir resumes from it by itself"
            print(
                f"{name}: saved a resumable checkpoint at step {trainer.global_step}: "
                f"{self.saved} (resume: python -m cfnet.train ckpt_path={self.saved}"
                f"{slurm if name == 'SIGTERM' else ''})",
                file=sys.stderr,
            )
