"""Your own data end to end, and fine-tuning from a trained model, through the entry points.

Train on a folder → evaluate, predict and export with the checkpoint's folder dataset → fine-tune
onto fewer classes with a frozen backbone (checked against the source checkpoint read with torch
alone) and ``loss.class_weight=auto`` (against weights computed here from the masks the fixture
wrote); the refusals before training. (``model.init_from`` and ``model.freeze_backbone`` on the
plain model: ``tests/models/test_init_from.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfnet.data.labels import voc_palette
from support.cli import read_json, run_cli
from support.configs import FP32, TINY_CFNET
from support.folder_trees import CLASSES, make_folder_tree
from support.references import segmentor_tensors

SIZES = ["dataset.base_size=64", "dataset.crop_size=48", "dataset.batch_size=4"]
RUN = [*TINY_CFNET, *SIZES, *FP32, "trainer.max_epochs=1", "~callbacks.progress_bar"]
FEWER = ["dataset.classes=[background,circle,polygon]", "dataset.label_map={3:2,128-128-0:2}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(folder root, the masks written, the best checkpoint of a 4-class training run on it)."""
    base = tmp_path_factory.mktemp("own data")
    written = make_folder_tree(base / "shapes")
    run_cli(
        "cfnet.train",
        "dataset=folder",
        f"dataset.root={base / 'shapes'}",
        *RUN,
        f"hydra.run.dir={base / 'run'}",
    )
    return base / "shapes", written, next((base / "run" / "checkpoints").glob("best-*.ckpt"))


def test_evaluate_predict_and_export_follow_the_checkpoints_folder_dataset(trained, tmp_path):
    root, written, best = trained
    evaluation = run_cli("cfnet.evaluate", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'e'}")
    assert "dataset: folder as trained (config from the checkpoint)" in evaluation.stderr
    metrics = read_json(tmp_path / "e" / "metrics" / "val.json")
    labelled = sum(int((ids != 255).sum()) for ids in written["val"].values())
    assert metrics["labelled_pixels"] == labelled and list(metrics["class_iou"]) == list(CLASSES)
    inputs = root / "images" / "val"
    run_cli("cfnet.predict", f"ckpt_path={best}", f"input={inputs}", f"output={tmp_path / 'p'}")
    top_level = sorted(p.stem for p in inputs.iterdir() if p.is_file())
    assert sorted(p.stem for p in (tmp_path / "p").glob("*_overlay.png")) == [
        f"{s}_overlay" for s in top_level
    ]
    png = Image.open(tmp_path / "p" / f"{top_level[0]}.png")
    colours = np.asarray(png.getpalette()[:12], np.uint8).reshape(4, 3)
    assert png.mode == "P" and np.array_equal(colours, voc_palette(4))  # the generated palette
    export = ["format=safetensors", f"output={tmp_path / 'x'}", f"hydra.run.dir={tmp_path / 'x'}"]
    run_cli("cfnet.export", f"ckpt_path={best}", *export)
    assert read_json(tmp_path / "x" / "model.json")["class_names"] == list(CLASSES)


def test_finetune_onto_fewer_classes_with_a_frozen_backbone(trained, tmp_path):
    root, written, best = trained
    run = tmp_path / "finetune"
    result = run_cli(
        "cfnet.train",
        "dataset=folder",
        f"dataset.root={root}",
        *FEWER,
        f"model.init_from={best}",
        "model.freeze_backbone=true",
        "loss.class_weight=auto",
        *RUN,
        f"hydra.run.dir={run}",
    )
    assert f"init_from {best} (CFNet resnet10t, 4 classes):" in result.stdout
    assert "  fresh      4 tensors: aux_head.classifier.1.bias," in result.stdout
    source = segmentor_tensors(best)
    tuned = segmentor_tensors(run / "checkpoints" / "last.ckpt")
    backbone = [k for k in source if k.startswith("backbone.")]
    assert len(backbone) > 50
    for name in backbone:  # loaded, then frozen: weights and BN statistics unchanged
        assert torch.equal(tuned[name], source[name]), name
    assert tuned["head.classifier.1.weight"].shape[0] == 3
    assert not torch.equal(tuned["head.conv.0.weight"], source["head.conv.0.weight"])  # trained
    # loss.class_weight=auto: N / (C · n_c) over the train masks, squares and triangles merged
    counts = np.zeros(3, np.int64)
    for ids in written["train"].values():
        merged = np.where(ids == 3, 2, ids)
        counts += np.bincount(merged[merged != 255], minlength=3)
    record = read_json(run / "class_weights.json")
    assert record["pixels_per_class"] == counts.tolist()
    np.testing.assert_allclose(record["weights"], counts.sum() / (3 * counts), rtol=1e-12)
    # training on from these weights is a new run: a resume that would change it says so
    refused = run_cli(
        "cfnet.train", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert last.endswith(f"start it with model.init_from={run / 'checkpoints' / 'last.ckpt'}")


def test_init_from_of_another_backbone_stops_before_training(trained, tmp_path):
    root, _, best = trained
    result = run_cli(
        "cfnet.train",
        "dataset=folder",
        f"dataset.root={root}",
        *RUN,
        "model.backbone=resnet18d",
        f"model.init_from={best}",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"error: model.init_from={str(best)!r}: ") and "\n" not in line
    assert "backbone resnet10t → resnet18d" in line and not (tmp_path / "run").exists()


def test_class_weight_must_fit_the_classes(trained, tmp_path):
    root, _, _ = trained
    result = run_cli(
        "cfnet.train", "dataset=folder", f"dataset.root={root}", *RUN, "loss.class_weight=[1,2]",
        f"hydra.run.dir={tmp_path / 'run'}", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: loss.class_weight=[1, 2]: allowed: null, auto, or a list of 4 weights >= 0 "
        "(one per class, in class order)"
    )
