"""A training loss that turns NaN stops the run with one line naming the step, before the update,
and leaves every checkpoint written before it byte for byte as it was."""

from __future__ import annotations

import os

from support.cli import run_cli
from support.configs import ROOT, TINY_RUN

TESTS_ON_PATH = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}

# One step per epoch (4 images, batch 4) and an absurd LR: step 0 is computed with the initial
# weights (finite loss, epoch 0's checkpoints are written), its update blows the weights up, and
# step 1's loss is NaN.
DIVERGING = [
    *TINY_RUN,
    "dataset.sizes={train:4,val:2,test:2}",
    "optim.optimizer.lr=1e30",
    "test=false",
]


def test_a_nan_loss_stops_with_its_step_and_keeps_the_checkpoints(tmp_path):
    # A 3-epoch run killed as epoch 1 starts (once: the resumed run keeps the callback)...
    kill = [
        "+callbacks.kill._target_=support.training.InterruptAfterEpoch",
        "+callbacks.kill.epoch=0",
        f"+callbacks.kill.marker={tmp_path / 'killed'}",
    ]
    first = run_cli(
        "cfnet.train",
        *DIVERGING,
        "trainer.max_epochs=3",
        *kill,
        f"hydra.run.dir={tmp_path}",
        env=TESTS_ON_PATH,
        check=False,
    )
    assert first.returncode == 1 and "killed after epoch 0" in first.stderr
    checkpoints = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    assert sorted(before) == ["best-epoch000.ckpt", "last.ckpt"]

    # ...resumed to train on: the first step of epoch 1 meets the NaN.
    result = run_cli(
        "cfnet.train", f"ckpt_path={checkpoints / 'last.ckpt'}", env=TESTS_ON_PATH, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: non-finite training loss at step 1 (epoch 1, batch 0): main=nan, aux=nan, "
        "total=nan; stopped before updating the weights, the checkpoints already written are "
        "left as they were (lower optim.optimizer.lr, or check the data)"
    )
    after = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    assert after == before  # same files, same bytes
    assert not list(tmp_path.glob("hpc_ckpt_*.ckpt"))  # and no preemption checkpoint either
