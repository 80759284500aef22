"""Cityscapes fine annotations (19 evaluated classes).

Official layout: ``leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png`` and
``gtFine/<split>/<city>/<frame>_gtFine_labelIds.png``. ``label_type=labelIds`` maps labelIds to
trainIds on the fly with the official table (ids not evaluated → ignore);
``label_type=labelTrainIds`` reads the ``*_gtFine_labelTrainIds.png`` files that
``python -m cfnet.prepare cityscapes`` (or cityscapesScripts) writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.files import FileDataModule, Pair, require_dir
from cfnet.data.labels import cityscapes_label_id_lut, cityscapes_train_id_lut
from cfnet.utils.checks import one_of

LABEL_TYPES = ("labelIds", "labelTrainIds")
SUFFIX = "_leftImg8bit.png"


@dataclass(kw_only=True, eq=False)
class CityscapesDataModule(FileDataModule):
    """Cityscapes fine: a split is its ``<city>/`` folders; ``label_type`` says which label files
    are read, and so which lookup table maps them to the 19 trainIds."""

    label_type: str  # labelIds | labelTrainIds

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("label_type", self.label_type, LABEL_TYPES)

    def pairs(self, split_name: str) -> list[Pair]:
        layout = (
            f"leftImg8bit/{split_name}/<city>/*{SUFFIX} and "
            f"gtFine/{split_name}/<city>/*_gtFine_{self.label_type}.png"
        )
        how = "extract leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip there"
        if self.label_type == "labelTrainIds":
            how += "; python -m cfnet.prepare cityscapes --src <download> --dst <root> writes them"
        images = require_dir(self.root_path / "leftImg8bit" / split_name, self.name, layout, how)
        labels = require_dir(self.root_path / "gtFine" / split_name, self.name, layout, how)
        pairs = []
        for path in sorted(images.glob(f"*/*{SUFFIX}")):
            frame = path.name[: -len(SUFFIX)]
            label = labels / path.parent.name / f"{frame}_gtFine_{self.label_type}.png"
            pairs.append(Pair(path, label, frame))
        return pairs

    def lut(self) -> np.ndarray:
        if self.label_type == "labelIds":
            return cityscapes_label_id_lut(self.ignore_index)
        return cityscapes_train_id_lut(self.ignore_index)
