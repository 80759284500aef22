"""ADE20K / SceneParsing (MIT Scene Parsing Benchmark, 150 classes).

Layout as extracted from ``ADEChallengeData2016.zip``:
``ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}``.
Label 0 is "other" and ignored; 1..150 → 0..149.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.files import FileDataModule, Pair, require_dir
from cfnet.data.labels import shifted_lut

LAYOUT = "ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}"
HOW = "extract ADEChallengeData2016.zip there"


@dataclass(kw_only=True, eq=False)
class ADE20KDataModule(FileDataModule):
    """ADE20K as extracted: image and annotation of a sample share a stem, so a split is its
    images folder; labels are shifted (0, "other", ignored)."""

    def pairs(self, split_name: str) -> list[Pair]:
        base = require_dir(self.root_path / "ADEChallengeData2016", self.name, LAYOUT, HOW)
        images = require_dir(base / "images" / split_name, self.name, LAYOUT, HOW)
        labels = require_dir(base / "annotations" / split_name, self.name, LAYOUT, HOW)
        return [
            Pair(path, labels / f"{path.stem}.png", path.stem)
            for path in sorted(images.glob("ADE_*.jpg"))
        ]

    def lut(self) -> np.ndarray:
        return shifted_lut(self.num_classes, self.ignore_index)
