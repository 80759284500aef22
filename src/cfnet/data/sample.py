"""The data contract: what a dataset returns for one index, and what the loaders hand the model.

Typed so that the keys and their meaning are stated once, here, and a type checker follows them
from ``SegmentationDataset.__getitem__`` through ``pad_collate`` to the LightningModule's steps.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from torch import Tensor


class Sample(TypedDict):
    """One usable sample, as ``SegmentationDataset.__getitem__`` returns it."""

    image: Tensor | np.ndarray  # float32 3×H×W, normalised (transform=None: uint8 H×W×3 RGB)
    mask: Tensor | np.ndarray  # int64 H×W training ids, ignore_index unlabelled (raw: H×W ints)
    name: str  # the sample's id, named in messages and prediction files
    skipped: list[str]  # one message per bad sample this one replaced (training, replace_bad)


class SkippedSample(TypedDict):
    """The marker a bad evaluation sample becomes with ``on_bad_sample=skip``.

    ``pad_collate`` drops it from the batch and keeps its message, so it is scored nowhere and
    still counted (``cfnet.lit.reports.BadSampleReport``).
    """

    skipped: list[str]  # the message naming the file and what is wrong with it


class Batch(TypedDict):
    """What the loaders hand the LightningModule (``pad_collate``); B counts only good samples."""

    image: Tensor  # float32 B×3×H×W, padded bottom/right with normalised black to the largest
    mask: Tensor  # int64 B×H×W, padded with ignore_index
    name: list[str]  # B sample ids
    sizes: list[tuple[int, int]]  # each image's own (H, W) before padding: score only real pixels
    skipped: list[str]  # messages of every bad sample dropped or replaced in this batch
