"""Pascal Context (VOC 2010 images, 59 or 60 classes).

Layout (written by ``python -m cfnet.prepare pascal_context`` from the official release):
``VOCdevkit/VOC2010/{JPEGImages, SegmentationClassContext, ImageSets/SegmentationContext/*.txt}``.
Label PNGs hold 0 = background (unlabelled or one of the 400 rare classes), 1..59 = the 59 classes.
``pascal_context`` (the paper's main protocol) ignores background: 1..59 → 0..58.
``pascal_context60`` keeps it as class 0: 0..59 as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.files import FileDataModule, Pair, read_list, require_dir
from cfnet.data.labels import identity_lut, shifted_lut

LAYOUT = (
    "VOCdevkit/VOC2010/{JPEGImages, SegmentationClassContext, "
    "ImageSets/SegmentationContext/{train,val}.txt}"
)
HOW = (
    "extract VOCtrainval_03-May-2010.tar there, then run "
    "python -m cfnet.prepare pascal_context --src <PASCAL-Context release> --dst <root>"
)


@dataclass(kw_only=True, eq=False)
class ContextDataModule(FileDataModule):
    """Pascal Context on VOC 2010 images: the labels and lists ``cfnet.prepare pascal_context``
    wrote; ``background_is_class`` picks the 59-class (paper) or the 60-class protocol."""

    background_is_class: bool  # false: 59 classes, background ignored | true: 60 classes

    def pairs(self, split_name: str) -> list[Pair]:
        base = require_dir(self.root_path / "VOCdevkit" / "VOC2010", self.name, LAYOUT, HOW)
        require_dir(base / "SegmentationClassContext", self.name, LAYOUT, HOW)
        lists = base / "ImageSets" / "SegmentationContext"
        names = read_list(lists / f"{split_name}.txt", self.name, LAYOUT, HOW)
        labels = base / "SegmentationClassContext"
        return [Pair(base / "JPEGImages" / f"{n}.jpg", labels / f"{n}.png", n) for n in names]

    def lut(self) -> np.ndarray:
        make = identity_lut if self.background_is_class else shifted_lut
        return make(self.num_classes, self.ignore_index)
