"""How many pixels (and images) of each class a split holds, read once: what ``cfnet.stats`` prints
and what ``loss.class_weight=auto`` weighs the loss with, so the two always agree.

Every label map of the split is read un-augmented at its original resolution (images only for
their headers, to check the sizes match), in loader workers; counts are in training-id space,
after the dataset's label mapping, i.e. what the loss and the metrics see.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cfnet.data.dataset import SegmentationDataset
from cfnet.data.io import SampleError
from cfnet.utils.hardware import cpus_available, loader_workers


@dataclass
class LabelCounts:
    """The counts of one split; ``problems``: one message per bad sample left out (skip)."""

    pixels: np.ndarray  # int64 per class
    images: np.ndarray  # int64 per class: images holding at least one pixel of it
    ignored: int = 0
    num_images: int = 0
    problems: list[str] = field(default_factory=list)

    def inverse_frequency(self) -> list[float]:
        """Class weights N / (C · n_c) (N labelled pixels, C classes, n_c of class c), so a
        split with equally frequent classes weighs each 1; 0 for a class with no pixels (no
        pixel of it is ever a target, so its weight never enters the loss)."""
        total, num = self.pixels.sum(), len(self.pixels)
        return [float(total / (num * n)) if n else 0.0 for n in self.pixels.tolist()]


class _Histograms(Dataset):
    """Per-image class histograms, computed in the loader workers."""

    def __init__(self, dataset: SegmentationDataset, num_classes: int, ignore_index: int) -> None:
        self.dataset, self.num_classes, self.ignore_index = dataset, num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            mask, name = self.dataset.read_labels(index)
        except SampleError as err:
            if self.dataset.on_bad_sample == "error":
                raise
            return {"skipped": str(err)}
        hist = np.bincount(np.asarray(mask, np.int64).ravel(), minlength=256)
        known = hist[: self.num_classes].sum() + hist[self.ignore_index]
        if known != mask.size:  # cannot happen for a correct dataset reader: say so loudly
            raise SampleError(f"sample {name!r} has training ids outside 0..{self.num_classes - 1}")
        return {"counts": hist[: self.num_classes], "ignored": int(hist[self.ignore_index])}


def count_labels(
    dataset: SegmentationDataset,
    num_classes: int,
    ignore_index: int,
    num_workers: int | str,
    timeout: float,
    desc: str,
) -> LabelCounts:
    """Count every label map of ``dataset``; a bad sample raises (``on_bad_sample=error``) or is
    left out and listed in ``problems`` (``skip``)."""
    # Reading is all this loop does: with num_workers=auto, workers on every core but one.
    workers = loader_workers(num_workers, on_cpu=False, processes=1, cpus=cpus_available())
    loader = DataLoader(
        _Histograms(dataset, num_classes, ignore_index),
        batch_size=None,  # one histogram at a time, no collation
        num_workers=workers,
        timeout=timeout if workers > 0 else 0,
    )
    counts = LabelCounts(np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64))
    # (no bar when stderr is not a terminal: a log or a pipe gets the results only)
    for item in tqdm(loader, desc=desc, file=sys.stderr, leave=False, disable=None):
        if "skipped" in item:
            counts.problems.append(item["skipped"])
            continue
        hist = np.asarray(item["counts"], np.int64)
        counts.pixels += hist
        counts.images += hist > 0
        counts.ignored += int(item["ignored"])
        counts.num_images += 1
    return counts
