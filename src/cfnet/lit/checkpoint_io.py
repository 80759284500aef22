"""Writing checkpoints without ever leaving half a file: Lightning's checkpoint IO, atomic.

Lightning's ``TorchCheckpointIO`` serialises the checkpoint into memory, writes it to
``tempfile.mkstemp()`` (``$TMPDIR``) and ``shutil.move``-s it into place. That is a rename --
atomic -- only when ``$TMPDIR`` is on the run dir's filesystem; on a cluster with a node-local
``/tmp`` and a shared output filesystem the move is a copy into the final path, so a job killed
during the copy leaves a truncated ``last.ckpt`` where the previous good one was (and nothing is
fsync'ed either way). ``AtomicCheckpointIO`` streams the checkpoint into a temporary file next to
the target, fsyncs it, ``os.replace``-s it over the target and fsyncs the directory
(``cfnet.utils.atomic``, durable): a reader sees the old file or the new one, never a part of one.

Reading: a checkpoint the entry point has read already (``cfnet.train``'s resume, read once
before the run to find its config and run dir) is handed over (``hand_over``), and Lightning's
resume gets those contents instead of reading the file a second time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cfnet.utils.atomic import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic and durable (see the module doc).

    Remote paths (``s3://`` and the like) keep Lightning's own fsspec transaction.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handed_over: tuple[str, dict[str, Any]] | None = None

    def hand_over(self, path: str | Path, checkpoint: dict[str, Any]) -> None:
        """The contents of ``path`` as the entry point read them: the next ``load_checkpoint``
        of ``path`` (Lightning's resume) returns them instead of reading the file again."""
        self._handed_over = (os.path.abspath(os.path.expanduser(path)), checkpoint)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        handed_over, self._handed_over = self._handed_over, None
        if handed_over is not None and handed_over[0] == os.path.abspath(os.path.expanduser(path)):
            return handed_over[1]
        if map_location is None:
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location, weights_only)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomically(Path(path), lambda tmp: _stream(checkpoint, tmp), durable=True)


def _stream(checkpoint: dict[str, Any], path: Path) -> None:
    """``checkpoint`` serialised straight into a new file (no second copy of it in memory)."""
    with open(path, "xb") as file:
        torch.save(checkpoint, file)
