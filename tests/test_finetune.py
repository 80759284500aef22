"""Your own data end to end, and fine-tuning from a trained model.

``model.init_from`` against the source checkpoint read independently (``torch.load``), tensor by
tensor; ``model.freeze_backbone`` against the backbone's bytes before and after real training
steps; ``loss.class_weight=auto`` against weights computed here from the masks the fixture wrote.
The CLI journey: train on a folder → evaluate and predict with the checkpoint's folder dataset →
fine-tune onto fewer classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cfnet.data.labels import voc_palette
from cfnet.export import save_safetensors
from cfnet.lit import SegmentationModule
from cfnet.models import CFNet
from cfnet.models.init_from import class_layers
from fixtures_folder import CLASSES, make_folder_tree
from helpers import FP32, TINY_CFNET, make_checkpoint, read_json, run_cli

TINY = {"backbone": "resnet10t", "channels": 16, "aux": False}  # = make_checkpoint's model


def source_tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    """The segmentor's tensors of a checkpoint, read without cfnet."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A 7-class checkpoint (random weights: every tensor differs from a fresh model's)."""
    return make_checkpoint(tmp_path_factory.mktemp("source"), "synthetic")


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_init_from_loads_every_matching_tensor_and_starts_classifiers_fresh(
    fmt, source, tmp_path, capsys
):
    path = source
    if fmt == "safetensors":
        path = tmp_path / "model.safetensors"
        save_safetensors(SegmentationModule.from_checkpoint(source), path)
    expected = source_tensors(source)
    torch.manual_seed(1)
    model = CFNet(3, **TINY, init_from=str(path))
    mine = model.state_dict()
    fresh = {"head.classifier.1.weight", "head.classifier.1.bias"}
    assert class_layers(model) == fresh
    for name, tensor in mine.items():
        if name in fresh:
            assert tensor.shape[0] == 3 and expected[name].shape[0] == 7
            assert not torch.equal(tensor, expected[name][:3]), name
        else:
            assert torch.equal(tensor, expected[name]), name
    table = capsys.readouterr().out
    assert f"init_from {path} (CFNet resnet10t, 7 classes):" in table
    assert f"loaded  {len(mine) - 2:4d} tensors (backbone " in table
    assert "fresh      2 tensors: head.classifier.1.bias, head.classifier.1.weight" in table
    assert "unused     2 tensors of the file: head.classifier.1.bias, head.classifier.1.weight" in (
        table
    )


def test_init_from_another_architecture_is_refused_naming_what_differs(source):
    with pytest.raises(ValueError) as err:
        CFNet(3, **{**TINY, "backbone": "resnet50d"}, init_from=str(source))
    message = str(err.value)
    assert message.startswith(f"init_from={str(source)!r}: only ") and "\n" not in message
    assert "another architecture or backbone (backbone resnet10t → resnet50d)" in message
    with pytest.raises(ValueError) as err:  # everything matches but the Enc module
        CFNet(3, **TINY, use_enc=True, init_from=str(source))
    message = str(err.value)
    assert "that are not class layers do not match the file: head.enc." in message
    assert "(not in the file)" in message and message.endswith("use_enc False → True")


def test_freeze_backbone_keeps_weights_and_batchnorm_statistics_bit_identical():
    torch.manual_seed(0)
    model = CFNet(4, **TINY, freeze_backbone=True).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.conv[0].weight.clone()
    assert not model.backbone.training and not any(m.training for m in model.backbone.modules())
    trainable = [p for p in model.parameters() if p.requires_grad]  # as configure_optimizers
    assert not any(p.requires_grad for p in model.backbone.parameters())
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        logits = model.forward_train(torch.randn(2, 3, 32, 32)).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 32, 32)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # weights and running statistics
    assert not torch.equal(model.head.conv[0].weight, head_before)  # the head did train


# ---- the CLI journey -----------------------------------------------------------------------
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
    source = source_tensors(best)
    tuned = source_tensors(run / "checkpoints" / "last.ckpt")
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
