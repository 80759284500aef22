"""Shared test helpers: compose the real configs under conf/ exactly as the CLI does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import cfnet.cli.config  # noqa: F401  (registers the config resolvers, as every entry point does)

# helpers' assertions (assert_scores_match) report the values compared, as a test's do.
pytest.register_assert_rewrite("helpers")

# The notebooks (collected with the tests: pyproject's testpaths) train at the smoke budget under
# pytest unless told otherwise (`make figures` sets full): seconds each, every cell executed. The
# kernels nbmake starts inherit this environment. Their claims are asserted at full budget by the
# slow tests in test_claims.py.
os.environ.setdefault("CFNET_NOTEBOOK_BUDGET", "smoke")

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# Tiny but real: a timm ResNet with random init, narrow head. Keeps a forward in milliseconds.
TINY_MODEL = ["model.backbone=resnet10t", "model.channels=32", "model.aux_channels=16"]


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


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY_MODEL)
