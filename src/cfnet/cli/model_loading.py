"""The model a command runs (``cfnet.evaluate``, ``cfnet.predict``, the inspection commands):
``ckpt_path`` names a checkpoint of ``cfnet.train`` or a model saved the Hugging Face Hub's way --
a directory of ``save_pretrained`` / ``cfnet.export format=hub``, or a Hub repo id (``org/name``,
from the local Hub cache when ``HF_HUB_OFFLINE=1``). One function decides which and loads it, so
that every command takes all three.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig

from cfnet.cli.run_config import dataset_from_checkpoint, dataset_from_pretrained
from cfnet.lit import SegmentationModule
from cfnet.models.hub import NotCfnetError, find_pretrained
from cfnet.utils.checkpoint_files import read_checkpoint


def is_checkpoint(source: str) -> bool:
    """A file, or a ``.ckpt`` path (a missing one is reported as the checkpoint it names);
    anything else names a saved directory or a Hub repo id."""
    path = Path(source).expanduser()
    return path.is_file() or path.suffix == ".ckpt"


def load_model(
    cfg: DictConfig, own_keys: Iterable[str] = (), channels_last: bool = False
) -> SegmentationModule:
    """The model ``cfg.ckpt_path`` names, on the CPU in eval mode, its file(s) read once.

    ``cfg.dataset`` becomes the dataset the model was trained on: a checkpoint's own dataset
    config (``dataset_from_checkpoint``), or the config that a saved model's config.json names
    (``dataset_from_pretrained``), keeping ``own_keys`` and the command line's ``dataset.*``; a
    ``dataset=`` on the command line wins. The line saying which goes to stderr. The model's
    classes must be the dataset's. ``channels_last``: NHWC weights as in training, applied by
    ``module.configure_model()`` (evaluate and predict ask for it). Any problem is one line (a
    ``ValueError`` / ``FileNotFoundError``)."""
    source = str(cfg.ckpt_path)
    if is_checkpoint(source):
        checkpoint = read_checkpoint(source)
        line = dataset_from_checkpoint(cfg, source, checkpoint, own_keys)
        if line:
            print(line, file=sys.stderr)
        module = SegmentationModule.from_checkpoint(
            source, contents=checkpoint, channels_last=channels_last
        )
    else:
        try:
            found = find_pretrained(source)
        except NotCfnetError as err:
            ckpts = sorted(Path(source).glob("*.ckpt")) if Path(source).is_dir() else []
            if not ckpts:
                raise
            raise ValueError(
                f"ckpt_path={source}: a directory of checkpoints, not a saved model; pass one "
                f"of them, e.g. ckpt_path={ckpts[-1]}"
            ) from err
        print(dataset_from_pretrained(cfg, found, own_keys), file=sys.stderr)
        module = SegmentationModule.from_pretrained(found.directory, channels_last=channels_last)
    module.require_classes(list(cfg.dataset.class_names), cfg.dataset.name, source)
    return module.eval()
