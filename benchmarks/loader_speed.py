"""Benchmark: the folder dataset's training loader against the Pascal VOC one, in one run.

The same pictures (500×375 JPEGs, a VOC image's size) and masks are written three times: as a
Pascal VOC tree (palette PNGs, ``dataset=pascal_voc``), as a folder tree with the same palette PNGs
(``dataset=folder``) and as a folder tree with RGB colour masks. Each is read through its real
DataModule's training loader at the paper's crop size (base 520, crop 480: the random rescale,
pad, crop and flip, normalisation) in one process (``num_workers=0``), i.e. the throughput of one
loader worker. The rounds alternate the three pipelines, each round starting with another of
them, so a busy machine slows them alike; the median of the rounds and the ratio to VOC are
reported (the issue asks folder ≥ 0.9 × VOC).

    python benchmarks/loader_speed.py [--images 48] [--rounds 5]

Saves benchmarks/results/loader_speed.{json,md} with the record every results file has
(``results_files``: date, commit, machine, torch) and the load average before and after. Not a
test: no time is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.data.labels import voc_palette
from results_files import ROOT, markdown, save_results

NUM_CLASSES = 21
BASE, CROP = 520, 480  # the paper's (design notes: training recipe)


def write_trees(root: Path, images: int) -> None:
    """The same pictures and masks as a VOC tree, a folder tree and a folder tree of RGB masks."""
    rng = np.random.default_rng(0)
    voc = root / "voc" / "VOCdevkit" / "VOC2012"
    names = [f"2007_{i:06d}" for i in range(images)]
    colours = voc_palette(NUM_CLASSES)
    for i, name in enumerate(names):
        photo = Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8))
        photo = photo.resize((500, 375), Image.BILINEAR)
        ids = np.kron(rng.integers(0, NUM_CLASSES, (15, 20)), np.ones((25, 25))).astype(np.uint8)
        ids[::50, :] = 255  # some unlabelled pixels, as VOC's boundaries
        mask = Image.fromarray(ids, mode="P")
        mask.putpalette(voc_palette().tobytes())
        rgb = Image.fromarray(colours[np.where(ids == 255, 0, ids)])
        for image_path, mask_path, picture in (
            (voc / "JPEGImages", voc / "SegmentationClass", mask),
            (root / "folder" / "images" / "train", root / "folder" / "masks" / "train", mask),
            (root / "rgb" / "images" / "train", root / "rgb" / "masks" / "train", rgb),
        ):
            splits = ["train"] if image_path.name != "train" or i >= 4 else ["train", "val"]
            for split in splits:  # (the folder trees: a val folder of 4, as VOC's val list)
                images_dir, masks_dir = image_path.parent / split, mask_path.parent / split
                if image_path.name != "train":
                    images_dir, masks_dir = image_path, mask_path
                images_dir.mkdir(parents=True, exist_ok=True)
                masks_dir.mkdir(parents=True, exist_ok=True)
                photo.save(images_dir / f"{name}.jpg", quality=90)
                picture.save(masks_dir / f"{name}.png")
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for split in ("train", "val"):
        (lists / f"{split}.txt").write_text("\n".join(names) + "\n")
    for tree in ("folder", "rgb"):
        (root / tree / "classes.txt").write_text("".join(f"c{i}\n" for i in range(NUM_CLASSES)))


def datamodule(dataset: str, root: Path):
    overrides = [f"dataset={dataset}", f"dataset.root={root}", f"dataset.base_size={BASE}"]
    overrides += [f"dataset.crop_size={CROP}", "dataset.num_workers=0", "dataset.batch_size=1"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    module = instantiate(cfg.dataset)
    module.setup("fit")
    return module


def images_per_second(module) -> tuple[int, float]:
    """One epoch of the training loader (seeded: the same crops every round)."""
    loader = module.train_dataloader()
    start = time.perf_counter()
    count = sum(batch["image"].shape[0] for batch in loader)
    return count, count / (time.perf_counter() - start)


def load_average() -> list[float] | None:
    """Runnable processes over 1, 5 and 15 minutes: how busy the machine was (2 cores: 2 = full)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48, help="pictures per tree")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load_before = load_average()
    pipelines = {
        "pascal_voc (palette PNG masks)": ("pascal_voc", "voc"),
        "folder (palette PNG masks)": ("folder", "folder"),
        "folder (RGB colour masks)": ("folder", "rgb"),
    }
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    with tempfile.TemporaryDirectory() as tmp:
        write_trees(Path(tmp), args.images)
        modules = {name: datamodule(d, Path(tmp) / sub) for name, (d, sub) in pipelines.items()}
        for module in modules.values():  # warm-up: decoders, the first allocations
            next(iter(module.train_dataloader()))
        counts = {}
        order = list(modules)
        for round_ in range(args.rounds):  # each round starts with another pipeline
            for name in order[round_ % 3 :] + order[: round_ % 3]:
                counts[name], rate = images_per_second(modules[name])
                rates[name].append(rate)
    voc = statistics.median(rates["pascal_voc (palette PNG masks)"])
    rows = [
        {
            "pipeline": name,
            "images_per_epoch": counts[name],
            "images_per_s_per_worker": round(statistics.median(r), 1),
            "min_max": f"{min(r):.1f}–{max(r):.1f}",
            "vs_voc": round(statistics.median(r) / voc, 3),
        }
        for name, r in rates.items()
    ]
    report = {
        "load_average_1_5_15_min": {"before": load_before, "after": load_average()},
        "setup": f"{args.images} pictures of 500×375 (JPEG q90), base {BASE}, crop {CROP}, "
        f"batch 1, num_workers 0 (one process = one loader worker), median of {args.rounds} "
        "alternating rounds",
        "rows": rows,
    }
    text = (
        f"{report['setup']}; load average (1, 5, 15 min) before {load_before}, after "
        f"{report['load_average_1_5_15_min']['after']}.\n\n{markdown(rows)}\n"
    )
    print(text)
    save_results("loader_speed", report, text)


if __name__ == "__main__":
    main()
