"""``python -m cfnet.stats dataset=<name> dataset.root=<dir> split=<split>``: label statistics.

Reads every label map of the split un-augmented at its original resolution (images are not
decoded, only their headers read to check the sizes match) and prints a per-class table, then, as
the last line of stdout, one JSON object that scripts can parse::

    {"dataset", "split", "num_images", "num_classes", "pixels_per_class", "ignored_pixels"}

``pixels_per_class`` is in training-id space (after the dataset's label mapping), so it is what
the loss and the metrics will see. A bad sample stops the run naming the file, or with
``dataset.on_bad_sample=skip`` is left out and counted (on stderr).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cfnet.cli.entry_point import hydra_main
from cfnet.data.dataset import SegmentationDataset
from cfnet.data.io import SampleError
from cfnet.utils.hardware import cpus_available, loader_workers


class LabelCounts(Dataset):
    """Per-image class histograms, computed in the loader workers."""

    def __init__(self, dataset: SegmentationDataset, num_classes: int, ignore_index: int) -> None:
        self.dataset, self.num_classes, self.ignore_index = dataset, num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            mask, name = self.dataset.read_labels(index)
        except SampleError as err:
            if self.dataset.on_bad_sample == "error":
                raise
            return {"skipped": str(err)}
        hist = np.bincount(np.asarray(mask, np.int64).ravel(), minlength=256)
        known = hist[: self.num_classes].sum() + hist[self.ignore_index]
        if known != mask.size:  # cannot happen for a correct dataset reader: say so loudly
            raise SampleError(f"sample {name!r} has training ids outside 0..{self.num_classes - 1}")
        return {"counts": hist[: self.num_classes], "ignored": int(hist[self.ignore_index])}


def label_statistics(cfg: DictConfig) -> dict[str, Any]:
    datamodule = instantiate(cfg.dataset)
    dataset = datamodule.build_dataset(cfg.split, transform=None)
    counts = LabelCounts(dataset, datamodule.num_classes, datamodule.ignore_index)
    # Reading is all this loop does: with num_workers=auto, workers on every core but one.
    workers = loader_workers(
        datamodule.num_workers, on_cpu=False, processes=1, cpus=cpus_available()
    )
    loader = DataLoader(
        counts,
        batch_size=None,  # one histogram at a time, no collation
        num_workers=workers,
        timeout=datamodule.loader_timeout if workers > 0 else 0,
    )
    pixels = np.zeros(datamodule.num_classes, np.int64)
    ignored, images, skipped = 0, 0, []
    for item in tqdm(loader, desc=f"{datamodule.name} {cfg.split}", file=sys.stderr, leave=False):
        if "skipped" in item:
            skipped.append(item["skipped"])
            continue
        pixels += np.asarray(item["counts"], np.int64)
        ignored += int(item["ignored"])
        images += 1
    if skipped:
        print(
            f"skipped {len(skipped)} bad sample(s) (dataset.on_bad_sample=skip); first: "
            f"{skipped[0]}",
            file=sys.stderr,
        )
    stats = {
        "dataset": datamodule.name,
        "split": cfg.split,
        "num_images": images,
        "num_classes": datamodule.num_classes,
        "pixels_per_class": pixels.tolist(),
        "ignored_pixels": ignored,
    }
    _print_table(stats, datamodule.class_names)
    print(json.dumps(stats))
    return stats


def _print_table(stats: dict[str, Any], class_names: list[str]) -> None:
    labelled = sum(stats["pixels_per_class"])
    total = labelled + stats["ignored_pixels"]
    table = Table(
        title=f"{stats['dataset']} · {stats['split']} · {stats['num_images']} images",
        title_justify="left",
    )
    for column in ("id", "class", "pixels", "% of labelled"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for i, (name, count) in enumerate(zip(class_names, stats["pixels_per_class"], strict=True)):
        table.add_row(str(i), name, f"{count:,}", f"{100 * count / max(labelled, 1):.2f}")
    table.add_section()
    table.add_row("", "ignored", f"{stats['ignored_pixels']:,}", "")
    table.add_row("", "total", f"{total:,}", "")
    Console(width=100).print(table)


main = hydra_main("stats", label_statistics)

if __name__ == "__main__":
    main()
