"""Segmentation scores from a confusion matrix (torchmetrics accumulates and syncs it).

Protocol (the paper's and the authors' code): pixAcc = correct / labelled pixels; per-class
IoU = intersection / union accumulated over the whole split; mIoU = mean over classes. A class
with an empty union (absent from both prediction and ground truth in the whole split) has no IoU:
it is reported as null and left out of the mean rather than counted as 0.

``metrics/<split>.json`` (written by :meth:`SegmentationScores.save`, read by
:func:`read_scores`) holds each figure once::

    {
      "pixAcc": 0.9786,                 # pixel accuracy, a fraction (NaN: no labelled pixel)
      "mIoU": 0.7048,                   # mean of the non-null class IoUs
      "mIoU_<group>": 0.7449,           # one per class group of the dataset, e.g. mIoU_ambiguous
      "class_iou": {"<class>": 0.97 | null, ...},   # in the dataset's class order
      "labelled_pixels": 9216000,       # pixels that counted (ignore-index pixels excluded)
      "protocol": {                     # only when written by cfnet.evaluate (an inference preset)
        "name": "ms_flip",              #   inference=<name>
        "scales": [0.5, ..., 1.75],     #   of base_size, long side; null: the original size
        "base_size": 520,               #   null when scales is null
        "crop": 512, "stride": 341,     #   sliding windows, pixels; null: the whole image at once
        "flip": true                    #   the mirrored image added
      }
    }

Files written before this schema also held ``pixel_accuracy``, ``mean_iou`` and ``group_miou``
(the same numbers again), and ``protocol`` as a line of text; :func:`read_scores` accepts them
(the numbers in the schema above, the text as it was).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix(num_classes: int, ignore_index: int) -> MulticlassConfusionMatrix:
    """The accumulator behind every score (validation, test, ``cfnet.evaluate``): counts
    (true class, predicted class) pairs over a split, summed across processes; pixels labelled
    ``ignore_index`` count nowhere, whatever is predicted there."""
    return MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)


@dataclass(frozen=True)
class SegmentationScores:
    """The scores of one split, from the confusion matrix summed over the split (and over
    processes): pixel accuracy, per-class IoU (None for a class absent from both prediction and
    ground truth), their mean, and the mean over each named class group. Logged as ``summary()``,
    printed as a table, saved as ``metrics/<split>.{json,md}`` (the module docstring's schema)."""

    pixel_accuracy: float
    mean_iou: float
    class_iou: dict[str, float | None]
    group_miou: dict[str, float]  # mIoU over named class subsets, e.g. "ambiguous"
    labelled_pixels: int

    @classmethod
    def from_confusion(
        cls,
        confusion: Tensor,
        class_names: list[str],
        class_groups: dict[str, list[int]],
    ) -> SegmentationScores:
        """confusion[i, j] = pixels of true class i predicted as j (ignored pixels excluded)."""
        cm = confusion.double()
        intersection = cm.diag()
        union = cm.sum(0) + cm.sum(1) - intersection
        iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.nan)
        labelled = cm.sum()
        pix_acc = float(intersection.sum() / labelled) if labelled > 0 else math.nan

        def mean(ids: list[int]) -> float:
            values = iou[ids]
            values = values[~values.isnan()]
            return float(values.mean()) if len(values) else math.nan

        return cls(
            pixel_accuracy=pix_acc,
            mean_iou=mean(list(range(len(class_names)))),
            class_iou={
                name: (None if math.isnan(v) else v)
                for name, v in zip(class_names, iou.tolist(), strict=True)
            },
            group_miou={group: mean(list(ids)) for group, ids in class_groups.items()},
            labelled_pixels=int(labelled),
        )

    def summary(self) -> dict[str, float]:
        """Flat headline numbers, as logged: pixAcc, mIoU, mIoU_<group>."""
        out = {"pixAcc": self.pixel_accuracy, "mIoU": self.mean_iou}
        out |= {f"mIoU_{group}": value for group, value in self.group_miou.items()}
        return out

    def to_markdown(self, title: str) -> str:
        head = " · ".join(f"{k} {100 * v:.2f}" for k, v in self.summary().items())
        lines = [f"## {title}", "", head, "", "| class | IoU (%) |", "|---|---|"]
        for name, value in self.class_iou.items():
            lines.append(f"| {name} | {'n/a' if value is None else f'{100 * value:.2f}'} |")
        return "\n".join(lines) + "\n"

    def save(
        self, directory: Path, stem: str, title: str, protocol: dict[str, Any] | None = None
    ) -> tuple[Path, Path]:
        """Write ``<stem>.json`` (the schema in the module docstring: each figure once) and
        ``<stem>.md``."""
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        record: dict[str, Any] = {
            **self.summary(),
            "class_iou": self.class_iou,
            "labelled_pixels": self.labelled_pixels,
        }
        if protocol is not None:
            record["protocol"] = protocol
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        md_path.write_text(self.to_markdown(title))
        return json_path, md_path


_OLD_SPELLING = {"pixel_accuracy": "pixAcc", "mean_iou": "mIoU"}


def read_scores(path: Path) -> dict[str, Any]:
    """A ``metrics/<split>.json`` in the current schema (module docstring), also from a file
    written before it: ``pixel_accuracy`` / ``mean_iou`` / ``group_miou`` become ``pixAcc`` /
    ``mIoU`` / ``mIoU_<group>`` where those are missing, and are dropped."""
    data = json.loads(Path(path).read_text())
    for old, new in _OLD_SPELLING.items():
        if old in data:
            data.setdefault(new, data[old])
            del data[old]
    for group, value in (data.pop("group_miou", None) or {}).items():
        data.setdefault(f"mIoU_{group}", value)
    return data
