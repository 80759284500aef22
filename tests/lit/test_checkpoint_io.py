"""Checkpoint files: a kill during a save never leaves a truncated file; corrupt, foreign and
malicious files are refused in one line naming the file, by every entry point that reads one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfnet.lit.checkpoint_io import AtomicCheckpointIO
from cfnet.utils.atomic import PARTIAL_PREFIX
from cfnet.utils.checkpoint_files import read_checkpoint
from support.cli import run_cli_batch
from support.configs import compose_config
from support.training import make_checkpoint

# A subprocess writes a 256 MB checkpoint over an existing last.ckpt with one of the writers; a
# thread watching the folder SIGKILLs the process as soon as a write is visible in it: last.ckpt
# changed (truncated or replaced), or another file in the folder grew past 1 MB (a temp file).
KILL_DURING_SAVE = r"""
import os, signal, sys, threading, time
from pathlib import Path
import torch
writer, folder = sys.argv[1], Path(sys.argv[2])
target = folder / "last.ckpt"
before = os.stat(target)

def watch():
    while True:
        for entry in os.scandir(folder):
            stat = entry.stat()
            changed = (stat.st_ino, stat.st_size) != (before.st_ino, before.st_size)
            if (entry.name == "last.ckpt" and changed) or (
                entry.name != "last.ckpt" and stat.st_size > 2**20
            ):
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.0002)

checkpoint = {"step": 2, "state_dict": {"w": torch.ones(64 * 2**20)}}
threading.Thread(target=watch, daemon=True).start()
if writer == "cfnet":
    from cfnet.lit.checkpoint_io import AtomicCheckpointIO
    AtomicCheckpointIO().save_checkpoint(checkpoint, target)
else:  # the harness's control: torch.save straight onto the file
    torch.save(checkpoint, target)
time.sleep(2)  # a write the watcher did not see would end here, unkilled
"""


@pytest.mark.parametrize("writer", ["cfnet", "naive"])
def test_a_kill_during_a_save_leaves_the_previous_checkpoint(writer, tmp_path):
    torch.save({"step": 1, "state_dict": {"w": torch.zeros(3)}}, tmp_path / "last.ckpt")
    result = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, writer, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr  # killed while writing
    if writer == "naive":  # the control: the harness does catch a write in progress
        with pytest.raises(ValueError, match="cannot be read"):  # empty or truncated
            read_checkpoint(tmp_path / "last.ckpt")
        return
    previous = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert previous["step"] == 1 and torch.equal(previous["state_dict"]["w"], torch.zeros(3))
    (partial,) = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    # what the kill left: a hidden temp file that no checkpoint scan takes for a checkpoint
    assert partial.name.startswith(PARTIAL_PREFIX) and "ckpt" not in partial.name


def test_a_failed_save_removes_its_temp_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)

    def disk_full(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(target, weights_only=True) == {"step": 1}


def test_training_writes_checkpoints_through_the_atomic_plugin(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_config("train", [f"trainer.default_root_dir={tmp_path}"])
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


class PickledCode:
    """Unpickling this runs ``exec``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    """Files a user could pass as ckpt_path / model.pretrained, none of them usable."""
    good = make_checkpoint(tmp_path, "synthetic")
    data = good.read_bytes()
    files = {
        "truncated": tmp_path / "truncated.ckpt",
        "random": tmp_path / "random.ckpt",
        "empty": tmp_path / "empty.ckpt",
        "foreign": tmp_path / "weights.pt",
        "malicious": tmp_path / "malicious.ckpt",
        "malicious_pretrained": tmp_path / "resnet18d.pth",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["empty"].write_bytes(b"")
    torch.save({"weights": torch.zeros(3)}, files["foreign"])  # a torch file, not a checkpoint
    marker = tmp_path / "code-was-run"
    torch.save(
        {**torch.load(good, weights_only=True), "x": PickledCode(marker)}, files["malicious"]
    )
    torch.save({"conv1.weight": PickledCode(marker)}, files["malicious_pretrained"])
    return files


WHY = {
    "truncated": "cannot be read: truncated or corrupt (its zip archive is incomplete)",
    "random": "cannot be read: not a PyTorch file of tensors and plain data",
    "empty": "cannot be read: the file is empty (0 bytes)",
    "malicious": "refused: it holds pickled code or objects (GLOBAL exec), not only tensors and",
}


@pytest.mark.slow  # 25-50 s of subprocess runs: `make test-slow` (CI) keeps the 15-min budget
def test_bad_checkpoints_are_refused_in_one_line_by_every_entry_point(bad_files, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photos / "a.png")
    entry_points = {  # module, (args), how it names the file
        "cfnet.train": (["trainer.max_epochs=1"], "checkpoint to resume from"),
        "cfnet.evaluate": ([], "checkpoint"),
        "cfnet.predict": ([f"input={photos}", f"output={tmp_path / 'out'}"], "checkpoint"),
        "cfnet.export": (["format=safetensors"], "checkpoint"),
    }
    calls, expected = [], []
    for kind in ("truncated", "random", "empty", "malicious", "foreign"):
        path = bad_files[kind]
        for module, (args, what) in entry_points.items():
            run_dir = tmp_path / "runs" / f"{module}-{kind}"
            calls.append((module, [f"ckpt_path={path}", *args, f"hydra.run.dir={run_dir}"]))
            if kind != "foreign":
                expected.append(f"error: {what} '{path}' {WHY[kind]}")
            elif module == "cfnet.train":
                expected.append(
                    f"error: {what} '{path}' is not a cfnet training checkpoint (it has no "
                    "state_dict, optimizer_states, loops, hyper_parameters)"
                )
            else:
                why = "is not a cfnet checkpoint (no hyper_parameters and state_dict)"
                expected.append(f"error: '{path}' {why}")
    pretrained = bad_files["malicious_pretrained"]
    calls.append(("cfnet.train", [f"model.pretrained={pretrained}", f"hydra.run.dir={tmp_path}"]))
    expected.append(
        f"error: model.pretrained: pretrained weights file '{pretrained}' {WHY['malicious']}"
    )

    for call, result, line in zip(calls, run_cli_batch(calls), expected, strict=True):
        where = f"{call}:\n{result.stderr}"
        assert result.returncode == 2, where
        assert result.stderr.splitlines() == [result.stderr.strip()], where  # one line
        assert result.stderr.startswith(line), where
    assert not (tmp_path / "code-was-run").exists()  # the pickled code never ran
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("runs/*/checkpoints"))


def test_the_malicious_files_do_run_code_when_unpickled_plainly(bad_files, tmp_path):
    """The control for the test above: these files are what they claim to be."""
    torch.load(bad_files["malicious"], weights_only=False)
    assert (tmp_path / "code-was-run").exists()
    os.remove(tmp_path / "code-was-run")
    torch.load(bad_files["malicious_pretrained"], weights_only=False)
    assert (tmp_path / "code-was-run").exists()
