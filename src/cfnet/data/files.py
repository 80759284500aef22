"""Datasets stored as files: (image, label map) pairs plus the release's label convention.

Every real dataset (VOC, Context, ADE20K, Cityscapes, COCO) is the same thing once its layout is
known: a list of ``Pair``s and a lookup table raw id → training id (``cfnet.data.labels``). A
subclass of ``FileDataModule`` only lists the pairs of a split and names its lookup table; reading,
checking and the bad-sample policy live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cfnet.data.datamodule import SegmentationDataModule
from cfnet.data.dataset import SegmentationDataset
from cfnet.data.inflight import InFlight
from cfnet.data.io import SampleError, image_size, map_labels, read_label, read_rgb_image


@dataclass(frozen=True)
class Pair:
    """One sample on disk: its image, its label map and the name messages and outputs use."""

    image: Path
    label: Path
    name: str


class FileSegmentation(SegmentationDataset):
    """Reads ``pairs``; raw label ids go through ``lut`` (see ``cfnet.data.labels``)."""

    def __init__(
        self,
        pairs: list[Pair],
        lut: np.ndarray,
        allow_greyscale: bool,
        transform: Callable[..., dict[str, Any]] | None,
        on_bad_sample: str,
        replace_bad: bool,
    ) -> None:
        super().__init__(transform, on_bad_sample, replace_bad)
        self.pairs, self.lut, self.allow_greyscale = pairs, lut, allow_greyscale
        self.inflight = InFlight()  # a loader worker that dies still names its file

    def __len__(self) -> int:
        return len(self.pairs)

    def read_raw_labels(self, path: Path) -> np.ndarray:
        """The label map's raw values (H×W), before the lookup; a dataset may read others."""
        return read_label(path)

    def training_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Raw values → training ids (uint8 H×W); refuses values the dataset does not define."""
        return map_labels(raw, self.lut, path)

    def _labels(self, pair: Pair, size: tuple[int, int]) -> np.ndarray:
        with self.inflight.reading(pair.label):
            raw = self.read_raw_labels(pair.label)
        if raw.shape[:2] != size:
            raise SampleError(
                f"label map {str(pair.label)!r} is {raw.shape[1]}×{raw.shape[0]} but its image "
                f"{str(pair.image)!r} is {size[1]}×{size[0]} (width×height)"
            )
        return self.training_ids(raw, pair.label)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(RGB image, training ids, name) of a pair, each file announced while read."""
        pair = self.pairs[index]
        with self.inflight.reading(pair.image):
            image = read_rgb_image(pair.image, self.allow_greyscale)
        return image, self._labels(pair, image.shape[:2]), pair.name

    def sample_name(self, index: int) -> str:
        """The pair's name, from the split's list (no file read)."""
        return self.pairs[index].name

    def read_labels(self, index: int) -> tuple[np.ndarray, str]:
        """The training ids of a pair without decoding its image (its header gives the size
        the labels must have): what ``cfnet.stats`` counts."""
        pair = self.pairs[index]
        with self.inflight.reading(pair.image):
            size = image_size(pair.image)
        return self._labels(pair, size), pair.name


def require_dir(path: Path, dataset: str, layout: str, how: str) -> Path:
    """``path`` must be a directory; otherwise one error naming it, the layout and the fix."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{dataset}: {str(path)!r} is not a directory. dataset.root must contain {layout} "
            f"({how})"
        )
    return path


def read_list(path: Path, dataset: str, layout: str, how: str) -> list[str]:
    """Sample ids, one per line, of a split list file (blank lines ignored)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{dataset}: split list {str(path)!r} not found. dataset.root must contain {layout} "
            f"({how})"
        )
    names = [line.strip().split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{dataset}: split list {str(path)!r} is empty")
    return names


@dataclass(kw_only=True, eq=False)
class FileDataModule(SegmentationDataModule):
    """A dataset on disk under ``root``; ``splits`` maps cfnet's split names (train / val / test)
    to the release's own (a list file or a folder name)."""

    root: str
    splits: dict[str, str]
    allow_greyscale: bool  # convert 8-bit greyscale images to RGB (COCO, ADE20K hold a few)

    # ---- what a dataset provides ----------------------------------------------------------
    def pairs(self, split_name: str) -> list[Pair]:
        """The (image, label) files of the release's split ``split_name``, in a fixed order."""
        raise NotImplementedError

    def lut(self) -> np.ndarray:
        """Raw label id → training id (``cfnet.data.labels``)."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------
    @property
    def root_path(self) -> Path:
        """``root`` with ``~`` expanded."""
        return Path(self.root).expanduser()

    def build_dataset(
        self,
        split: str,
        transform: Callable[..., dict[str, Any]] | None,
        replace_bad: bool = False,
    ) -> FileSegmentation:
        """The pairs of ``split``'s release split through the dataset's lookup table; a split
        the config does not map, or one with no sample, is refused naming it."""
        if split not in self.splits:
            raise ValueError(
                f"dataset {self.name!r} has no split {split!r}; dataset.splits has "
                f"{sorted(self.splits)}"
            )
        pairs = self.pairs(self.splits[split])
        if not pairs:
            raise FileNotFoundError(
                f"{self.name}: split {split!r} ({self.splits[split]}) under dataset.root="
                f"{str(self.root)!r} holds no samples"
            )
        return FileSegmentation(
            pairs, self.lut(), self.allow_greyscale, transform, self.on_bad_sample, replace_bad
        )
