"""The configs as the tests compose them: the real conf/ exactly as the CLI composes it, and the
tiny run the tests train (its parts named, so that a test takes the parts it needs)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import cfnet.cli.config  # noqa: F401  (registers the config resolvers, as every entry point does)

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"

# A run that exercises the whole application in seconds, in named parts (a test takes the parts
# it needs). The values are the tiny run's; TINY_RUN is all of them.
# The tiny network of every test: timm's resnet10t (random init), a narrow head, a forward in
# milliseconds. Heads are left to the config (a K×H sweep sets them; 16 channels divide by 1, 2, 4).
TINY_NET = ["model.backbone=resnet10t", "model.channels=16", "model.aux_channels=8"]
TINY_CFNET = [*TINY_NET, "model.heads=2"]
# 8 / 5 / 4 synthetic images of 64², already at base and crop size (evaluate / predict use it).
TINY_DATA = [
    "dataset.sizes={train:8,val:5,test:4}",
    "dataset.image_size=64",
    "dataset.base_size=64",
    "dataset.crop_size=64",
]
TINY_BATCHES = ["dataset.batch_size=4", "dataset.eval_batch_size=2"]
# One epoch, no sanity pass, every step logged, no progress bar in captured output.
TINY_SCHEDULE = [
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "~callbacks.progress_bar",
]
# fp32 whatever the host: the CPU presets pick bf16 where the CPU computes it natively, and tests
# compare numbers across runs.
FP32 = ["trainer.precision=32-true"]
TINY_RUN = [*TINY_CFNET, *TINY_DATA, *TINY_BATCHES, *TINY_SCHEDULE, *FP32]


# The same for the file datasets' tiny trees (12×16-pixel images): small crops, a tiny model.
TINY_FILE_RUN = [
    "dataset.base_size=16",
    "dataset.crop_size=12",
    "dataset.num_workers=0",
    "dataset.batch_size=2",
    *TINY_CFNET,
    *FP32,
    "~callbacks.progress_bar",
]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose conf/<name>.yaml with command-line style overrides, as the entry point would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def compose_model(
    name: str, overrides: list[str] | None = None, num_classes: int = 5
) -> DictConfig:
    """Compose conf/model/<name>.yaml with a stand-in dataset providing num_classes."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            overrides=[f"+model={name}", f"+dataset.num_classes={num_classes}", *(overrides or [])]
        )
