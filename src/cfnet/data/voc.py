"""Pascal VOC 2012 segmentation (21 classes, background included)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfnet.data.base import SegmentationDataModule, SegmentationDataset
from cfnet.data.io import read_image, read_label

LAYOUT = "VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/<split>.txt}"


class VOCSegmentation(SegmentationDataset):
    """Samples listed in ``ImageSets/Segmentation/<split_list>.txt``; 255 = boundary/ignore."""

    def __init__(self, root: str | Path, split_list: str, transform=None) -> None:
        super().__init__(transform)
        self.base = Path(root).expanduser() / "VOCdevkit" / "VOC2012"
        list_file = self.base / "ImageSets" / "Segmentation" / f"{split_list}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(
                f"Pascal VOC split list {str(list_file)!r} not found: dataset.root={str(root)!r} "
                f"must contain {LAYOUT} (extract VOCtrainval_11-May-2012.tar there)"
            )
        self.names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        name = self.names[index]
        image = read_image(self.base / "JPEGImages" / f"{name}.jpg")
        mask = read_label(self.base / "SegmentationClass" / f"{name}.png")
        return image, mask, name


@dataclass(kw_only=True, eq=False)
class VOCDataModule(SegmentationDataModule):
    root: str
    train_list: str  # ImageSets/Segmentation/<train_list>.txt for the train split

    def build_dataset(self, split: str, transform) -> VOCSegmentation:
        return VOCSegmentation(self.root, self.train_list if split == "train" else split, transform)
