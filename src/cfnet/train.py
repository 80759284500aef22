"""``python -m cfnet.train``: compose the config, instantiate, fit, test the best checkpoint.

python -m cfnet.train                                   # CFNet on the synthetic dataset, CPU
python -m cfnet.train dataset=pascal_voc model.k=2 model.heads=4 trainer=gpu
python -m cfnet.train experiment=table2_components      # the Table-2 ablation sweep
python -m cfnet.train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume: own config and dir

Order matters for failing early and cheaply: the config is validated (``cfnet.validate``) and the
checkpoint to resume from is read safely (``cfnet.checkpoints``) before the trainer, the data or
the model exist; the trainer (Lightning's own option checks) comes before any data is read.
"""

from __future__ import annotations

from signal import SIGINT

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from cfnet.callbacks import PreemptionCheckpoint
from cfnet.checkpoints import TRAINING_KEYS, read_checkpoint
from cfnet.ckpt_config import (
    RunConfigCheckpoint,
    in_run_dir_of_checkpoint,
    resume_config,
    task_overrides,
)
from cfnet.cli import CONFIG_DIR, checked_groups, user_errors
from cfnet.validate import check_train_config

# Exit status after SIGTERM (128 + 15, as if the signal had ended the process): the job stopped
# before it was done, which schedulers and restart policies must not take for success.
SIGTERM_EXIT = 143
SIGINT_EXIT = 130  # 128 + 2: stopped with Ctrl-C (the first one saves a checkpoint, as SIGTERM)


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, float]:
    """Fit (and test) from a composed config; returns the final logged metrics.

    ``overrides``: the command line ``cfg`` was composed from (``cfnet.train``'s own); with them,
    a ``ckpt_path`` brings its run's own config (``cfnet.ckpt_config.resume_config``). Without
    them (a config composed in Python), ``cfg`` is used as given.
    """
    if cfg.ckpt_path:  # one clear line for a missing, corrupt, foreign or pickled-code file
        checkpoint = read_checkpoint(
            cfg.ckpt_path, "checkpoint to resume from", require=TRAINING_KEYS
        )
        if overrides is not None:
            cfg, overrides = resume_config(cfg, checkpoint, overrides)
        if cfg.model.get("init_from"):  # the checkpoint holds the weights: not read again
            cfg.model.init_from = None
    check_train_config(cfg)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    callbacks.append(RunConfigCheckpoint(cfg, overrides or []))  # checkpoints carry their config
    loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.get("logger") else []
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
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


@checked_groups
@in_run_dir_of_checkpoint
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    with user_errors():
        metrics = train(cfg, task_overrides())
    # for Hydra sweepers that optimise a value (a run resumed from before the key: val/mIoU)
    return metrics.get(cfg.get("optimized_metric", "val/mIoU"))


if __name__ == "__main__":
    main()
