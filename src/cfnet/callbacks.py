"""Callbacks: per-class reports in the run dir and on the console, W&B tables and mask images,
RNG states and preemption checkpoints for exact resumes."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, RichModelSummary
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from rich.console import Console
from rich.table import Table

from cfnet.data.sample import Batch
from cfnet.lit import SegmentationModule
from cfnet.metrics import SegmentationScores
from cfnet.viz import denormalize


def rich_table(scores: SegmentationScores, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    table.add_column("IoU (%)", justify="right")
    for name, value in scores.class_iou.items():
        table.add_row(name, "n/a" if value is None else f"{100 * value:.2f}")
    table.add_section()
    for name, value in scores.summary().items():
        table.add_row(f"[bold]{name}[/bold]", f"[bold]{100 * value:.2f}[/bold]")
    return table


class SegmentationReport(L.Callback):
    """Writes ``metrics/{val,test}.{json,md}`` in the run dir and prints the per-class table.

    The validation table is printed once, when fitting ends (and after ``trainer.validate``);
    every validation epoch still refreshes the files.
    """

    def __init__(self, output_dir: str, test_name: str) -> None:
        self.output_dir = Path(output_dir) / "metrics"
        self.test_name = test_name  # file / title name of the test stage (evaluate: the split)
        self.console = Console()

    def _report(
        self, trainer: L.Trainer, module: SegmentationModule, stage: str, show: bool
    ) -> None:
        if trainer.sanity_checking or stage not in module.scores or not trainer.is_global_zero:
            return
        name = self.test_name if stage == "test" else stage
        model = module.hparams.model["_target_"].rsplit(".", 1)[-1]
        protocol = module.inference.describe() if module.inference is not None else None
        title = f"{name} · {model}" + (f" · {protocol}" if protocol else "")
        json_path, md_path = module.scores[stage].save(self.output_dir, name, title, protocol)
        if show:
            self.console.print(rich_table(module.scores[stage], title))
            self.console.print(f"saved {json_path} and {md_path}", highlight=False, soft_wrap=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "val", show=trainer.state.fn == "validate")

    def on_fit_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "val", show=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "test", show=True)


class BadSampleReport(L.Callback):
    """Counts the samples skipped with ``dataset.on_bad_sample=skip`` and reports them at the end:
    a line on the console and every message in ``bad_samples.txt`` in the run dir.

    Skipped samples travel in the batches (``batch["skipped"]``), so this sees those of every
    loader worker; with DDP each process reports its own shard.
    """

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / "bad_samples.txt"
        self.messages: dict[str, None] = {}  # unique, in order of discovery (epochs re-read them)
        self.reported = 0

    def _collect(self, batch: Batch) -> None:
        if isinstance(batch, dict):  # a DataModule of the user's may hand other batches
            self.messages.update(dict.fromkeys(batch.get("skipped", [])))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Batch, batch_idx) -> None:
        self._collect(batch)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch: Batch, batch_idx, *_
    ) -> None:
        self._collect(batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch: Batch, batch_idx, *_) -> None:
        self._collect(batch)

    def _report(self, trainer: L.Trainer) -> None:
        if len(self.messages) == self.reported:  # nothing new since the last report
            return
        self.reported = len(self.messages)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.messages) + "\n")
        first = next(iter(self.messages))
        rank = f" (process {trainer.global_rank})" if trainer.world_size > 1 else ""
        print(
            f"skipped {len(self.messages)} bad sample(s){rank} (dataset.on_bad_sample=skip); "
            f"first: {first}; all listed in {self.path}"
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)


class WandbSegmentation(L.Callback):
    """For a W&B logger: per-class IoU tables and, each validation epoch, a fixed set of val
    images with ground-truth and predicted masks (``wandb.Image(..., masks=...)``)."""

    def __init__(self, num_images: int) -> None:
        self.num_images = num_images

    @staticmethod
    def _wandb(trainer: L.Trainer) -> WandbLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    def _log_table(self, trainer: L.Trainer, module: SegmentationModule, stage: str) -> None:
        logger = self._wandb(trainer)
        if logger is None or trainer.sanity_checking or stage not in module.scores:
            return
        rows = [[n, v] for n, v in module.scores[stage].class_iou.items()]
        logger.log_table(key=f"{stage}/per_class_iou", columns=["class", "IoU"], data=rows)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        logger = self._wandb(trainer)
        if logger is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        import wandb

        dataset = trainer.datamodule.datasets["val"]
        hp = pl_module.hparams
        labels = dict(enumerate(hp.class_names))
        images = []
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            for index in range(min(self.num_images, len(dataset))):
                sample = dataset[index]
                logits = pl_module(sample["image"][None].to(pl_module.device))
                images.append(
                    wandb.Image(
                        denormalize(sample["image"], hp.mean, hp.std),
                        caption=sample["name"],
                        masks={
                            "ground_truth": {
                                "mask_data": sample["mask"].numpy(),
                                "class_labels": labels,
                            },
                            "prediction": {
                                "mask_data": logits[0].argmax(0).cpu().numpy(),
                                "class_labels": labels,
                            },
                        },
                    )
                )
        pl_module.train(was_training)
        logger.experiment.log(
            {"val/predictions": images, "trainer/global_step": trainer.global_step}
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        if trainer.is_global_zero:
            self._log_table(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        if trainer.is_global_zero:
            self._log_table(trainer, pl_module, "test")


class WandbCooccurrence(L.Callback):
    """For a W&B logger: what the ACF module attends to, p(c|t), for a few query pixels of a
    fixed set of val images, every ``every_n_epochs`` epochs and after the last one
    (``viz.cooccurrence_figure`` of ``Segmentor.cooccurrence``: one picture per image and query
    pixel, every head and mixture component), to watch co-occurrence being learnt.

    Args:
        num_images: the first ``num_images`` images of the val split (the same ones every time).
        every_n_epochs: draw after every n-th validation epoch (and after the last epoch).
        points: query pixels as (y, x) fractions of the image height and width.
    """

    def __init__(
        self, num_images: int, every_n_epochs: int, points: list[tuple[float, float]]
    ) -> None:
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError(
                f"num_images and every_n_epochs must be >= 1, got {num_images}, {every_n_epochs}"
            )
        if not points or any(not (0 <= f < 1) for point in points for f in point):
            raise ValueError(f"points must be (y, x) fractions in [0, 1), got {points}")
        self.num_images, self.every_n_epochs = num_images, every_n_epochs
        self.points = [tuple(point) for point in points]

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last or bool(trainer.fast_dev_run)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        logger = WandbSegmentation._wandb(trainer)
        if logger is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not self._due(trainer) or not hasattr(pl_module.net, "cooccurrence"):
            return
        import matplotlib.pyplot as plt
        import wandb

        from cfnet import viz

        dataset = trainer.datamodule.datasets["val"]
        hp = pl_module.hparams
        pictures = []
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                for index in range(min(self.num_images, len(dataset))):
                    sample = dataset[index]
                    try:
                        maps = pl_module.net.cooccurrence(
                            sample["image"][None].to(pl_module.device)
                        )
                    except ValueError:  # a model without an ACF module (FCN, use_acf=false)
                        return
                    maps = maps._replace(
                        **{
                            f: getattr(maps, f).float().cpu()
                            for f in ("components", "prior", "probability")
                        }
                    )
                    image = denormalize(sample["image"], hp.mean, hp.std)
                    height, width = image.shape[:2]
                    for fy, fx in self.points:
                        point = (int(fy * height), int(fx * width))
                        fig = viz.cooccurrence_figure(image, maps, point)
                        pictures.append(
                            wandb.Image(fig, caption=f"{sample['name']} query (y, x)={point}")
                        )
                        plt.close(fig)
        finally:
            pl_module.train(was_training)
        if pictures:
            logger.experiment.log(
                {"val/cooccurrence": pictures, "trainer/global_step": trainer.global_step}
            )


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


class ModelSummary(RichModelSummary):
    """Lightning's model summary at the start of fitting, without its FLOPs: Lightning counts
    FLOPs only for a module with an ``example_input_array`` (one extra forward pass at the crop
    size on every start), which cfnet does not set, so its FLOPs column and "Total FLOPs" line
    would only ever say 0."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, justify="right" if name.startswith("Params") else "left")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(
            f"Params: {get_human_readable_count(total_parameters)} "
            f"({get_human_readable_count(trainable_parameters)} trainable, {model_size:.1f} MB)",
            highlight=False,
        )
