"""COCO 2017 restricted to the 20 Pascal VOC categories (the paper's pre-training for VOC).

Layout: the official ``{train2017,val2017}/*.jpg`` and ``annotations/instances_*2017.json``, plus
``voc_masks/{train2017,val2017}/<id>.png`` and ``voc_masks/{train2017,val2017}.txt`` written by
``python -m cfnet.prepare coco_voc`` (instances painted in annotation order; crowd regions and
the other 60 categories are background; images with ≤ 1000 VOC-class pixels are left out, as in
the authors' code). Masks use VOC ids 0..20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.files import FileDataModule, Pair, read_list, require_dir
from cfnet.data.labels import voc_lut

LAYOUT = "{train2017,val2017}/*.jpg and voc_masks/{train2017,val2017}{.txt,/*.png}"
HOW = "run python -m cfnet.prepare coco_voc --src <COCO 2017 download> --dst <root>"


@dataclass(kw_only=True, eq=False)
class COCOVOCDataModule(FileDataModule):
    """COCO restricted to VOC's classes: the masks and split lists ``cfnet.prepare coco_voc``
    wrote, beside the official images; labels read as VOC's."""

    def pairs(self, split_name: str) -> list[Pair]:
        root = self.root_path
        images = require_dir(root / split_name, self.name, LAYOUT, HOW)
        masks = require_dir(root / "voc_masks" / split_name, self.name, LAYOUT, HOW)
        names = read_list(root / "voc_masks" / f"{split_name}.txt", self.name, LAYOUT, HOW)
        return [Pair(images / f"{n}.jpg", masks / f"{n}.png", n) for n in names]

    def lut(self) -> np.ndarray:
        return voc_lut(self.num_classes, self.ignore_index)
