"""Broken files met through ``python -m cfnet.train`` with two DataLoader worker processes, as a
user meets them: a tiny VOC tree with several kinds of broken file (``support.fuzz_files``).

* ``on_bad_sample=error``: exit 2 and ONE line naming the broken file, although the error is
  raised in a worker process;
* ``on_bad_sample=skip``: training completes, every broken file is counted and listed in
  ``bad_samples.txt``;
* a worker that dies (killed by a signal, as by a decoder crash or the OOM killer): the run stops
  at once and the last line names the file the worker was reading.

Every run has a timeout: a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support.configs import TINY_FILE_RUN
from support.fuzz_files import Case, cases
from support.raw_releases import make_voc_tree

VOC = Path("VOCdevkit/VOC2012")
TIMEOUT = 120  # seconds; each run takes about 10 s here
GOOD_TRAIN = [f"2008_00000{i}" for i in range(6)]
# One broken file of each family (support.fuzz_files.cases by name), in the train and val splits.
BROKEN_TRAIN = {
    "b_truncated": "jpeg_image_cut_at_0.5",
    "b_random": "random_bytes_0",
    "b_huge_label": "png_label_100000x100000",
    "b_rgb_label": "label_mode_RGB",
}
BROKEN_VAL = {"b_val_flipped": "png_label_bit_flip_0"}
CASES = {case.name: case for case in cases()}


def broken_path(root: Path, sample: str, case: Case) -> Path:
    if case.target == "image":
        return root / VOC / "JPEGImages" / f"{sample}.jpg"
    return root / VOC / "SegmentationClass" / f"{sample}.png"


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory) -> tuple[Path, dict[Path, Case]]:
    """A VOC tree of 10 train / 2 val samples, 5 of them broken; → (root, {broken file: case})."""
    root = tmp_path_factory.mktemp("voc")
    make_voc_tree(root, train=[*GOOD_TRAIN, *BROKEN_TRAIN], val=["2008_000100", *BROKEN_VAL])
    broken = {}
    for sample, name in {**BROKEN_TRAIN, **BROKEN_VAL}.items():
        path = broken_path(root, sample, CASES[name])
        CASES[name].write(path, CASES[name].rng())
        broken[path] = CASES[name]
    return root, broken


def train(run_dir: Path, root: Path, *overrides: str, script: Path | None = None):
    """``python -m cfnet.train`` (or ``python <script>``, which runs it) on the tree, 2 workers."""
    command = [sys.executable, *([str(script)] if script else ["-m", "cfnet.train"])]
    return subprocess.run(
        [
            *command,
            "dataset=pascal_voc",
            f"dataset.root={root}",
            *TINY_FILE_RUN,
            "dataset.num_workers=2",
            "trainer.max_epochs=1",
            f"hydra.run.dir={run_dir}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=TIMEOUT,  # a hang raises TimeoutExpired: the test fails
    )


def test_a_broken_file_in_a_worker_stops_training_with_one_line_naming_it(broken_tree, tmp_path):
    root, broken = broken_tree
    result = train(tmp_path / "run", root, "dataset.on_bad_sample=error")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    named = [path for path in broken if repr(str(path)) in errors[0]]
    assert len(named) == 1, errors[0]
    assert re.search(broken[named[0]].expect, errors[0]), errors[0]


def test_with_skip_training_completes_and_lists_every_broken_file(broken_tree, tmp_path):
    root, broken = broken_tree
    result = train(tmp_path / "run", root, "dataset.on_bad_sample=skip", "test=false")
    assert result.returncode == 0, result.stderr[-3000:]
    listed = (tmp_path / "run" / "bad_samples.txt").read_text().splitlines()
    assert sorted(re.search(r"'([^']+)'", line).group(1) for line in listed) == sorted(
        str(path) for path in broken
    )
    for line in listed:
        path = next(p for p in broken if repr(str(p)) in line)
        assert re.search(broken[path].expect, line), line
    assert f"skipped {len(broken)} bad sample(s) (dataset.on_bad_sample=skip)" in result.stdout


DIES_READING = """
    import os, runpy, signal, sys
    import torch.utils.data
    import cfnet.data.files as files

    read = files.read_rgb_image

    def read_or_die(path, allow_greyscale):  # a decoder crash, the OOM killer: SIGKILL
        if torch.utils.data.get_worker_info() is not None and path.name == {name!r}:
            os.kill(os.getpid(), signal.SIGKILL)
        return read(path, allow_greyscale)

    files.read_rgb_image = read_or_die
    sys.argv[0] = "cfnet.train"
    runpy.run_module("cfnet.train", run_name="__main__")
"""


def test_a_worker_killed_while_reading_stops_the_run_and_the_file_is_named(tmp_path):
    """A worker that dies cannot raise; PyTorch notices at once (no hang), and the file it was
    reading is printed when the process exits (``cfnet.data.inflight``)."""
    root = tmp_path / "root"
    make_voc_tree(root, train=GOOD_TRAIN, val=["2008_000100"])
    victim = root / VOC / "JPEGImages" / f"{GOOD_TRAIN[3]}.jpg"
    script = tmp_path / "dies_reading.py"
    script.write_text(textwrap.dedent(DIES_READING.format(name=victim.name)))
    result = train(tmp_path / "run", root, script=script)
    assert result.returncode != 0
    # PyTorch's words depend on which of its checks sees the death first
    died = (
        r"DataLoader worker \(pid(\(s\))? \d+\) (is killed by signal: Killed|exited unexpectedly)"
    )
    assert re.search(died, result.stderr), result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    named = re.escape(repr(str(victim)))
    note = rf"note: DataLoader worker \(pid \d+\) never finished reading {named}; if it died"
    assert re.fullmatch(note + " or failed there, that file is the likely cause", last), last


HANGS_READING = """
    import runpy, sys, time
    import torch.utils.data
    import cfnet.data.files as files

    read = files.read_rgb_image

    def read_or_hang(path, allow_greyscale):  # a stalled mount, a decoder that never returns
        if torch.utils.data.get_worker_info() is not None and path.name == {name!r}:
            time.sleep(3600)
        return read(path, allow_greyscale)

    files.read_rgb_image = read_or_hang
    sys.argv[0] = "cfnet.train"
    runpy.run_module("cfnet.train", run_name="__main__")
"""


@pytest.mark.slow  # 20-40 s of subprocess training: `make test-slow` (CI) keeps the 15-min budget
def test_a_worker_stuck_reading_stops_the_run_after_the_loader_timeout_naming_the_file(tmp_path):
    """No hang: after ``dataset.loader_timeout`` s without a batch the run stops in one line, and
    the file the silent worker was reading is named at exit."""
    root = tmp_path / "root"
    make_voc_tree(root, train=GOOD_TRAIN, val=["2008_000100"])
    victim = root / VOC / "JPEGImages" / f"{GOOD_TRAIN[3]}.jpg"
    script = tmp_path / "hangs_reading.py"
    script.write_text(textwrap.dedent(HANGS_READING.format(name=victim.name)))
    result = train(tmp_path / "run", root, "dataset.loader_timeout=3", script=script)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [
        "error: DataLoader timed out after 3 seconds (dataset.loader_timeout): a loader worker "
        "sent no batch in that time, e.g. stuck reading a file (a stalled filesystem); its file "
        "is named below"
    ], result.stderr[-3000:]
    named = re.escape(repr(str(victim)))
    assert re.fullmatch(
        rf"note: DataLoader worker \(pid \d+\) never finished reading {named};.*", lines[-1]
    )
