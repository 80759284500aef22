"""The repository ships what the package needs: no source, config or test file is git-ignored.

A too-broad ignore pattern (``data/`` once hid ``src/cfnet/data/``) passes every local run and
breaks every clean clone; this catches it on the developer's machine, before the commit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("src", "conf", "tests", "benchmarks", "notebooks")


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
        and p.suffix in {".py", ".yaml", ".md", ".json", ".ipynb", ".html", ".js", ".css"}
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


def test_notebooks_are_committed_without_outputs():
    """Outputs (pictures, logs, timings) would bloat the history and go stale; `make test` runs the
    notebooks and `make figures` saves their pictures under docs/img instead."""
    import nbformat

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [p.name for p in notebooks] == [
        "01_quickstart.ipynb",
        "02_cooccurrence_attention.ipynb",
        "03_ablations.ipynb",
    ]
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
