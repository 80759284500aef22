"""Writing a file so that no reader ever sees half of it.

``write_atomically`` writes under a hidden temporary name in the same folder, then renames it
onto the final name (``os.replace``, atomic on POSIX and Windows within one file system): a run
that is killed or fails mid-write leaves either the old file or none under the final name, never
a truncated one. ``cfnet.prepare`` (dataset files) and ``cfnet.predict`` (masks, overlays) use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The hidden name ``path`` is written under first: ``.<name>.<pid>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary name next to ``path``, then rename it to ``path``.

    The temporary file is created by ``write`` itself (not ``mkstemp``, whose 0600 mode would
    make the outputs unreadable to the other users of a shared directory). On any exception,
    including KeyboardInterrupt, the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
