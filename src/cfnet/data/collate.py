"""Batching samples of different sizes: evaluation sees whole images, each at its own size."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cfnet.data.sample import Batch, Sample, SkippedSample


def pad_collate(
    samples: Sequence[Sample | SkippedSample], image_fill: Sequence[float], ignore_index: int
) -> Batch:
    """Batch images of different sizes: pad bottom/right (image with black, mask with ignore).

    ``sizes`` keeps each image's own (H, W) so evaluation can score exactly the real pixels;
    skipped samples (see ``SegmentationDataset``) are dropped, their messages kept in ``skipped``.
    """
    skipped = [message for s in samples for message in s.get("skipped", [])]
    good = [s for s in samples if "image" in s]
    sizes = [tuple(s["image"].shape[-2:]) for s in good]
    height = max((h for h, _ in sizes), default=1)
    width = max((w for _, w in sizes), default=1)
    images = torch.tensor(image_fill, dtype=torch.float32)[:, None, None].repeat(
        len(good), 1, height, width
    )
    masks = torch.full((len(good), height, width), ignore_index, dtype=torch.long)
    for i, s in enumerate(good):
        h, w = sizes[i]
        images[i, :, :h, :w] = s["image"]
        masks[i, :h, :w] = s["mask"]
    return {
        "image": images,
        "mask": masks,
        "name": [s["name"] for s in good],
        "sizes": sizes,
        "skipped": skipped,
    }
