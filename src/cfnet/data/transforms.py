"""The albumentations pipelines: the paper's training augmentation and the evaluation transform.

Both end normalised (ImageNet mean / std) as float tensors; ``normalised_black`` is the value of a
black pixel after that normalisation, what crops, batches and sliding windows are padded with.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from cfnet.utils.checks import is_number


def normalised_black(mean: Sequence[float], std: Sequence[float]) -> list[float]:
    """Black after normalisation: what crops, batches and sliding windows are padded with."""
    return [-m / s for m, s in zip(mean, std, strict=True)]


def train_transform(
    *,
    base_size: int,
    crop_size: int,
    scale_range: Sequence[float],
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    ignore_index: int,
) -> A.Compose:
    """The paper's training augmentation (as in the authors' code).

    Rescale so the LONG side is uniform in ``scale_range`` × ``base_size``, pad bottom/right to the
    crop (image with black, mask with ``ignore_index``), random crop, random horizontal flip,
    ImageNet normalisation.

    A crop larger than the largest rescaled image is refused: padding never forbids a crop, but
    every crop of every image would then hold padding on two sides, which is always a mistake
    (usually a crop meant for another ``base_size``).
    """
    scales = list(scale_range)
    if len(scales) != 2 or not all(is_number(s) for s in scales) or not 0 < scales[0] <= scales[1]:
        raise ValueError(f"scale_range={scales}: must be [low, high] with 0 < low <= high")
    lo, hi = (round(s * base_size) for s in scales)
    if crop_size > hi:
        raise ValueError(
            f"crop_size={crop_size}: larger than the largest rescaled image (scale_range[1] × "
            f"base_size = {scales[1]} × {base_size} = {hi}), so every crop would hold padding on "
            f"two sides; allowed: 1 .. {hi}"
        )
    steps: list[A.BasicTransform] = [
        A.LongestMaxSize(max_size=list(range(lo, hi + 1))),  # uniform over integer long sides
        A.PadIfNeeded(
            min_height=crop_size,
            min_width=crop_size,
            position="top_left",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=ignore_index,
        ),
        A.RandomCrop(crop_size, crop_size),
    ]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    steps += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(steps)


def eval_transform(*, mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Evaluation sees the whole image at its original resolution, only normalised."""
    return A.Compose([A.Normalize(mean=mean, std=std), ToTensorV2()])
