"""The evaluation numbers against independent references: a confusion matrix worked out by hand,
a float64 NumPy count of pixel sets, and torchmetrics' own multiclass Jaccard index.

The path under test is the one training and ``cfnet.evaluate`` use: ``cfnet.evaluation.metrics.
confusion_matrix`` accumulated over batches, then ``SegmentationScores.from_confusion``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from cfnet.evaluation.metrics import SegmentationScores, confusion_matrix, read_scores

IGNORE = 255


def _scores(preds: list[torch.Tensor], targets: list[torch.Tensor], num_classes: int, groups=None):
    """What the LightningModule computes: a confusion matrix over the batches, then the scores."""
    confusion = confusion_matrix(num_classes, IGNORE)
    for pred, target in zip(preds, targets, strict=True):
        confusion.update(pred, target)
    names = [f"c{i}" for i in range(num_classes)]
    return SegmentationScores.from_confusion(confusion.compute(), names, groups or {})


def test_scores_of_a_hand_worked_example():
    # target / prediction of one 2×4 image; 255 = ignored (its prediction must not count)
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    s = _scores([pred[None]], [target[None]], 4, {"pair": [1, 2]})
    # labelled pixels: 6; correct: (0,0) (0,2) (0,3) (1,0) → 4
    assert s.labelled_pixels == 6
    assert s.pixel_accuracy == pytest.approx(4 / 6)
    # class 0: TP 1, FP 1 (pixel (1,1)), FN 1 (pixel (0,1)) → 1/3
    # class 1: TP 2, FP 1 (pixel (0,1)), FN 0 → 2/3
    # class 2: TP 1, FP 0 (the prediction under the ignored pixel does not count), FN 1 → 1/2
    # class 3: never in target nor prediction → undefined, left out of the means
    assert s.class_iou == {
        "c0": pytest.approx(1 / 3),
        "c1": pytest.approx(2 / 3),
        "c2": pytest.approx(1 / 2),
        "c3": None,
    }
    assert s.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s.group_miou["pair"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def _numpy_reference(preds, targets, num_classes):
    """float64 IoU per class from pixel sets: |P ∩ T| / |P ∪ T| over labelled pixels only."""
    pred = np.concatenate([p.numpy().ravel() for p in preds])
    target = np.concatenate([t.numpy().ravel() for t in targets])
    keep = target != IGNORE
    pred, target = pred[keep], target[keep]
    iou = []
    for c in range(num_classes):
        inter = np.sum((pred == c) & (target == c), dtype=np.float64)
        union = np.sum((pred == c) | (target == c), dtype=np.float64)
        iou.append(inter / union if union else math.nan)
    return np.array(iou), float(np.mean(pred == target)), int(keep.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches_match_numpy_and_torchmetrics_jaccard(seed):
    g = torch.Generator().manual_seed(seed)
    num_classes = 6
    preds, targets = [], []
    for _ in range(3):  # three batches of 2×17×23, with ignored pixels and an absent class (5)
        target = torch.randint(0, num_classes - 1, (2, 17, 23), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.15] = IGNORE
        pred = torch.randint(0, num_classes - 1, (2, 17, 23), generator=g)
        agree = torch.rand(target.shape, generator=g) < 0.5  # correlated, not independent
        pred = torch.where(agree & (target != IGNORE), target, pred)
        preds.append(pred)
        targets.append(target)
    s = _scores(preds, targets, num_classes)

    iou, pix_acc, labelled = _numpy_reference(preds, targets, num_classes)
    assert s.labelled_pixels == labelled
    assert s.pixel_accuracy == pytest.approx(pix_acc, abs=1e-12)
    ours = [math.nan if v is None else v for v in s.class_iou.values()]
    np.testing.assert_allclose(ours, iou, rtol=0, atol=1e-12)  # NaN where NaN
    assert s.mean_iou == pytest.approx(np.nanmean(iou), abs=1e-12)

    jaccard = MulticlassJaccardIndex(num_classes, average=None, ignore_index=IGNORE)
    for pred, target in zip(preds, targets, strict=True):
        jaccard.update(pred, target)
    theirs = jaccard.compute().double()
    present = ~np.isnan(iou)  # torchmetrics scores an absent class 0 rather than undefined
    np.testing.assert_allclose(np.array(ours)[present], theirs.numpy()[present], atol=1e-6)


def test_an_empty_split_is_undefined_not_zero():
    s = _scores([torch.zeros(1, 2, 2, dtype=torch.long)], [torch.full((1, 2, 2), IGNORE)], 3)
    assert s.labelled_pixels == 0
    assert math.isnan(s.pixel_accuracy) and math.isnan(s.mean_iou)
    assert set(s.class_iou.values()) == {None}


def test_the_metrics_file_holds_each_figure_once_in_the_documented_schema(tmp_path):
    # the hand-worked example above: pixAcc 4/6, IoUs 1/3, 2/3, 1/2, class 3 absent
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    s = _scores([pred[None]], [target[None]], 4, {"pair": [1, 2]})
    protocol = {"name": "slide", "scales": [1.0], "base_size": 8, "crop": 4, "stride": 2}
    json_path, _ = s.save(tmp_path, "val", "val", protocol=protocol | {"flip": False})
    data = json.loads(json_path.read_text())
    assert set(data) == {"pixAcc", "mIoU", "mIoU_pair", "class_iou", "labelled_pixels", "protocol"}
    assert data["pixAcc"] == pytest.approx(4 / 6)
    assert data["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert data["mIoU_pair"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert data["class_iou"] == pytest.approx({"c0": 1 / 3, "c1": 2 / 3, "c2": 1 / 2, "c3": None})
    assert data["labelled_pixels"] == 6
    assert data["protocol"] == protocol | {"flip": False}
    assert read_scores(json_path) == data  # a current file is read as it is


def test_a_metrics_file_in_the_old_spelling_is_read_in_the_current_schema(tmp_path):
    # written by cfnet before the schema: the headline twice, the groups as a dict, the protocol
    # as a line of text
    old = {
        "pixAcc": 0.9, "mIoU": 0.6, "mIoU_ambiguous": 0.5,
        "pixel_accuracy": 0.9, "mean_iou": 0.6, "group_miou": {"ambiguous": 0.5},
        "class_iou": {"a": 0.7, "b": 0.5}, "labelled_pixels": 10, "protocol": "ms_flip",
    }  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_scores(tmp_path / "old.json") == {
        "pixAcc": 0.9, "mIoU": 0.6, "mIoU_ambiguous": 0.5,
        "class_iou": {"a": 0.7, "b": 0.5}, "labelled_pixels": 10, "protocol": "ms_flip",
    }  # fmt: skip
    # a file holding only the long spelling still gives the headline
    (tmp_path / "long.json").write_text(
        json.dumps({"pixel_accuracy": 0.8, "mean_iou": 0.4, "group_miou": {"x": 0.3}})
    )
    assert read_scores(tmp_path / "long.json") == {"pixAcc": 0.8, "mIoU": 0.4, "mIoU_x": 0.3}
