"""``python -m cfnet.evaluate ckpt_path=… dataset=… split=val inference=ms_flip``: metrics.

``ckpt_path``: a checkpoint of ``cfnet.train``, or a model saved the Hugging Face Hub's way (a
directory or a repo id; ``cfnet.cli.model_loading``). It rebuilds its own model (no model config
needed) and says which data it was trained on: without ``dataset`` arguments that dataset config
is used (a checkpoint's own, or the one a saved model's config.json names;
``cfnet.cli.run_config``); a ``dataset=`` / ``dataset.*`` override wins, but must describe the
same classes.
``inference=whole|slide|ms_flip`` picks the protocol (``cfnet.evaluation.inference``).
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
from cfnet.lit.trainer import build_trainer


def evaluate(cfg: DictConfig) -> SegmentationScores:
    """Score ``cfg.ckpt_path`` on ``cfg.split``; its file(s) are read once."""
    check_eval_config(cfg)
    module = load_model(cfg, own_keys=("test_split",))
    module.inference = instantiate(cfg.inference)
    datamodule = instantiate(cfg.dataset)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = build_trainer(cfg.trainer, callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return module.scores["test"]


main = hydra_main("evaluate", evaluate)

if __name__ == "__main__":
    main()
