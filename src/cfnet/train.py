"""``python -m cfnet.train``: compose the config, instantiate, fit, test the best checkpoint.

python -m cfnet.train                                   # CFNet on the synthetic dataset, CPU
python -m cfnet.train dataset=pascal_voc model.k=2 model.heads=4 trainer=gpu
python -m cfnet.train experiment=table2_components      # the Table-2 ablation sweep
python -m cfnet.train ckpt_path=outputs/.../checkpoints/last.ckpt   # resume exactly
"""

from __future__ import annotations

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cfnet.cli import CONFIG_DIR, user_errors


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and test) from a composed config; returns the final logged metrics."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    module = instantiate(cfg.module)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.get("logger") else []
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics |= {k: float(v) for k, v in trainer.callback_metrics.items()}
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    with user_errors():
        metrics = train(cfg)
    return metrics.get("val/mIoU")  # for Hydra sweepers that optimise a value


if __name__ == "__main__":
    main()
