"""Checkpoint and weights files, read without running pickled code.

Every file a user hands to cfnet -- a checkpoint to resume, evaluate, predict or export from, a
pretrained backbone -- is read with ``torch.load(weights_only=True)`` (tensors and plain data
only; a pickle that asks to import or call anything is refused) or with safetensors, and any
failure becomes one ``ValueError`` line that names the file and says what is wrong with it,
instead of a multi-line torch message. (Writing checkpoints: ``cfnet.lit.checkpoint_io``.)
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

# What a checkpoint written by ``cfnet.train`` holds that a resume needs.
TRAINING_KEYS = ("state_dict", "optimizer_states", "loops", "hyper_parameters")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _why_unreadable(err: BaseException) -> str:
    """torch.load's multi-line errors, reduced to what a user can act on."""
    text = _one_line(err)
    if refused := re.search(r"GLOBAL ([\w.]+)", text):
        return (
            f"refused: it holds pickled code or objects (GLOBAL {refused[1]}), not only tensors "
            "and plain data; cfnet reads files with torch.load(weights_only=True) and never runs "
            "code from them"
        )
    if isinstance(err, pickle.UnpicklingError):
        detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        what = detail[1] if detail else text[:120]
        return f"cannot be read: not a PyTorch file of tensors and plain data ({what})"
    if "central directory" in text or "zip archive" in text:
        return "cannot be read: truncated or corrupt (its zip archive is incomplete)"
    return f"cannot be read: {text[:200]}"


def _torch_load(path: Path) -> Any:
    try:
        # mmap: tensors stay on disk until used, so a check of a large file costs little.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap can only be used" not in str(err):  # not the zip format: read it plainly
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {str(path)!r} cannot be read: the file is empty (0 bytes)")
    return path


def read_checkpoint(
    path: str | Path, what: str = "checkpoint", require: Iterable[str] = ()
) -> dict[str, Any]:
    """The checkpoint dict at ``path``, read with ``weights_only=True``; ``require``: keys it
    must have. Any problem is a one-line ``ValueError`` / ``FileNotFoundError`` naming the file."""
    path = _existing_file(path, what)
    try:
        checkpoint = _torch_load(path)
    except Exception as err:  # truncated, corrupt, not a torch file, or pickled code
        raise ValueError(f"{what} {str(path)!r} {_why_unreadable(err)}") from err
    missing = [k for k in require if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise ValueError(
            f"{what} {str(path)!r} is not a cfnet training checkpoint (it has no "
            f"{', '.join(missing)}); pass a last.ckpt, best-*.ckpt or hpc_ckpt_*.ckpt written by "
            "cfnet.train"
        )
    return checkpoint


def read_weights(path: str | Path, what: str = "pretrained weights file") -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file or a torch file (``weights_only=True``)."""
    path = _existing_file(path, what)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors' header / size checks
            raise ValueError(f"{what} {str(path)!r} cannot be read: {_one_line(err)}") from err
    return read_checkpoint(path, what)
