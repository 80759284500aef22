"""The albumentations pipelines: the paper's training augmentation and the evaluation transform.

Both end normalised (ImageNet mean / std) as float tensors; ``normalised_black`` is the value of a
black pixel after that normalisation, what crops, batches and sliding windows are padded with.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2


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
    """
    lo, hi = (round(s * base_size) for s in scale_range)
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
