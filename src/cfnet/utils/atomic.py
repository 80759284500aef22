"""Writing a file so that no reader ever sees half of it: the one way cfnet writes its outputs.

``write_atomically`` writes under a hidden temporary name in the same folder, then renames it
onto the final name (``os.replace``, atomic on POSIX and Windows within one file system): a run
that is killed or fails mid-write leaves either the old file or none under the final name, never
a truncated one. ``durable`` also flushes the file and the rename to the disk, so that they
survive a crash of the machine, not only of the process. ``cfnet.prepare`` (dataset files),
``cfnet.predict`` (masks, overlays) and checkpoints (``cfnet.lit.checkpoint_io``, durable) use it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

# The temporary name of an unfinished write: hidden, and without the final name in it, so that no
# scan for files of a kind takes one for a finished file (Lightning's for ``hpc_ckpt_<N>.ckpt``
# versions reads the number after "ckpt_" in any name holding it).
PARTIAL_PREFIX, PARTIAL_SUFFIX = ".cfnet-write-", ".partial"


def temporary_name(path: Path) -> Path:
    """The name ``path`` is written under first: ``.cfnet-write-<random>.partial`` beside it."""
    return path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}")


def write_atomically(path: Path, write: Callable[[Path], None], durable: bool = False) -> None:
    """Run ``write(tmp)`` on a temporary name next to ``path``, then rename it to ``path``.

    The temporary file is created by ``write`` itself (not ``mkstemp``, whose 0600 mode would
    make the outputs unreadable to the other users of a shared directory). On any exception,
    including KeyboardInterrupt, the temporary file is removed and ``path`` is left as it was.
    ``durable``: the file is fsync'ed before the rename, and the folder after it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)  # the rename itself


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
