"""The dataset base: one sample per index, and what happens to a sample that cannot be used.

A ``SegmentationDataset`` reads one sample (RGB uint8 image, mask of training ids with
``ignore_index`` for unlabelled pixels) and passes it through its albumentations transform
(``cfnet.data.transforms``); each dataset subclass only says how to ``read`` a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cfnet.data.io import SampleError
from cfnet.data.sample import Sample, SkippedSample
from cfnet.data.sampling import SampleKey, seed_augmentation
from cfnet.utils.checks import one_of

ON_BAD_SAMPLE = ("error", "skip")


class SegmentationDataset(Dataset):
    """Base dataset: subclasses implement ``read``; the transform turns it into tensors.

    A sample that cannot be used raises ``SampleError`` naming the file. With
    ``on_bad_sample="skip"`` it is reported instead: an evaluation sample becomes a marker
    ``{"skipped": [message]}`` (``SkippedSample``) that ``pad_collate`` drops (so it is scored
    nowhere), and a training sample is replaced by the next good one (a training batch keeps its
    size, which DDP needs); the messages travel in the batch so that
    ``cfnet.lit.reports.BadSampleReport`` can count them.

    Training loaders ask for ``(index, seed)`` keys (``cfnet.data.sampling``): the random
    augmentation of that sample is then drawn from ``seed``, so it is the same in every run.
    """

    def __init__(
        self,
        transform: Callable[..., dict[str, Any]] | None,
        on_bad_sample: str = "error",
        replace_bad: bool = False,
    ) -> None:
        self.transform = transform
        self.on_bad_sample = one_of("on_bad_sample", on_bad_sample, ON_BAD_SAMPLE)
        self.replace_bad = replace_bad

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(image H×W×3 uint8 RGB, mask H×W integer training ids, sample name)."""
        raise NotImplementedError

    def sample_name(self, index: int) -> str:
        """The name of sample ``index`` (what ``read`` returns as its name), for looking a sample
        up by name (``cfnet.explore``); datasets whose names are listed say it without reading."""
        return self.read(index)[2]

    def read_labels(self, index: int) -> tuple[np.ndarray, str]:
        """(mask H×W training ids, name) without decoding the image (for ``cfnet.stats``)."""
        _, mask, name = self.read(index)
        return mask, name

    def __getitem__(self, key: int | SampleKey) -> Sample | SkippedSample:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if not 0 <= index < len(self):  # ends ``for sample in dataset`` (the sequence protocol)
            raise IndexError(f"sample {index} of a dataset of {len(self)}")
        skipped: list[str] = []
        for attempt in range(len(self)):  # ``replace_bad``: walk on to the next good sample
            try:
                image, mask, name = self.read((index + attempt) % len(self))
            except SampleError as err:
                if self.on_bad_sample == "error":
                    raise
                skipped.append(str(err))
                if self.replace_bad:
                    continue
                return {"skipped": skipped}
            if self.transform is None:
                return {"image": image, "mask": mask, "name": name, "skipped": skipped}
            if seed is not None:
                seed_augmentation(self.transform, seed)
            out = self.transform(image=image, mask=mask)
            return {
                "image": out["image"],
                "mask": out["mask"].long(),
                "name": name,
                "skipped": skipped,
            }
        raise SampleError(f"every one of the {len(self)} samples is bad; first: {skipped[0]}")
