"""Weights & Biases: the logger (offline without credentials), the per-class tables, mask images
and co-occurrence pictures of a run (Lightning callbacks), and the summary of a sweep (a Hydra
callback)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

import lightning as L
import torch
from hydra.experimental.callback import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from cfnet.analysis import sweeps
from cfnet.analysis.viz import cooccurrence_figure, denormalize
from cfnet.lit.module import SegmentationModule


def wandb_credentials_available() -> bool:
    """A W&B API key in the environment or in ~/.netrc (where ``wandb login`` stores it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_offline() -> bool:
    """Offline when ``WANDB_MODE`` says so or no API key is configured (never a login prompt)."""
    return (
        os.environ.get("WANDB_MODE") in ("offline", "disabled") or not wandb_credentials_available()
    )


def wandb_logger(
    *, project: str, save_dir: str, group: str, name: str, tags: list[str], log_model: bool
) -> WandbLogger:
    """WandbLogger that runs offline when ``WANDB_MODE=offline`` or no API key is set, instead of
    asking to log in: a local run under ``save_dir/wandb``, which ``wandb sync`` uploads later."""
    offline = wandb_offline()
    import wandb

    if wandb.run is not None:  # the previous job of a sweep run in this process: its run is over
        wandb.finish()  # (else Lightning would log this job into it)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        name=name,
        tags=tags,
        offline=offline,
        log_model=log_model,
    )


class WandbSweepSummary(Callback):
    """Hydra callback: after a sweep logged to W&B (``logger=wandb`` / ``csv_wandb``), one more W&B
    run in the sweep's group (job type ``sweep-summary``) holding the ``cfnet.report`` summary
    (``cfnet.analysis.sweeps``): a table of every job's overrides and metrics, the paper-style table
    and its plot. The jobs themselves share that group (``conf/logger/wandb.yaml``), so a Table 2 /
    3 sweep is one group.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        settings = (config.get("logger") or {}).get("wandb")
        if settings is None:
            return
        import wandb

        sweep_dir = Path(config.hydra.sweep.dir)
        split = "test" if config.get("test") else "val"
        jobs = sweeps.load_jobs(sweep_dir, split)
        summary = sweeps.summarise(jobs, "mIoU")
        metrics = sorted(set().union(*(job.metrics or {} for job in jobs)))
        swept = sweeps.varying(jobs) or list(dict.fromkeys(k for j in jobs for k in j.overrides))
        rows = [
            [job.directory.name, " ".join(sweeps.setting(job, k) for k in swept)]
            + [(job.metrics or {}).get(m) for m in metrics]
            for job in jobs
        ]
        run = wandb.init(
            project=settings.project,
            group=config.experiment_name,
            job_type="sweep-summary",
            name=f"{config.experiment_name}/summary",
            dir=str(sweep_dir),
            mode="offline" if wandb_offline() else "online",
            reinit="create_new",
        )
        payload: dict[str, object] = {
            f"sweep/{split}_jobs": wandb.Table(columns=["job", "overrides", *metrics], data=rows),
            "sweep/summary": wandb.Html(f"<pre>{summary.table}</pre>"),
        }
        if summary.figure is not None:
            payload["sweep/plot"] = wandb.Image(summary.figure)
        run.log(payload)
        run.finish()


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
    (``cfnet.analysis.viz.cooccurrence_figure`` of ``Segmentor.cooccurrence``: one picture per
    image and query pixel, every head and mixture component), to watch co-occurrence being learnt.

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
                        fig = cooccurrence_figure(image, maps, point)
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
