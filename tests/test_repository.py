"""The repository ships what the package needs: no source, config or test file is git-ignored.

A too-broad ignore pattern (``data/`` once hid ``src/cfnet/data/``) passes every local run and
breaks every clean clone; this catches it on the developer's machine, before the commit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("src", "conf", "tests", "benchmarks")


def _in_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True
    )
    return probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == ROOT


@pytest.mark.skipif(not _in_git_checkout(), reason="not a git checkout of cfnet")
def test_no_shipped_file_is_git_ignored():
    files = [
        str(p.relative_to(ROOT))
        for top in SHIPPED
        for p in (ROOT / top).rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".yaml", ".md", ".json"}
        and "__pycache__" not in p.parts
    ]
    assert files
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(files),
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == [], f"git ignores files the package needs: {ignored}"
