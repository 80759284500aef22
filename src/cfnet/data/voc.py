"""Pascal VOC 2012 segmentation (21 classes, background included), with or without SBD.

``pascal_voc``: ``VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/*.txt}``
as extracted from ``VOCtrainval_11-May-2012.tar``. ``pascal_voc_aug`` adds the SBD annotations
(``SegmentationClassAug`` and ``train_aug.txt``, 10,582 images), written by
``python -m cfnet.prepare pascal_voc_aug``. Masks are palette PNGs whose indices are the class ids;
255 marks object boundaries and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.files import FileDataModule, Pair, read_list, require_dir
from cfnet.data.labels import voc_lut


@dataclass(kw_only=True, eq=False)
class VOCDataModule(FileDataModule):
    """``splits`` maps train/val to list names under ``ImageSets/Segmentation``."""

    mask_dir: str  # SegmentationClass (VOC) | SegmentationClassAug (VOC + SBD)

    def _layout(self) -> tuple[str, str]:
        layout = (
            f"VOCdevkit/VOC2012/{{JPEGImages, {self.mask_dir}, "
            f"ImageSets/Segmentation/{{{', '.join(self.splits.values())}}}.txt}}"
        )
        how = "extract VOCtrainval_11-May-2012.tar there"
        if self.mask_dir != "SegmentationClass":
            how += ", then run python -m cfnet.prepare pascal_voc_aug --src <SBD> --dst <root>"
        return layout, how

    def pairs(self, split_name: str) -> list[Pair]:
        layout, how = self._layout()
        base = require_dir(self.root_path / "VOCdevkit" / "VOC2012", self.name, layout, how)
        require_dir(base / self.mask_dir, self.name, layout, how)
        names = read_list(
            base / "ImageSets" / "Segmentation" / f"{split_name}.txt", self.name, layout, how
        )
        return [
            Pair(base / "JPEGImages" / f"{n}.jpg", base / self.mask_dir / f"{n}.png", n)
            for n in names
        ]

    def lut(self) -> np.ndarray:
        return voc_lut(self.num_classes, self.ignore_index)
