"""Independent reference scores: what a checkpoint scores on the synthetic split, computed without
cfnet.evaluation, the data pipeline or Lightning (the checkpoint's weights in the plain model,
float64, a NumPy confusion matrix); tests compare what ``cfnet.evaluate`` writes with it. And a
checkpoint's segmentor tensors read with torch alone (``segmentor_tensors``)."""

from __future__ import annotations

from pathlib import Path

# ---- independent reference scores ----------------------------------------------------------
# What a checkpoint scores on the synthetic split, computed without cfnet.evaluation,
# the data pipeline or Lightning: the checkpoint's weights in the plain model (cfnet.models, built
# from the checkpoint's own model config), images rendered and normalised by hand, float64, and
# a NumPy confusion matrix. Tests compare what ``cfnet.evaluate`` writes with it.


def plain_model(ckpt_path: Path):
    """(the checkpoint's segmentor as a plain nn.Module in eval mode, its hparams)."""
    import torch
    from hydra.utils import instantiate

    ckpt = torch.load(ckpt_path, weights_only=True)
    hparams = ckpt["hyper_parameters"]
    model = instantiate({**hparams["model"], "pretrained": None, "init_from": None})
    model.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()})
    return model.eval(), hparams


def synthetic_split(split: str, count: int, size: int, mean, std):
    """(float64 1×3×H×W images, H×W masks): the first ``count`` samples of ``split`` of the
    synthetic dataset (default seed, layout and scene family), normalised as documented:
    (x/255 − mean)/std."""
    import numpy as np
    import torch

    from cfnet.data.synthetic import render

    images, masks = [], []
    for i in range(count):
        image, mask = render("single", 0, split, i, size, 0.3, 3)
        x = (image.astype(np.float64) / 255 - np.asarray(mean)) / np.asarray(std)
        images.append(torch.from_numpy(x).permute(2, 0, 1)[None])
        masks.append(mask)
    return images, masks


def reference_probs(ckpt_path: Path, count: int, size: int, probs_of, tie: float = 1e-3):
    """(C×H×W float64 class probabilities, masks, hparams) of the checkpoint's model on the first
    ``count`` synthetic val images of ``size``², ``probs_of(model, image, pad_value)`` computing
    them in float64. Those of the first image in float32 must lie within ``tie / 10`` of them
    (``reference_scores`` allows a run ``tie / 2``: 5× room for the order of another float32
    run's sums), so a float32 run picks the same class wherever the two best float64
    probabilities are ``tie`` apart. (One image: float64 convolutions are slow on the CPU.)"""
    import numpy as np
    import torch

    model, hparams = plain_model(ckpt_path)
    images, masks = synthetic_split("val", count, size, hparams["mean"], hparams["std"])
    black = torch.tensor([-m / s for m, s in zip(hparams["mean"], hparams["std"], strict=True)])
    with torch.no_grad():  # one batch: the model sees each image on its own (eval mode)
        p64 = list(probs_of(model.double(), torch.cat(images), black.double()).numpy())
        p32 = probs_of(model.float(), images[0].float(), black.float())[0].numpy()
    drift = float(np.abs(p64[0] - p32).max())
    assert drift < tie / 10, f"float32 probabilities {drift:.2g} from float64: raise tie"
    return p64, masks, hparams


def reference_scores(
    probs: list, masks: list, num_classes: int, tie: float = 1e-3, ignore_index: int = 255
) -> dict:
    """pixAcc, per-class IoU and mIoU of the argmax of ``probs`` (C×H×W float64 arrays) against
    ``masks``, from a ``np.bincount`` confusion matrix; with how far a run that computes the same
    probabilities to within ``tie / 2`` (fp32) may be from them.

    A pixel whose top two probabilities are ``tie`` or more apart has the same argmax in such a
    run; one that is not (a near tie) may go to any class within ``tie`` of its maximum. ``k_c``
    near-tie pixels that have class c among those candidates move c's intersection and union by
    at most ``k_c`` each, hence its IoU I/U by at most 2·k_c / (U − k_c); ``k`` near ties move
    pixAcc by at most k / labelled. A class with an empty union has no IoU (left out of the mean).
    """
    import numpy as np

    confusion = np.zeros((num_classes, num_classes), np.int64)
    near = np.zeros(num_classes, np.int64)
    ties = 0
    for p, mask in zip(probs, masks, strict=True):
        keep = mask != ignore_index
        pred = p.argmax(0)
        confusion += np.bincount(
            mask[keep].astype(np.int64) * num_classes + pred[keep], minlength=num_classes**2
        ).reshape(num_classes, num_classes)
        candidates = (p >= p.max(0, keepdims=True) - tie) & keep
        tied = candidates.sum(0) > 1
        ties += int(tied.sum())
        near += (candidates & tied).sum((1, 2))
    labelled = int(confusion.sum())
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = [float(i / u) if u else None for i, u in zip(inter, union, strict=True)]
    slack = [2 * k / (u - k) if u > k else 1.0 for k, u in zip(near, union, strict=True)]
    present = [c for c in range(num_classes) if iou[c] is not None]
    return {
        "pixAcc": float(inter.sum() / labelled),
        "class_iou": iou,
        "mIoU": float(np.mean([iou[c] for c in present])),
        "labelled_pixels": labelled,
        "pixAcc_slack": ties / labelled,
        "class_iou_slack": slack,
        "mIoU_slack": float(np.mean([slack[c] for c in present])),
    }


def assert_scores_match(written: dict, reference: dict, class_names: list[str]) -> None:
    """A ``metrics/<split>.json`` equals the reference, to its near-tie slack plus float rounding
    (1e-9: both divide the same integer counts)."""
    import pytest

    assert written["labelled_pixels"] == reference["labelled_pixels"]
    assert written["pixAcc"] == pytest.approx(
        reference["pixAcc"], abs=reference["pixAcc_slack"] + 1e-9
    )
    assert written["mIoU"] == pytest.approx(reference["mIoU"], abs=reference["mIoU_slack"] + 1e-9)
    for name, iou, slack in zip(
        class_names, reference["class_iou"], reference["class_iou_slack"], strict=True
    ):
        if iou is None:
            assert written["class_iou"][name] is None, name
        else:
            assert written["class_iou"][name] == pytest.approx(iou, abs=slack + 1e-9), name


def segmentor_tensors(ckpt_path: Path) -> dict:
    """The segmentor's tensors of a checkpoint (``net.*`` of its state dict, prefix dropped), read
    with ``torch.load`` alone: what ``model.init_from`` must have loaded, or a frozen part kept."""
    import torch

    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
