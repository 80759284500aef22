"""The entry points run as a user runs them (``python -m cfnet.<name> ...``), one call or a batch,
each a process of its own (forked from ``support.cli_server``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.cli_server import forked_run


def run_cli(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` as a user would; returns the CompletedProcess.

    The process is a fork of a server that has imported the libraries already
    (``cli_server``), unless the call needs a fresh interpreter."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    result = forked_run(module, list(args), full_env, cwd) or subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python -m {module} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def run_cli_batch(
    calls: list[tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]],
    cwd: Path | None = None,
) -> list[subprocess.CompletedProcess]:
    """``run_cli(module, *args, env=env, check=False)`` for each call, in ``cwd`` (default: this
    process's); returns one CompletedProcess per call."""
    return [
        run_cli(call[0], *call[1], env=call[2] if len(call) > 2 else None, check=False, cwd=cwd)
        for call in calls
    ]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
