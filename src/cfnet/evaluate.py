"""``python -m cfnet.evaluate ckpt_path=… dataset=… split=val inference=ms_flip``: metrics.

``ckpt_path``: a checkpoint of ``cfnet.train``, or a model saved the Hugging Face Hub's way (a
directory or a repo id; ``cfnet.cli.model_loading``). It rebuilds its own model (no model config
needed) and says which data it was trained on: without ``dataset`` arguments that dataset config
is used (a checkpoint's own, or the one a saved model's config.json names;
``cfnet.cli.run_config``); a ``dataset=`` / ``dataset.*`` override wins, but must describe the
same classes.
``inference=whole|slide|ms_flip`` picks the protocol (``cfnet.evaluation.inference``).
It runs where ``cfnet.train`` would (``trainer=auto``: CUDA when it is there) in that device's
precision (bf16 autocast on CUDA and on a CPU with native bf16, else fp32), with channels_last
weights as in training; ``device=`` / ``precision=`` override that, and the one start line says it.
Prints the per-class table and writes ``metrics/<split>.{json,md}`` in the run dir.
With ``trainer=ddp_cpu`` / ``trainer=ddp`` the split is sharded across processes, each image once.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.cli.entry_point import hydra_main
from cfnet.cli.model_loading import load_model
from cfnet.cli.validate import check_eval_config
from cfnet.evaluation.metrics import SegmentationScores
from cfnet.lit.trainer import build_trainer, on_device


def evaluate(cfg: DictConfig) -> SegmentationScores:
    """Score ``cfg.ckpt_path`` on ``cfg.split``; its file(s) are read once."""
    check_eval_config(cfg)
    trainer_config = on_device(cfg.trainer, cfg.device)
    module = load_model(cfg, own_keys=("test_split",), channels_last=True)
    module.inference = instantiate(cfg.inference)
    datamodule = instantiate(cfg.dataset)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = build_trainer(trainer_config, callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return module.scores["test"]


main = hydra_main("evaluate", evaluate)

if __name__ == "__main__":
    main()
