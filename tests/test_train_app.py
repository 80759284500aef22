"""The training application through its real entry points (python -m cfnet.train / evaluate /
predict / report), on tiny synthetic runs."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from hydra import compose, initialize_config_dir
from PIL import Image

from cfnet.data.synthetic import CLASS_NAMES, render_scene
from support.cli import read_json, run_cli
from support.configs import CONF_DIR, FP32, TINY_DATA, TINY_NET, TINY_RUN
from support.references import assert_scores_match, reference_probs, reference_scores
from support.training import (
    SimulatedKill,
    assert_resumed_equals_straight,
    make_checkpoint,
    train_in_process,
)

USER_COMMAND = ["dataset=pascal_voc", "model.k=2", "model.heads=4"]


def test_cfg_job_shows_the_users_keys():
    out = run_cli("cfnet.train", *USER_COMMAND, "--cfg", "job").stdout
    cfg = yaml.safe_load(out)
    assert cfg["model"]["k"] == 2 and cfg["model"]["heads"] == 4
    assert cfg["dataset"]["num_classes"] == 21
    assert cfg["model"]["backbone"] == "resnet50d"  # the paper-sized default on real data
    resolved = yaml.safe_load(
        run_cli("cfnet.train", *USER_COMMAND, "--cfg", "job", "--resolve").stdout
    )
    assert resolved["model"]["num_classes"] == 21
    assert resolved["optim"]["optimizer"]["lr"] == 0.001  # VOC recipe (paper)
    assert resolved["trainer"]["max_epochs"] == 50


def test_fast_dev_run_of_the_default(tmp_path):
    result = run_cli("cfnet.train", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}")
    assert "mIoU_ambiguous" in result.stdout  # the per-class table was printed
    assert (tmp_path / "metrics" / "val.json").is_file()
    # the job's log holds the run's log records; Lightning's adverts and its always-0 FLOPs are gone
    log = (tmp_path / "train.log").read_text()
    assert "GPU available: False" in log and "lightning.pytorch" in log
    console = result.stdout + result.stderr
    assert "GPU available: False" in console and console.count("GPU available") == 1
    assert "💡" not in console and "litlogger" not in console and "FLOPs" not in console
    assert "Params: " in console  # the model summary itself is kept
    assert "it/s" in console  # the progress bar (callbacks.progress_bar: Rich's)


def test_without_the_progress_bar_callback_no_bar_is_drawn(tmp_path):
    """``~callbacks.progress_bar`` (docs/runs.md) turns the bar off: Lightning adds none."""
    result = run_cli(
        "cfnet.train",
        "trainer.fast_dev_run=true",
        "~callbacks.progress_bar",
        f"hydra.run.dir={tmp_path}",
    )
    console = result.stdout + result.stderr
    assert "mIoU_ambiguous" in result.stdout  # the run did run
    assert "it/s" not in console  # neither Rich's bar nor Lightning's own (TQDM)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny training run (2 epochs) shared by the evaluate / predict / resume tests."""
    run_dir = tmp_path_factory.mktemp("run")
    run_cli("cfnet.train", *TINY_RUN, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}")
    return run_dir


def test_training_run_writes_checkpoints_metrics_and_logs(trained_run):
    ckpts = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("best-epoch") for name in ckpts)
    for split in ("val", "test"):
        metrics = read_json(trained_run / "metrics" / f"{split}.json")
        assert {"pixAcc", "mIoU", "mIoU_ambiguous", "class_iou"} <= metrics.keys()
        assert set(metrics["class_iou"]) == set(CLASS_NAMES)
        assert (trained_run / "metrics" / f"{split}.md").read_text().startswith("## ")
    header = (trained_run / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/mIoU" in header and "train/loss" in header and "val/IoU/sea" in header
    assert (trained_run / ".hydra" / "config.yaml").is_file()


def whole_image(model, image, pad_value):
    """Class probabilities of B×3×H×W images from one plain forward pass (what validation and
    inference=whole do)."""
    return model(image).softmax(1)


def ms_flip_64(model, image, pad_value):
    """Class probabilities of B×3×64×64 images under the paper's multi-scale + flip protocol as
    documented (conf/inference/ms_flip.yaml), by hand for base = crop = 64: for each scale s the
    long side becomes ceil(64·s) (bilinear, align_corners=False); the image and its mirror image
    are each padded with normalised black to whole 64² windows at stride 42 (int(2/3 · 64)) from
    0 on, until a window reaches the far edge; overlapping windows average their logits;
    softmax, mirrored back, resized to the original size; the 2 × 6 passes are averaged."""
    size = image.shape[-1]
    total = 0
    for s in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75):
        side = math.ceil(64 * s)
        scaled = F.interpolate(image, (side, side), mode="bilinear", align_corners=False)
        starts = [0]
        while starts[-1] + 64 < side:
            starts.append(starts[-1] + 42)
        reach = starts[-1] + 64
        for view, mirrored in ((scaled, False), (scaled.flip(-1), True)):
            padded = pad_value[None, :, None, None].repeat(len(image), 1, reach, reach)
            padded[..., :side, :side] = view
            windows = [(y, x) for y in starts for x in starts]
            out = model(torch.cat([padded[..., y : y + 64, x : x + 64] for y, x in windows]))
            logits = out.new_zeros(len(image), out.shape[1], reach, reach)
            count = out.new_zeros(reach, reach)
            for (y, x), window in zip(windows, out.split(len(image)), strict=True):
                logits[..., y : y + 64, x : x + 64] += window
                count[y : y + 64, x : x + 64] += 1
            probs = (logits / count)[..., :side, :side].softmax(1)
            probs = probs.flip(-1) if mirrored else probs
            total = total + F.interpolate(probs, (size, size), mode="bilinear", align_corners=False)
    return total / 12


def test_evaluate_reproduces_the_checkpoints_validation_score(trained_run, tmp_path):
    """evaluate's val scores equal the reference (the checkpoint's weights in the plain model,
    float64, NumPy confusion matrix); and its mIoU the one training recorded for that checkpoint:
    both runs compute fp32 (FP32) on the same images with the same weights, so the two confusion
    matrices match and only the float formatting of the recorded score is left (1e-6)."""
    best = next((trained_run / "checkpoints").glob("best-epoch*.ckpt"))
    recorded = torch.load(best, weights_only=True)["callbacks"]
    score = next(
        v["best_model_score"] for k, v in recorded.items() if k.startswith("ModelCheckpoint")
    )
    run_cli(
        "cfnet.evaluate",
        f"ckpt_path={best}",
        *TINY_DATA,
        *FP32,
        "split=val",
        f"hydra.run.dir={tmp_path}",
    )
    metrics = read_json(tmp_path / "metrics" / "val.json")
    probs, masks, hp = reference_probs(best, 5, 64, whole_image)
    assert_scores_match(metrics, reference_scores(probs, masks, 7), hp["class_names"])
    assert metrics["mIoU"] == pytest.approx(float(score), abs=1e-6)


@pytest.fixture
def varied_checkpoint(tmp_path) -> Path:
    """A random tiny model whose classes follow the image (support.training.make_checkpoint)."""
    return make_checkpoint(tmp_path, "synthetic", varied=True)


def test_evaluate_protocols_single_scale_slide_equals_whole_and_ms_flip_matches_by_hand(
    varied_checkpoint, tmp_path
):
    """64² images with base = crop = 64: the authors' single-scale protocol is one plain pass,
    so it must reproduce the whole-image numbers exactly; ms_flip's scores equal those of the
    protocol computed by hand (``ms_flip_64``), and it records its protocol."""
    whole_dir, slide_dir, ms_dir = tmp_path / "whole", tmp_path / "slide", tmp_path / "ms"
    # 2 val images: the reference's float64 windows (20 per image and mirror image) are slow
    common = [
        f"ckpt_path={varied_checkpoint}",
        *TINY_DATA,
        "dataset.sizes.val=2",
        *FP32,
        "split=val",
    ]
    run_cli("cfnet.evaluate", *common, f"hydra.run.dir={whole_dir}")
    run_cli("cfnet.evaluate", *common, "inference=slide", f"hydra.run.dir={slide_dir}")
    whole, slide = (read_json(d / "metrics" / "val.json") for d in (whole_dir, slide_dir))
    # base = crop = 64, windows 2/3 of the crop apart (42 px)
    sliding = {"base_size": 64, "crop": 64, "stride": 42}
    assert slide["protocol"] == {"name": "slide", "scales": [1.0], **sliding, "flip": False}
    assert slide["class_iou"] == whole["class_iou"]
    assert whole["protocol"] == {
        "name": "whole", "scales": None, "base_size": None, "crop": None, "stride": None,
        "flip": False,
    }  # fmt: skip
    result = run_cli("cfnet.evaluate", *common, "inference=ms_flip", f"hydra.run.dir={ms_dir}")
    ms = read_json(ms_dir / "metrics" / "val.json")
    scales = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert ms["protocol"] == {"name": "ms_flip", "scales": scales, **sliding, "flip": True}
    probs, masks, hp = reference_probs(varied_checkpoint, 2, 64, ms_flip_64)
    reference = reference_scores(probs, masks, 7)
    assert_scores_match(ms, reference, hp["class_names"])
    assert abs(reference["pixAcc"] - whole["pixAcc"]) > 0.05  # the protocol matters here
    assert (ms_dir / "metrics" / "val.md").read_text().splitlines()[0].endswith(", flip")
    assert "flip" in result.stdout


@pytest.mark.slow  # 20-40 s of subprocess training: `make test-slow` (CI) keeps the 15-min budget
def test_ddp_cpu_two_processes_give_the_reference_metrics(varied_checkpoint, tmp_path):
    """5 val images over 2 processes (3 + 2, none repeated) score as on one process, and both
    equal the reference (plain model, float64, NumPy confusion matrix), not just each other."""
    common = [f"ckpt_path={varied_checkpoint}", *TINY_DATA, *FP32]
    run_cli("cfnet.evaluate", *common, f"hydra.run.dir={tmp_path / 'one'}")
    run_cli("cfnet.evaluate", *common, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'two'}")
    one, two = (read_json(tmp_path / d / "metrics" / "val.json") for d in ("one", "two"))
    probs, masks, hp = reference_probs(varied_checkpoint, 5, 64, whole_image)
    reference = reference_scores(probs, masks, 7)
    assert reference["labelled_pixels"] == 5 * 64 * 64
    assert_scores_match(one, reference, hp["class_names"])
    assert_scores_match(two, reference, hp["class_names"])
    # the same fp32 forward of each image on either side: equal but for summation order
    assert one["class_iou"] == pytest.approx(two["class_iou"], abs=1e-9)


def test_evaluate_refuses_a_dataset_with_other_classes(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    result = run_cli(
        "cfnet.evaluate",
        f"ckpt_path={ckpt}",
        "dataset=pascal_voc",
        f"hydra.run.dir={tmp_path}",
        check=False,
    )
    assert result.returncode == 2
    assert "was trained on 7 classes" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_missing_checkpoint_is_one_line(tmp_path):
    result = run_cli(
        "cfnet.evaluate",
        f"ckpt_path={tmp_path / 'nope.ckpt'}",
        f"hydra.run.dir={tmp_path}",
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: checkpoint '{tmp_path / 'nope.ckpt'}' does not exist"
    ]


def test_resume_refuses_overrides_that_change_the_run_in_one_line(trained_run):
    """A resume continues the run as configured (its config is in the checkpoint): a longer
    schedule or another model is refused naming the keys; an override equal to the run's own
    (model.heads=2) or one that only changes how it runs (dataset.num_workers) is not named."""
    last = trained_run / "checkpoints" / "last.ckpt"
    before = {p.name: p.read_bytes() for p in (trained_run / "checkpoints").iterdir()}
    result = run_cli(
        "cfnet.train",
        f"ckpt_path={last}",
        "trainer.max_epochs=3",
        "model.k=4",
        "model.heads=2",
        "dataset.num_workers=1",
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: resuming {last} continues its run as configured; these overrides would change "
        "its model, data or schedule: model.k (2 → 4), trainer.max_epochs (2 → 3). Drop them to "
        "resume, or start a new run (without ckpt_path) to train another configuration; to "
        f"train on from these weights, start it with model.init_from={last}"
    ]
    assert {p.name: p.read_bytes() for p in (trained_run / "checkpoints").iterdir()} == before


def test_evaluate_without_dataset_arguments_scores_the_checkpoints_data(trained_run, tmp_path):
    """The checkpoint says what it was trained on: 5 val images of 64² (TINY_RUN), not the
    default 300 of 160²; a dataset.* override still wins, and its difference is said."""
    best = next((trained_run / "checkpoints").glob("best-epoch*.ckpt"))

    def labelled(size: int) -> int:  # the val split as the synthetic dataset defines it
        masks = [render_scene(0, "val", i, size, 0.3, 3)[1] for i in range(5)]
        return sum(int((m != 255).sum()) for m in masks)

    result = run_cli("cfnet.evaluate", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'a'}")
    assert "dataset: synthetic as trained (config from the checkpoint)\n" in result.stderr
    assert read_json(tmp_path / "a" / "metrics" / "val.json")["labelled_pixels"] == labelled(64)
    result = run_cli(
        "cfnet.evaluate",
        f"ckpt_path={best}",
        "dataset.image_size=48",
        f"hydra.run.dir={tmp_path / 'b'}",
    )
    assert (
        "dataset: synthetic as trained (config from the checkpoint), with dataset.image_size from "
        "the command line; differs from the training data (synthetic, config from the "
        "checkpoint): image_size 64 → 48\n" in result.stderr
    )
    assert read_json(tmp_path / "b" / "metrics" / "val.json")["labelled_pixels"] == labelled(48)
    # which images of the split, from which instance of the generator: not the data's kind
    result = run_cli(
        "cfnet.evaluate",
        f"ckpt_path={best}",
        "dataset=synthetic",
        "dataset.sizes={train:8,val:3,test:4}",
        "dataset.seed=1",
        f"hydra.run.dir={tmp_path / 'c'}",
    )
    assert (
        "dataset: synthetic as given on the command line; differs from the training data "
        "(synthetic, config from the checkpoint): base_size 64 → 96, crop_size 64 → 96, "
        "image_size 64 → 96\n" in result.stderr
    )


def test_each_entry_point_reads_its_checkpoint_once(trained_run, tmp_path, monkeypatch):
    """evaluate, predict, export and a resume (in this process, as ``python -m`` runs them) read
    the checkpoint file once, cfnet's reads (``checkpoint_files``) and Lightning's together."""
    import lightning.fabric.plugins.io.torch_io as lightning_io

    import cfnet.evaluate
    import cfnet.export
    import cfnet.predict
    import cfnet.train
    from cfnet.utils import checkpoint_files

    run = tmp_path / "run"  # a copy: the resume writes into its run dir
    shutil.copytree(trained_run, run)
    ckpt = run / "checkpoints" / "last.ckpt"
    reads: list[Path] = []
    for module, name in ((checkpoint_files, "_torch_load"), (lightning_io, "pl_load")):
        read = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda path, *a, read=read, **k: reads.append(Path(path)) or read(path, *a, **k),
        )
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(render_scene(0, "test", 0, 64, 0.3, 3)[0]).save(images / "a.png")
    calls = {
        cfnet.evaluate: [f"hydra.run.dir={tmp_path / 'evaluate'}"],
        cfnet.predict: [f"input={images}", f"output={tmp_path / 'out'}"],
        cfnet.export: ["format=safetensors", f"output={tmp_path / 'export'}"],
        cfnet.train: [],  # a resume of the finished run: restored, nothing left to train, tested
    }
    for module, args in calls.items():
        reads.clear()
        monkeypatch.setattr(sys, "argv", [module.__name__, f"ckpt_path={ckpt}", *args])
        module.main()
        assert [p for p in reads if p.resolve() == ckpt.resolve()] == [ckpt], module.__name__
    assert (run / "metrics" / "test.json").is_file()


def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(tmp_path):
    """Same weights, optimizer state, LR and step as training straight through."""
    base = [*TINY_RUN, "trainer.max_epochs=3", "dataset.flip=false", "test=false"]
    train_in_process(base, tmp_path / "straight")
    with pytest.raises(SimulatedKill):
        train_in_process(
            [
                *base,
                "+callbacks.kill._target_=support.training.InterruptAfterEpoch",
                "+callbacks.kill.epoch=0",
            ],
            tmp_path / "killed",
        )
    killed = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert killed["epoch"] == 0
    train_in_process(
        [*base, f"ckpt_path={tmp_path / 'killed' / 'checkpoints' / 'last.ckpt'}"],
        tmp_path / "resumed",
    )
    straight, resumed = assert_resumed_equals_straight(
        tmp_path / "straight", tmp_path / "resumed", steps=6, rtol=1e-5, atol=1e-6
    )
    assert resumed["lr_schedulers"][0]["_last_lr"] == pytest.approx(
        straight["lr_schedulers"][0]["_last_lr"]
    )
    momentum = [s["momentum_buffer"] for s in straight["optimizer_states"][0]["state"].values()]
    momentum_r = [s["momentum_buffer"] for s in resumed["optimizer_states"][0]["state"].values()]
    for a, b in zip(momentum, momentum_r, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_predict_writes_masks_and_overlays_without_touching_the_input(trained_run, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        image, _, _ = render_scene(0, "test", i, 48 + 16 * i, 0.3, 2)
        Image.fromarray(image).save(inputs / f"scene {i}.png")  # odd file name, odd sizes
    (inputs / "notes.txt").write_text("not an image")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "out"
    run_cli(
        "cfnet.predict",
        f"ckpt_path={ckpt}",
        f"input={inputs}",
        f"output={out}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
    for i in range(2):
        mask = Image.open(out / f"scene {i}.png")
        assert mask.mode == "P" and mask.size == (48 + 16 * i, 48 + 16 * i)
        assert np.asarray(mask).max() < 7
        assert Image.open(out / f"scene {i}_overlay.png").size == mask.size
    # existing outputs are never replaced silently, and nothing is written into the input folder
    for output, refusal in ((out, "already exist"), (inputs / "pred", "inside the input folder")):
        again = run_cli(
            "cfnet.predict", f"ckpt_path={ckpt}", f"input={inputs}", f"output={output}",
            f"hydra.run.dir={tmp_path / 'run2'}", check=False,
        )  # fmt: skip
        assert again.returncode == 2 and refusal in again.stderr
    assert not (inputs / "pred").exists()


def test_two_job_multirun_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("cfnet.train", "--multirun", *TINY_RUN, "model.k=1,2", f"hydra.sweep.dir={sweep}")
    for job in ("0", "1"):
        assert (sweep / job / "metrics" / "test.json").is_file()
    result = run_cli("cfnet.report", str(sweep))
    assert "K=1" in result.stdout and "K=2" in result.stdout and "H=2" in result.stdout
    assert (sweep / "report.md").is_file() and (sweep / "report.png").is_file()


@pytest.mark.parametrize("experiment, jobs", [("table2_components", 5), ("table3_kxh", 9)])
def test_experiments_compose_every_job(experiment, jobs):
    hydra_cfg = yaml.safe_load(
        run_cli("cfnet.train", f"experiment={experiment}", "--cfg", "hydra").stdout
    )["hydra"]
    assert hydra_cfg["mode"] == "MULTIRUN"  # runs as a sweep without --multirun
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        params = dict(cfg.hydra.sweeper.params)
        grid = [[f"{k}={v}" for v in str(vals).split(",")] for k, vals in params.items()]
        combos = [[]]
        for axis in grid:
            combos = [[*c, o] for c in combos for o in axis]
        assert len(combos) == jobs
        for combo in combos:
            job = compose("train", overrides=[f"experiment={experiment}", *combo, *TINY_NET])
            model = instantiate(job.model)
            assert job.experiment_name == experiment
            if experiment == "table2_components":
                row = combo[0].split("=")[1]
                expected = {
                    "fcn": "FCN",
                    "gp": "CFNet",
                    "acf": "CFNet",
                    "acf_gp": "CFNet",
                    "acf_gp_enc": "CFNet",
                }
                assert type(model).__name__ == expected[row]
                if row != "fcn":
                    assert (model.head.acf is not None) == ("acf" in row)
                    assert (model.head.gp is not None) == ("gp" in row)
                    assert (model.head.enc is not None) == row.endswith("enc")
                    assert model.head.acf is None or (model.head.acf.k, model.head.acf.heads) == (
                        4,
                        2,
                    )


def test_wandb_offline_leaves_a_run_in_the_run_dir(tmp_path):
    run_cli(
        "cfnet.train",
        *TINY_RUN,
        "logger=wandb",
        "test=false",
        f"hydra.run.dir={tmp_path}",
        env={"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"},
    )
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(runs[0].rglob("*.wandb"))  # the run's event log, for `wandb sync`
    media = runs[0] / "files" / "media"
    # validation overlays: the images and their ground-truth / predicted class masks
    assert any((media / "images" / "val").glob("*.png"))
    assert any((media / "images" / "mask").rglob("*.png"))
    # the per-class IoU table
    assert any((media / "table").rglob("*.table.json"))


def test_slurm_multinode_recipe_composes():
    """The documented SLURM recipe: submitit launcher + DDP over nodes (not run: no cluster)."""
    out = run_cli(
        "cfnet.train",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.nodes=2",
        "hydra.launcher.tasks_per_node=4",
        "hydra.launcher.gpus_per_node=4",
        "trainer=ddp",
        "trainer.num_nodes=2",
        "trainer.devices=4",
        "--cfg",
        "all",
    ).stdout
    cfg = yaml.safe_load(out)
    launcher = cfg["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert cfg["trainer"]["num_nodes"] == 2 and cfg["trainer"]["sync_batchnorm"] is True
