"""Logger factories whose behaviour depends on the environment, not on config values, and the
W&B summary of a sweep (a Hydra callback)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig


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
    run in the sweep's group (job type ``sweep-summary``) holding the ``cfnet.report`` summary: a
    table of every job's overrides and metrics, the paper-style table and its plot. The jobs
    themselves share that group (``conf/logger/wandb.yaml``), so a Table 2 / 3 sweep is one group.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        settings = (config.get("logger") or {}).get("wandb")
        if settings is None:
            return
        import wandb

        from cfnet import report

        sweep_dir = Path(config.hydra.sweep.dir)
        split = "test" if config.get("test") else "val"
        jobs = report.load_jobs(sweep_dir, split)
        summary = report.summarise(jobs, "mIoU")
        metrics = sorted(set().union(*(job.metrics or {} for job in jobs)))
        keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
        swept = [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1] or keys
        rows = [
            [job.directory.name, " ".join(f"{k}={job.overrides.get(k)}" for k in swept)]
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
