"""The run config kept in checkpoints, applied (``cfnet.cli.run_config``): the dataset evaluate
and predict use, and the config and metric of a resumed run."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

import cfnet.train
from cfnet.cli.run_config import dataset_from_checkpoint
from support.configs import CONF_DIR, TINY_RUN, compose_config


def _in_hydra(name: str, overrides: list[str], output_dir: str = "out"):
    """``conf/<name>.yaml`` composed as Hydra's main composes it, with its Hydra config set (the
    command line's overrides, the run dir), as an entry point sees it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def _stored(config) -> dict:
    """A checkpoint's record of its run (what RunConfigCheckpoint writes), around ``config``."""
    yaml = OmegaConf.to_yaml(config, resolve=False)
    return {"cfnet_run": {"config": yaml, "overrides": [], "run_dir": None}}


def test_the_differs_line_leaves_out_how_data_is_read_and_stays_short():
    """Trained on VOC, evaluated on VOC aug under another root, other sizes and normalisation:
    the line names what changes the data the model sees, not the root or the split lists, and
    cuts long values and many keys short."""
    trained = compose_config("train", ["dataset=pascal_voc"])
    checkpoint = _stored(trained)
    cfg = _in_hydra(
        "evaluate",
        [
            "ckpt_path=x.ckpt",
            "dataset=pascal_voc_aug",
            "dataset.root=/elsewhere",
            "dataset.base_size=400",
            "dataset.crop_size=320",
            "dataset.mean=[0.5,0.5,0.5]",
            "dataset.std=[0.25,0.25,0.25]",
            "dataset.eval_scales=[0.5,0.625,0.75,0.875,1.0,1.125,1.25,1.375,1.5]",
            "dataset.allow_greyscale=true",
        ],
    )
    line = dataset_from_checkpoint(cfg, "x.ckpt", checkpoint, own_keys=("test_split",))
    assert line.startswith(
        "dataset: pascal_voc_aug as given on the command line; differs from the training data "
        "(pascal_voc, config from the checkpoint): "
    )
    assert "root" not in line and "splits" not in line and "train_aug" not in line
    assert "base_size 520 → 400" in line and "crop_size 480 → 320" in line
    # 8 differences (mask_dir, name and the 6 above): 6 named, then a count
    assert line.endswith(", and 2 more") and len(line) < 400, line
    assert "[0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1…" in line  # a long list, cut short


def test_a_resumed_run_returns_its_own_optimized_metric(monkeypatch):
    """The checkpoint's run optimised val/pixAcc; the command line (``ckpt_path=…`` only)
    composes the default val/mIoU: the resumed run, and what it returns to Hydra's sweepers,
    follow the run's own config."""
    own = compose_config("train", [*TINY_RUN, "optimized_metric=val/pixAcc"])
    checkpoint = _stored(own)
    cfg = _in_hydra("train", ["ckpt_path=x.ckpt"])
    assert cfg.optimized_metric == "val/mIoU"
    seen = {}

    def fake_train(cfg, overrides, checkpoint):  # what cfnet.train.train would log
        seen["optimized_metric"] = cfg.optimized_metric
        return {"val/mIoU": 0.25, "val/pixAcc": 0.75}

    monkeypatch.setattr(cfnet.train, "train", fake_train)
    assert cfnet.train.run(cfg, ["ckpt_path=x.ckpt"], checkpoint) == 0.75
    assert seen["optimized_metric"] == "val/pixAcc"
