"""Logger factories whose behaviour depends on the environment, not on config values."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_credentials_available() -> bool:
    """A W&B API key in the environment or in ~/.netrc (where ``wandb login`` stores it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(
    *, project: str, save_dir: str, group: str, name: str, tags: list[str], log_model: bool
) -> WandbLogger:
    """WandbLogger that runs offline when ``WANDB_MODE=offline`` or no API key is set, instead of
    asking to log in: a local run under ``save_dir/wandb``, which ``wandb sync`` uploads later."""
    offline = (
        os.environ.get("WANDB_MODE") in ("offline", "disabled") or not wandb_credentials_available()
    )
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        name=name,
        tags=tags,
        offline=offline,
        log_model=log_model,
    )
