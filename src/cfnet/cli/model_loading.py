"""The model of ``cfg.ckpt_path`` as the inspection commands load it (``cfnet.explore``,
``cfnet.cooccurrence``): one function, so that where a checkpoint may come from -- a file today,
a Hugging Face Hub directory or repo id later -- is decided in one place."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from omegaconf import DictConfig

from cfnet.cli.run_config import dataset_from_checkpoint
from cfnet.lit import SegmentationModule
from cfnet.utils.checkpoint_files import read_checkpoint


def load_model(cfg: DictConfig, own_keys: Iterable[str] = ()) -> SegmentationModule:
    """The checkpoint ``cfg.ckpt_path``, read once: ``cfg.dataset`` becomes the dataset config it
    was trained with (``dataset_from_checkpoint``, keeping ``own_keys`` and the command line's
    ``dataset.*``; its one line on stderr), and its model is rebuilt on the CPU in eval mode, its
    classes checked against ``cfg.dataset``'s. A bad file or mismatched classes: one line."""
    checkpoint = read_checkpoint(cfg.ckpt_path)
    if line := dataset_from_checkpoint(cfg, cfg.ckpt_path, checkpoint, own_keys):
        print(line, file=sys.stderr)
    module = SegmentationModule.from_checkpoint(cfg.ckpt_path, contents=checkpoint).eval()
    module.require_classes(list(cfg.dataset.class_names), cfg.dataset.name, cfg.ckpt_path)
    return module
