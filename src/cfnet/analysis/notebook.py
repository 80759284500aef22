"""What the notebooks share: where things are, running the CLI, publishing their figures.

The notebooks train and sweep through the same entry points a user types (``python -m cfnet.train
...`` in a subprocess), so what they show is what the CLI does. Two environment variables connect
them to ``make figures``:

    CFNET_FIGURES_DIR   every figure passed to ``publish`` is also saved there as ``<name>.png``
    CFNET_CKPT, ...     each notebook documents the runs it can reuse instead of training
    CFNET_NOTEBOOK_BUDGET  ``full`` (default: the ``make train`` quickstart, minutes per model) or
                        ``smoke`` (seconds: checks that every cell runs, learns nothing). ``make
                        test`` runs the notebooks at ``smoke``; the claims they draw (CFNet beats
                        FCN; untrained attention is uniform) are asserted at ``full`` only,
                        and by the ``slow`` test ``tests/test_claims.py`` in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cfnet.utils.checkpoint_files import read_checkpoint
from cfnet.utils.run_record import RunRecord, run_record

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# The smoke budget: 64² images, a tiny model, 32 training images, one epoch. Seconds per run.
SMOKE = (
    "model.backbone=resnet10t",
    "model.channels=16",
    "model.aux_channels=8",
    "dataset.image_size=64",
    "dataset.base_size=64",
    "dataset.crop_size=64",
    "dataset.sizes={train:32,val:8,test:8}",
    "dataset.eval_batch_size=8",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",  # two steps: log both, so the curves have points
)
BUDGETS = ("full", "smoke")


def budget() -> str:
    """``CFNET_NOTEBOOK_BUDGET``: ``full`` (default) or ``smoke``; anything else is refused."""
    value = os.environ.get("CFNET_NOTEBOOK_BUDGET", "full")
    if value not in BUDGETS:
        raise ValueError(f"CFNET_NOTEBOOK_BUDGET={value!r}: expected one of {', '.join(BUDGETS)}")
    return value


def budget_overrides() -> tuple[str, ...]:
    """The ``cfnet.train`` overrides of the budget: none at ``full``, ``SMOKE`` at ``smoke``."""
    return SMOKE if budget() == "smoke" else ()


def repo_root() -> Path:
    """The checkout holding ``conf/`` (notebooks run with their own folder as working dir)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "train.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no cfnet checkout (conf/train.yaml) at or above {str(here)!r}")


def given_paths(variable: str) -> list[Path]:
    """Paths in environment variable ``variable`` (``:``-separated), relative ones taken from the
    repo root (``make figures CKPT=outputs/...`` passes them so, the notebook runs elsewhere)."""
    value = os.environ.get(variable, "")
    return [repo_root() / p for p in value.split(os.pathsep) if p]


def publish(fig: Figure, name: str) -> Figure:
    """Return ``fig`` for display; with ``CFNET_FIGURES_DIR`` set (relative: to the repo root),
    also save it there as ``<name>.png``."""
    for folder in given_paths("CFNET_FIGURES_DIR")[:1]:
        from cfnet.analysis.viz import save_figure

        print(f"saved {save_figure(fig, folder / f'{name}.png', dpi=100)}")
    return fig


def run_cli(module: str, *args: str, tail: int = 0) -> str:
    """``python -m <module> <args>`` from the repo root; prints the command, the time taken and
    the last ``tail`` lines of its output. A failure raises with the end of stderr."""
    command = [sys.executable, "-m", module, *args]
    print("$ python -m", module, " ".join(args), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=repo_root())
    if result.returncode != 0:
        raise RuntimeError(
            f"python -m {module} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    print(f"  done in {time.perf_counter() - start:.0f} s")
    if tail:
        print("\n".join(result.stdout.rstrip().splitlines()[-tail:]))
    return result.stdout


def best_checkpoint(run_dir: Path) -> Path:
    """The best-epoch checkpoint a ``cfnet.train`` run left in ``<run_dir>/checkpoints``."""
    found = sorted((Path(run_dir) / "checkpoints").glob("best-*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no checkpoints/best-*.ckpt in run dir {str(run_dir)!r}")
    return found[-1]


def trained_run(checkpoint: str | Path) -> RunRecord:
    """What ``checkpoint`` says about the ``cfnet.train`` run that wrote it
    (``cfnet.utils.run_record``): its config, whose dataset settings the notebooks render scenes
    with, and its run dir, whose curves (``csv/metrics.csv``) and scores (``metrics/``) they
    draw."""
    record = run_record(checkpoint, read_checkpoint(checkpoint))
    if record is None or record.run_dir is None:
        raise FileNotFoundError(
            f"{str(checkpoint)!r} is not in the run dir of the cfnet.train run that wrote it: the "
            "notebooks read that run's curves and scores"
        )
    return record
