"""``python -m cfnet.train``: compose the config, instantiate, fit, test the best checkpoint.

python -m cfnet.train                                   # CFNet on the synthetic dataset, CPU
python -m cfnet.train dataset=pascal_voc model.k=2 model.heads=4 trainer=gpu
python -m cfnet.train experiment=table2_components      # the Table-2 ablation sweep
python -m cfnet.train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume: own config and dir

Order matters for failing early and cheaply: a checkpoint to resume from is read safely, once
(``cfnet.utils.checkpoint_files``), and the config is validated (``cfnet.cli.validate``) before
the trainer, the data or the model exist; the trainer (Lightning's own option checks) comes before
any data is read.
"""

from __future__ import annotations

from signal import SIGINT
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from cfnet.cli.entry_point import hydra_main
from cfnet.cli.run_config import ResumeFromCommandLine, resume_config, task_overrides
from cfnet.cli.validate import check_train_config
from cfnet.lit.checkpoint_io import AtomicCheckpointIO
from cfnet.lit.resume import PreemptionCheckpoint
from cfnet.lit.trainer import build_trainer
from cfnet.utils.checkpoint_files import TRAINING_KEYS, read_checkpoint
from cfnet.utils.run_record import RunConfigCheckpoint

# Exit status after SIGTERM (128 + 15, as if the signal had ended the process): the job stopped
# before it was done, which schedulers and restart policies must not take for success.
SIGTERM_EXIT = 143
SIGINT_EXIT = 130  # 128 + 2: stopped with Ctrl-C (the first one saves a checkpoint, as SIGTERM)


def train(
    cfg: DictConfig, overrides: list[str] | None = None, checkpoint: dict[str, Any] | None = None
) -> dict[str, float]:
    """Fit (and test) ``cfg`` as given; returns the final logged metrics.

    ``overrides``: the command line ``cfg`` was composed from, kept in every checkpoint with the
    config. ``cfg.ckpt_path``: resume from that checkpoint; ``checkpoint``: its contents, when the
    caller has read them already (they are not read again, also not by Lightning).
    """
    if cfg.ckpt_path and checkpoint is None:  # one line for a missing, corrupt, foreign file
        checkpoint = read_checkpoint(
            cfg.ckpt_path, "checkpoint to resume from", require=TRAINING_KEYS
        )
    if cfg.ckpt_path and cfg.model.get("init_from"):  # the checkpoint holds the weights
        cfg.model.init_from = None  # (not read again)
    check_train_config(cfg)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    callbacks.append(RunConfigCheckpoint(cfg, overrides or []))  # checkpoints carry their config
    loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.get("logger") else []
    trainer = build_trainer(cfg.trainer, callbacks, loggers)
    if checkpoint is not None and isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
        trainer.strategy.checkpoint_io.hand_over(cfg.ckpt_path, checkpoint)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    module = instantiate(cfg.module)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        # weights_only: also the checkpoint Lightning finds itself (SLURM requeue) is read
        # without unpickling code.
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.test and not trainer.fast_dev_run:
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            trainer.test(
                module,
                datamodule=datamodule,
                ckpt_path=best or None,
                verbose=False,
                weights_only=True,
            )
            metrics |= {k: float(v) for k, v in trainer.callback_metrics.items()}
    except SIGTERMException as stop:  # PreemptionCheckpoint has saved where to resume from
        stopper = next((c for c in callbacks if isinstance(c, PreemptionCheckpoint)), None)
        raise SystemExit(
            SIGINT_EXIT if stopper and stopper.signal == SIGINT else SIGTERM_EXIT
        ) from stop
    return metrics


def run(
    cfg: DictConfig, overrides: list[str], checkpoint: dict[str, Any] | None = None
) -> float | None:
    """A run as the command line asks for it: ``cfg`` composed by Hydra from ``overrides``; with
    a ``ckpt_path`` (``checkpoint``: its contents, when read already), the run continues with its
    own config (``cfnet.cli.run_config.resume_config``). Returns the metric the run optimises
    (``optimized_metric``: the resumed run's own; a run from before the key: val/mIoU), for
    Hydra's sweepers."""
    if cfg.ckpt_path:
        if checkpoint is None:
            checkpoint = read_checkpoint(
                cfg.ckpt_path, "checkpoint to resume from", require=TRAINING_KEYS
            )
        cfg, overrides = resume_config(cfg, checkpoint, overrides)
    metrics = train(cfg, overrides, checkpoint)
    return metrics.get(cfg.get("optimized_metric", "val/mIoU"))


def main() -> float | None:
    """``python -m cfnet.train``: a ``ckpt_path`` on the command line is read once, before Hydra
    makes a run dir (``ResumeFromCommandLine``: the run continues in the checkpoint's run dir)."""
    resume = ResumeFromCommandLine()

    def fit_and_test(cfg: DictConfig) -> float | None:
        checkpoint = resume.checkpoint(cfg.ckpt_path) if cfg.ckpt_path else None
        return run(cfg, task_overrides(), checkpoint)

    return hydra_main("train", fit_and_test, before=resume.run_dir_overrides)()


if __name__ == "__main__":
    main()
