"""``python -m cfnet.evaluate ckpt_path=… dataset=… split=val inference=ms_flip``: metrics.

The checkpoint rebuilds its own model (no model config needed) and says which data it was trained
on: without ``dataset`` arguments that dataset config is used (``cfnet.cli.run_config``); a
``dataset=`` / ``dataset.*`` override wins, but must describe the same classes.
``inference=whole|slide|ms_flip`` picks the protocol (``cfnet.evaluation.inference``).
Prints the per-class table and writes ``metrics/<split>.{json,md}`` in the run dir.
With ``trainer=ddp_cpu`` / ``trainer=ddp`` the split is sharded across processes, each image once.
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.cli.command_line import checked_groups
from cfnet.cli.config import CONFIG_DIR
from cfnet.cli.errors import user_errors
from cfnet.cli.run_config import dataset_from_checkpoint
from cfnet.cli.validate import check_eval_config
from cfnet.evaluation.metrics import SegmentationScores
from cfnet.lit import SegmentationModule


def evaluate(cfg: DictConfig) -> SegmentationScores:
    check_eval_config(cfg)
    if line := dataset_from_checkpoint(cfg, cfg.ckpt_path, own_keys=("test_split",)):
        print(line, file=sys.stderr)
    module = SegmentationModule.from_checkpoint(cfg.ckpt_path)
    module.require_classes(list(cfg.dataset.class_names), cfg.dataset.name, cfg.ckpt_path)
    module.inference = instantiate(cfg.inference)
    datamodule = instantiate(cfg.dataset)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return module.scores["test"]


@checked_groups
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with user_errors():
        evaluate(cfg)


if __name__ == "__main__":
    main()
