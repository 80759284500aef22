"""``python -m cfnet.cooccurrence ckpt_path=… [split=val]``: the class co-occurrence it learned.

Over the split (every image, or the first ``images``), one forward pass per image: for the pixels
of each ground-truth class a, the share of their attention mass on each class b divided by b's
share of the image (the lift, ``cfnet.analysis.cooccurrence``), beside the labels' own
co-occurrence (the share of images with a that also hold b). Prints each class's strongest
partner and writes ``<output>/cooccurrence_<split>.json`` and ``.png`` (the two matrices as heat
maps). A model without an ACF module (FCN, ``model.use_acf=false``) is refused in one line.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from cfnet.analysis.cooccurrence import (
    Sample,
    acf_shape,
    inspection_size,
    measure_cooccurrence,
    no_map_reason,
)
from cfnet.analysis.viz import cooccurrence_matrices
from cfnet.cli.entry_point import hydra_main
from cfnet.cli.model_loading import load_model
from cfnet.cli.validate import check_cooccurrence_config
from cfnet.utils.atomic import write_atomically


def class_cooccurrence(cfg: DictConfig) -> dict[str, Any]:
    """Measure, print and write the matrices of ``cfg.ckpt_path`` on ``cfg.split``."""
    check_cooccurrence_config(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    module = load_model(cfg)
    net, hp = module.net, module.hparams
    if (reason := no_map_reason(net)) is not None:
        raise ValueError(
            f"checkpoint {cfg.ckpt_path!r}: {reason}, so it has no co-occurrence map to measure "
            "(cfnet.evaluate and cfnet.predict work with it)"
        )
    dataset = instantiate(cfg.dataset).build_dataset(cfg.split, transform=None)
    total = len(dataset) if cfg.images is None else min(cfg.images, len(dataset))
    heads, k = acf_shape(net)
    size_of = functools.partial(
        inspection_size, max_size=cfg.max_size, heads=heads, k=k,
        output_stride=net.backbone.output_stride, max_map_mb=cfg.max_map_mb,
    )  # fmt: skip

    def samples() -> Iterator[Sample]:
        for index in tqdm(range(total), desc=f"{cfg.dataset.name} {cfg.split}", file=sys.stderr):
            image, mask, name = dataset.read(index)
            yield index, name, image, mask

    result = measure_cooccurrence(
        net.cooccurrence, samples(), num_classes=hp.num_classes, ignore_index=hp.ignore_index,
        size_of=size_of, mean=list(hp.mean), std=list(hp.std),
    )  # fmt: skip
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "dataset": cfg.dataset.name,
        "split": cfg.split,
        "max_size": cfg.max_size,
        **result.to_json(list(hp.class_names)),
    }
    print_partners(report)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"cooccurrence_{cfg.split}"
    # one key a line, each matrix row on one line of its own: readable, and diffs stay small
    lines = [
        f" {json.dumps(key)}: "
        + (
            "[\n" + ",\n".join(f"  {json.dumps(v)}" for v in value) + "\n ]"
            if isinstance(value, list) and value and isinstance(value[0], list | dict)
            else json.dumps(value)
        )
        for key, value in report.items()
    ]
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    write_atomically(stem.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    title = f"{Path(str(cfg.ckpt_path)).name} · {cfg.dataset.name} {cfg.split} · {total} images"
    figure = cooccurrence_matrices(
        _array(report["lift"]), _array(report["label_cooccurrence"]), report["class_names"], title
    )
    write_atomically(
        stem.with_suffix(".png"), lambda tmp: figure.savefig(tmp, format="png", dpi=120)
    )
    print(f"wrote {stem}.json and {stem}.png")
    return report


def _array(rows: list[list[float | None]]) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)


def print_partners(report: dict[str, Any]) -> None:
    """One line per class: the class its pixels look at most (off the diagonal), its lift, and
    how often the labels hold both."""
    names = report["class_names"]
    print(f"{'class a':<16} {'looks most at b':<16} {'lift':>7} {'images with a that hold b':>26}")
    for a, b in enumerate(report["strongest_partner"]):
        if b is None:
            print(f"{names[a]:<16} {'–':<16}")
            continue
        share = report["label_cooccurrence"][a][b]
        shown = "–" if share is None else f"{100 * share:.0f} %"
        print(f"{names[a]:<16} {names[b]:<16} {report['lift'][a][b]:>6.2f}× {shown:>26}")


main = hydra_main("cooccurrence", class_cooccurrence)

if __name__ == "__main__":
    main()
