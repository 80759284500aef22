"""``python -m cfnet.stats dataset=<name> dataset.root=<dir> [split=all|train|val|test]``.

Label statistics: reads every label map of each split (``split=all``, the default: every split
the dataset has) un-augmented at its original resolution (images are not decoded, only their
headers read to check the sizes match; ``cfnet.data.label_counts``) and prints a per-class table
per split (pixels, their share, images holding the class), then, as the last lines of stdout,
one JSON object per split that scripts can parse::

    {"dataset", "split", "num_images", "num_classes", "pixels_per_class", "images_per_class",
     "ignored_pixels"}

``pixels_per_class`` is in training-id space (after the dataset's label mapping), so it is what
the loss and the metrics will see; ``loss.class_weight=auto`` weighs the training loss with the
same counts of the train split. Every bad sample is found in one pass and listed on stderr, one
line each naming the file; then the run stops (status 2), or with ``dataset.on_bad_sample=skip``
they are left out of the counts.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from cfnet.cli.entry_point import hydra_main
from cfnet.data.io import SampleError
from cfnet.data.label_counts import count_labels


def label_statistics(cfg: DictConfig) -> list[dict[str, Any]]:
    """The statistics of each split asked for (printed); every problem listed before stopping."""
    policy = cfg.dataset.on_bad_sample
    datamodule = instantiate(cfg.dataset, on_bad_sample="skip")  # all problems, then the policy
    splits = datamodule.split_names() if cfg.split == "all" else [cfg.split]
    results, problems = [], []
    for split in splits:
        dataset = datamodule.build_dataset(split, transform=None)
        counts = count_labels(
            dataset,
            datamodule.num_classes,
            datamodule.ignore_index,
            datamodule.num_workers,
            datamodule.loader_timeout,
            desc=f"{datamodule.name} {split}",
        )
        problems += counts.problems
        stats = {
            "dataset": datamodule.name,
            "split": split,
            "num_images": counts.num_images,
            "num_classes": datamodule.num_classes,
            "pixels_per_class": counts.pixels.tolist(),
            "images_per_class": counts.images.tolist(),
            "ignored_pixels": counts.ignored,
        }
        _print_table(stats, datamodule.class_names)
        results.append(stats)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and policy == "error":
        raise SampleError(
            f"{len(problems)} bad sample(s) in {datamodule.name} ({', '.join(splits)}), listed "
            "above; fix them, or set dataset.on_bad_sample=skip to leave them out"
        )
    if problems:
        print(
            f"skipped {len(problems)} bad sample(s) (dataset.on_bad_sample=skip), listed above",
            file=sys.stderr,
        )
    for stats in results:
        print(json.dumps(stats))
    return results


def _print_table(stats: dict[str, Any], class_names: list[str]) -> None:
    labelled = sum(stats["pixels_per_class"])
    total = labelled + stats["ignored_pixels"]
    table = Table(
        title=f"{stats['dataset']} · {stats['split']} · {stats['num_images']} images",
        title_justify="left",
    )
    for column in ("id", "class", "pixels", "% of labelled", "images"):
        table.add_column(column, justify="left" if column == "class" else "right")
    rows = zip(class_names, stats["pixels_per_class"], stats["images_per_class"], strict=True)
    for i, (name, count, images) in enumerate(rows):
        share = f"{100 * count / max(labelled, 1):.2f}"
        table.add_row(str(i), name, f"{count:,}", share, f"{images:,}")
    table.add_section()
    table.add_row("", "ignored", f"{stats['ignored_pixels']:,}", "", "")
    table.add_row("", "total", f"{total:,}", "", f"{stats['num_images']:,}")
    Console(width=100).print(table)


main = hydra_main("stats", label_statistics)

if __name__ == "__main__":
    main()
