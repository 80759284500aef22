"""Checkpoint files: read without running pickled code, write without ever leaving half a file.

Reading (``read_checkpoint``, ``read_weights``): every file a user hands to cfnet -- a checkpoint
to resume, evaluate, predict or export from, a pretrained backbone -- is read with
``torch.load(weights_only=True)`` (tensors and plain data only; a pickle that asks to import or
call anything is refused) or with safetensors, and any failure becomes one ``ValueError`` line
that names the file and says what is wrong with it, instead of a multi-line torch message.

Writing (``AtomicCheckpointIO``): Lightning's ``TorchCheckpointIO`` serialises the checkpoint into
memory, writes it to ``tempfile.mkstemp()`` (``$TMPDIR``) and ``shutil.move``-s it into place. That
is a rename -- atomic -- only when ``$TMPDIR`` is on the run dir's filesystem; on a cluster with a
node-local ``/tmp`` and a shared output filesystem the move is a copy into the final path, so a
job killed during the copy leaves a truncated ``last.ckpt`` where the previous good one was (and
nothing is fsync'ed either way). ``AtomicCheckpointIO`` streams the checkpoint into a temporary
file next to the target, fsyncs it, ``os.replace``-s it over the target and fsyncs the directory:
a reader sees the old file or the new one, never a part of one.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

# What a checkpoint written by ``cfnet.train`` holds that a resume needs.
TRAINING_KEYS = ("state_dict", "optimizer_states", "loops", "hyper_parameters")
# Temporary files of an unfinished write; no "ckpt_" in the name, so Lightning's scan for
# ``hpc_ckpt_<N>.ckpt`` versions never mistakes one for a checkpoint.
PARTIAL_PREFIX, PARTIAL_SUFFIX = ".cfnet-write-", ".partial"


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic and durable (see the module doc).

    Remote paths (``s3://`` and the like) keep Lightning's own fsspec transaction.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        # O_EXCL: a new file of our own; mode 0o666 less the umask, as open() would give it.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as file:
                torch.save(checkpoint, file)  # streamed: no second copy of it in memory
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)  # the rename itself survives a crash


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
