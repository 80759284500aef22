"""Old runs keep working: a checkpoint written before ``src/cfnet`` was grouped by role stores a
run config that names the module paths of then (``cfnet.callbacks.RNGStateCheckpoint``,
``cfnet.checkpoints.AtomicCheckpointIO``, ``cfnet.loggers.wandb_logger``, ...). Evaluating,
predicting, exporting and resuming from one still work (``cfnet.utils.run_record.MOVED``)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cfnet.data.synthetic import render_scene
from support.cli import read_json, run_cli, run_cli_batch
from support.old_checkpoint import before_regrouping, old_checkpoint, run_record_of_then
from support.training import SimulatedKill, train_in_process

OLD_NAMES = ("cfnet.callbacks.", "cfnet.checkpoints.", "cfnet.loggers.")
OFFLINE = {"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"}


def test_the_fixture_names_the_old_module_paths():
    config = before_regrouping()["cfnet_run"]["config"]
    assert all(name in config for name in OLD_NAMES)


def test_evaluate_predict_and_export_from_an_old_checkpoint(tmp_path):
    ckpt = old_checkpoint(tmp_path / "run")
    picture = tmp_path / "in" / "scene.png"
    picture.parent.mkdir()
    Image.fromarray(render_scene(0, "test", 0, 64, 0.3, 3)[0]).save(picture)
    evaluated, predicted, exported = run_cli_batch(
        [
            ("cfnet.evaluate", [f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'evaluate'}"]),
            ("cfnet.predict", [f"ckpt_path={ckpt}", f"input={picture}", f"output={tmp_path}/out"]),
            ("cfnet.export", [f"ckpt_path={ckpt}", "format=safetensors", f"output={tmp_path}/ex"]),
        ]
    )
    for result in (evaluated, predicted, exported):
        assert result.returncode == 0, result.stderr[-3000:]
    # the data of the checkpoint's run config: its 5 val images of 64², no pixel ignored
    assert "dataset: synthetic as trained (config from the checkpoint)" in evaluated.stderr
    metrics = read_json(tmp_path / "evaluate" / "metrics" / "val.json")
    assert metrics["labelled_pixels"] == 5 * 64 * 64
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scene.png",
        "scene_overlay.png",
    ]
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == [
        "model.json",
        "model.safetensors",
    ]


def test_resume_an_old_run(tmp_path):
    """A run of today's code stopped after its first epoch, its checkpoint given the run config
    of before (its callbacks, checkpoint IO and W&B logger under their old paths): the resume
    builds them, trains the second epoch, and stores today's names from then on."""
    fixture = before_regrouping()
    overrides = [o for o in fixture["cfnet_run"]["overrides"] if not o.startswith("logger=")]
    run = tmp_path / "run"
    killer = [
        "+callbacks.kill._target_=support.training.InterruptAfterEpoch",
        "+callbacks.kill.epoch=0",
    ]
    with pytest.raises(SimulatedKill):
        train_in_process([*overrides, *killer], run)
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    # today's checkpoints hold what those of then held, under the same keys
    assert list(checkpoint) == fixture["keys"]
    assert list(checkpoint["callbacks"]) == fixture["callbacks"]
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 2
    checkpoint["cfnet_run"] = run_record_of_then(run)
    torch.save(checkpoint, last)

    result = run_cli("cfnet.train", f"ckpt_path={last}", env=OFFLINE, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {last} with its run's config (the checkpoint) in {run}" in result.stdout
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4  # the second epoch, trained
    assert not any(name in resumed["cfnet_run"]["config"] for name in OLD_NAMES)
    assert "cfnet.lit.resume.RNGStateCheckpoint" in resumed["cfnet_run"]["config"]
    assert (run / "metrics" / "test.json").is_file()
    assert any((run / "wandb").glob("offline-run-*"))  # the W&B logger of the old config
