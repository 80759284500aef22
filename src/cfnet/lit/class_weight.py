"""``loss.class_weight``: per-class weights of the training cross-entropy.

``null`` (the paper: none), a list (one weight per class), or ``auto``: inverse frequency
N / (C · n_c) from the pixel counts of the training split, counted as ``cfnet.stats`` counts them
(``cfnet.data.label_counts``, the same function), once at the start of a run, and recorded in
``<run dir>/class_weights.json`` with the counts they come from. The weights travel in the
checkpoints, so a resumed run uses the same ones without counting again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from cfnet.data.label_counts import count_labels
from cfnet.utils.atomic import write_atomically
from cfnet.utils.checks import is_number

RECORD = "class_weights.json"
AUTO = "auto"


def check_class_weight(value: Any, num_classes: int) -> str | list[float] | None:
    """``value`` as the module keeps it: None, ``auto`` or a list of ``num_classes`` weights."""
    if value is None or value == AUTO:
        return value
    values = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
    if (
        not isinstance(values, list | tuple)
        or len(values) != num_classes
        or not all(is_number(v) and v >= 0 for v in values)
    ):
        raise ValueError(
            f"loss.class_weight={value!r}: allowed: null, {AUTO}, or a list of {num_classes} "
            "weights >= 0 (one per class, in class order)"
        )
    return [float(v) for v in values]


def auto_class_weight(datamodule: Any, run_dir: str | Path | None) -> list[float]:
    """Inverse-frequency weights from the training split of ``datamodule`` (set up for fit);
    the counts and weights are written to ``<run_dir>/class_weights.json`` and said in a line."""
    counts = count_labels(
        datamodule.datasets["train"],
        datamodule.num_classes,
        datamodule.ignore_index,
        datamodule.num_workers,
        datamodule.loader_timeout,
        desc="loss.class_weight=auto: counting the train split",
    )
    weights = counts.inverse_frequency()
    record = {
        "split": "train",
        "num_images": counts.num_images,
        "class_names": list(datamodule.class_names),
        "pixels_per_class": counts.pixels.tolist(),
        "images_per_class": counts.images.tolist(),
        "ignored_pixels": counts.ignored,
        "skipped_samples": counts.problems,
        "formula": "N / (C * n_c): N labelled pixels, C classes, n_c pixels of class c; 0 if none",
        "weights": weights,
    }
    where = ""
    if run_dir is not None:
        path = Path(run_dir) / RECORD
        text = json.dumps(record, indent=1) + "\n"
        write_atomically(path, lambda tmp: tmp.write_text(text))
        where = f" (counts and weights in {path})"
    shown = ", ".join(
        f"{name} {w:.3g}" for name, w in zip(datamodule.class_names, weights, strict=True)
    )
    print(
        f"loss.class_weight=auto from the pixels of {counts.num_images} training images: "
        f"{shown}{where}",
        flush=True,
    )
    return weights
