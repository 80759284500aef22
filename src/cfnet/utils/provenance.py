"""Which code wrote a file: the commit of cfnet's git checkout.

A model card names it beside ``cfnet.__version__``, and every results file of the benchmarks
records it, so that a number can be traced to the code that produced it. An installed wheel has
no commit to name (``None``); nor does a checkout that cfnet's source lies inside of without
being its own (a virtual environment inside another project's repository).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]  # src/cfnet in a checkout


def code_commit() -> str | None:
    """The checkout's short commit, ``+changes`` when its working tree differs from it; None when
    cfnet does not run from its own git checkout."""
    git = ["git", "-C", str(SOURCE)]
    try:
        top = subprocess.run([*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    except OSError:  # no git on this machine
        return None
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() / "src" / "cfnet" != SOURCE:
        return None
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
    return head.stdout.strip() + ("+changes" if dirty.strip() else "")
