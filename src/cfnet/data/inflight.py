"""What each process is reading, so that a DataLoader worker that dies still names its file.

A loader worker that crashes in a decoder (a segfault) or is killed (the OOM killer, a signal)
raises nothing: the main process only learns from PyTorch that "DataLoader worker (pid N) is
killed by signal: …", with no file name. So every file read is announced beforehand in a small
per-process file and withdrawn when the read ends, successfully or with a ``SampleError`` (which
names the file itself). When the main process exits, an announcement still there is a read that
never ended, and it is printed on stderr::

    note: DataLoader worker (pid 4242) never finished reading '…/2007_000032.jpg'; …

An unexpected exception during a read (a ``MemoryError``, a bug) also leaves its announcement, so
its traceback is followed by the same note. The cost is two ``pwrite`` calls per file. The
announcements live in ``$TMPDIR/cfnet-reads-<main pid>/<reader pid>``, removed at exit; they work
with every multiprocessing start method (the object pickles as the folder's name).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cfnet.data.io import SampleError

_FDS: dict[tuple[str, int], int] = {}  # (folder, pid) → this process's announcement file
_WATCHED: set[str] = set()  # folders the current process reports on at exit


def report(folder: str) -> None:
    """At exit: print every read that never ended, then remove the folder."""
    for entry in sorted(Path(folder).glob("*")):
        path = entry.read_bytes().split(b"\n", 1)[0].decode(errors="replace")
        if path:
            reader = "this process" if entry.name == str(os.getpid()) else "DataLoader worker"
            print(
                f"note: {reader} (pid {entry.name}) never finished reading {path!r}; if it died "
                "or failed there, that file is the likely cause",
                file=sys.stderr,
            )
    shutil.rmtree(folder, ignore_errors=True)


class InFlight:
    """Announces the file being read (``with inflight.reading(path): …``).

    Made by the process that builds the dataset, which then reports at its exit; copies in loader
    workers (forked or unpickled) announce into the same folder, one file per process.
    """

    def __init__(self, folder: str | None = None) -> None:
        """``folder``: where to announce (by default one per process, reported at its exit)."""
        self.folder = folder or os.path.join(tempfile.gettempdir(), f"cfnet-reads-{os.getpid()}")
        if self.folder not in _WATCHED:  # the first dataset of this process
            _WATCHED.add(self.folder)
            shutil.rmtree(self.folder, ignore_errors=True)  # left by a killed process of this pid
            atexit.register(report, self.folder)

    def _fd(self) -> int:
        key = (self.folder, os.getpid())  # a forked worker inherits its parent's table
        if key not in _FDS:
            os.makedirs(self.folder, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            _FDS[key] = os.open(os.path.join(self.folder, str(key[1])), flags, 0o600)
        return _FDS[key]

    @contextmanager
    def reading(self, path: Path) -> Iterator[None]:
        fd = self._fd()
        os.pwrite(fd, f"{path}\n".encode(errors="backslashreplace"), 0)
        finished = True
        try:
            yield
        except SampleError:  # names the file itself
            raise
        except Exception:  # unexpected: stays announced, reported at exit with the file
            finished = False
            raise
        finally:  # also after KeyboardInterrupt / SystemExit: an interruption, not the file
            if finished:
                os.pwrite(fd, b"\n", 0)
