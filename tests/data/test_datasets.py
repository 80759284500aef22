"""Every real dataset on a tiny tree in its official on-disk format.

For each one: ``cfnet.stats`` gives exactly the class-pixel counts of the labels written (after the
dataset's label convention: VOC boundaries 255, ADE20K "other" 0, Context background, unmapped
Cityscapes ids, COCO crowd / overlap), the DataModule yields training batches at the crop size,
and a ``fast_dev_run`` training runs on it without writing anything under ``dataset.root``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from cfnet.data.labels import CITYSCAPES_LABELS
from cfnet.data.releases import (
    prepare_cityscapes,
    prepare_coco_voc,
    prepare_pascal_context,
    prepare_pascal_voc_aug,
)
from cfnet.stats import label_statistics
from support.configs import TINY_FILE_RUN, compose_config
from support.folder_trees import make_folder_tree
from support.raw_releases import (
    context59,
    make_cityscapes_tree,
    make_coco_release,
    make_context_release,
    make_sbd,
    make_voc2010_tree,
    make_voc_tree,
    tree_snapshot,
)
from support.training import train_in_process


@dataclass
class Tree:
    root: Path
    train_labels: list[np.ndarray]  # training ids (ignore = 255) of the train split, in any order
    overrides: list[str]  # dataset-specific settings the tiny tree needs
    model_overrides: tuple[str, ...] = ()


def histogram(labels: list[np.ndarray], num_classes: int) -> tuple[list[int], list[int], int]:
    """(pixels per class, images holding each class, ignored pixels) of training-id maps."""
    counts, images = np.zeros(256, np.int64), np.zeros(256, np.int64)
    for label in labels:
        hist = np.bincount(label.ravel(), minlength=256)
        counts += hist
        images += hist > 0
    assert counts[num_classes:255].sum() == 0
    return counts[:num_classes].tolist(), images[:num_classes].tolist(), int(counts[255])


def as_training_ids(raw: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Expected training ids, written independently of cfnet.data.labels' tables."""
    out = np.full(raw.shape, -1, np.int64)
    for value, train_id in mapping.items():
        out[raw == value] = train_id
    assert (out >= 0).all(), f"unexpected raw values {np.unique(raw[out < 0])}"
    return out


VOC_IDS = {i: i for i in range(21)} | {255: 255}


def build_pascal_voc(tmp: Path) -> Tree:
    masks = make_voc_tree(tmp / "root")
    train = [as_training_ids(masks[i], VOC_IDS) for i in ("2007_000032", "2007_000039")]
    return Tree(tmp / "root", train, [])


def build_pascal_voc_aug(tmp: Path) -> Tree:
    voc = make_voc_tree(tmp / "root", extra_images=("2008_000002", "2008_000003"))
    sbd = make_sbd(tmp / "benchmark_RELEASE")
    prepare_pascal_voc_aug(tmp / "benchmark_RELEASE", tmp / "root")
    # train_aug = (SBD train ∪ SBD val ∪ VOC train) − VOC val; VOC's mask wins where both exist
    ids = ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
    train = [as_training_ids(voc.get(i, sbd.get(i)), VOC_IDS) for i in ids]
    return Tree(tmp / "root", train, [])


def _context(tmp: Path, background_is_class: bool) -> Tree:
    train_ids = ("2008_000002", "2008_000004")
    make_voc2010_tree(tmp / "root", train=train_ids, val=("2008_000003",))
    maps = make_context_release(tmp / "context", ids=(*train_ids, "2008_000003"))
    prepare_pascal_context(tmp / "context", tmp / "root")
    mapping = (
        {i: i for i in range(60)}
        if background_is_class
        else {0: 255} | {i: i - 1 for i in range(1, 60)}
    )
    train = [as_training_ids(context59(maps[i]), mapping) for i in train_ids]
    return Tree(tmp / "root", train, [])


def build_ade20k(tmp: Path) -> Tree:
    """ADEChallengeData2016 as extracted: images/annotations × training/validation."""
    base = tmp / "root" / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    train = []
    for split, count in (("training", 3), ("validation", 1)):
        for k in range(1, count + 1):
            name = f"ADE_{'train' if split == 'training' else 'val'}_{k:08d}"
            (base / "images" / split).mkdir(parents=True, exist_ok=True)
            (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 256, (14, 18, 3), dtype=np.uint8)
            # ADE20K holds a few greyscale JPEGs: they must load (converted to RGB)
            mode_image = Image.fromarray(image[..., 0]) if k == 2 else Image.fromarray(image)
            mode_image.save(base / "images" / split / f"{name}.jpg")
            label = rng.integers(0, 151, (14, 18)).astype(np.uint8)
            label[0, :3] = (0, 1, 150)  # "other", first and last class
            Image.fromarray(label).save(base / "annotations" / split / f"{name}.png")
            if split == "training":
                train.append(as_training_ids(label, {0: 255} | {i: i - 1 for i in range(1, 151)}))
    return Tree(tmp / "root", train, [])


CITYSCAPES_TRAIN = {lid: 255 if tid == 255 else tid for lid, _, tid in CITYSCAPES_LABELS}


def build_cityscapes(tmp: Path) -> Tree:
    labels = make_cityscapes_tree(tmp / "root")
    train = [as_training_ids(v, CITYSCAPES_TRAIN) for k, v in labels.items() if k[:6] == "train/"]
    first = train[0][0, :6].tolist()
    assert first == [0, 13, 255, 255, 18, 11]  # road, car, unlabeled, parking, bicycle, person
    return Tree(tmp / "root", train, [])


def build_cityscapes_train_ids(tmp: Path) -> Tree:
    """The same labels through ``cfnet.prepare cityscapes`` → ``*_labelTrainIds.png``."""
    tree = build_cityscapes(tmp)
    prepare_cityscapes(tmp / "root", tmp / "prepared")
    return Tree(tmp / "prepared", tree.train_labels, ["dataset.label_type=labelTrainIds"])


def build_coco_voc(tmp: Path) -> Tree:
    expected = make_coco_release(tmp / "coco")
    prepare_coco_voc(tmp / "coco", tmp / "root")
    kept = [
        as_training_ids(m, VOC_IDS) for m in expected["train2017"].values() if (m > 0).sum() > 1000
    ]
    assert len(kept) == 1
    # one training image: batch 1, and no global-pooling branch (BatchNorm needs 2 values)
    return Tree(tmp / "root", kept, ["dataset.batch_size=1"], ("model.use_gp=false",))


def build_folder(tmp: Path) -> Tree:
    """Your own data (dataset=folder): index, palette and RGB masks, JPEG and PNG images, names
    with spaces, a sub-folder; the expected ids come from the builder, not from cfnet."""
    written = make_folder_tree(tmp / "root", train=12, val=3)
    return Tree(tmp / "root", list(written["train"].values()), [])


BUILDERS: dict[str, tuple[str, Callable[[Path], Tree]]] = {
    "pascal_voc": ("pascal_voc", build_pascal_voc),
    "pascal_voc_aug": ("pascal_voc_aug", build_pascal_voc_aug),
    "pascal_context": ("pascal_context", lambda t: _context(t, False)),
    "pascal_context60": ("pascal_context60", lambda t: _context(t, True)),
    "ade20k": ("ade20k", build_ade20k),
    "cityscapes": ("cityscapes", build_cityscapes),
    "cityscapes_trainids": ("cityscapes", build_cityscapes_train_ids),
    "coco_voc": ("coco_voc", build_coco_voc),
    "folder": ("folder", build_folder),
}


@pytest.fixture(params=list(BUILDERS), scope="module")
def dataset_tree(request, tmp_path_factory):
    name, build = BUILDERS[request.param]
    return name, build(tmp_path_factory.mktemp(request.param))


def test_stats_json_is_exact(dataset_tree, capsys):
    name, tree = dataset_tree
    overrides = [f"dataset={name}", f"dataset.root={tree.root}", "split=train", *tree.overrides]
    cfg = compose_config("stats", overrides)
    label_statistics(cfg)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    num_classes = cfg.dataset.num_classes
    pixels, images, ignored = histogram(tree.train_labels, num_classes)
    assert json.loads(last) == {
        "dataset": name,
        "split": "train",
        "num_images": len(tree.train_labels),
        "num_classes": num_classes,
        "pixels_per_class": pixels,
        "images_per_class": images,
        "ignored_pixels": ignored,
    }


def test_train_batches_come_at_the_crop_size(dataset_tree):
    name, tree = dataset_tree
    batch_size = 1 if "dataset.batch_size=1" in tree.overrides else 2
    overrides = [f"dataset={name}", f"dataset.root={tree.root}", *TINY_FILE_RUN, *tree.overrides]
    cfg = compose_config("train", overrides)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (batch_size, 3, 12, 12)
    assert batch["mask"].shape == (batch_size, 12, 12)
    values = set(batch["mask"].unique().tolist())
    assert values <= set(range(cfg.dataset.num_classes)) | {255}
    val = next(iter(datamodule.val_dataloader()))  # original resolution, one image
    assert val["image"].shape[0] == 1 and val["sizes"][0] == tuple(val["image"].shape[-2:])


def test_fast_dev_run_trains_without_writing_under_the_root(dataset_tree, tmp_path):
    name, tree = dataset_tree
    before = tree_snapshot(tree.root)
    overrides = [f"dataset={name}", f"dataset.root={tree.root}", *TINY_FILE_RUN]
    metrics = train_in_process(
        [*overrides, *tree.overrides, *tree.model_overrides, "trainer.fast_dev_run=true"],
        tmp_path / "run",
    )
    assert np.isfinite(metrics["train/loss"])
    assert tree_snapshot(tree.root) == before


@pytest.mark.parametrize("name", sorted({n for n, _ in BUILDERS.values()} | {"synthetic"}))
def test_every_dataset_config_resolves_with_its_recipe(name):
    """What ``--cfg job --resolve`` does: every interpolation (palettes included) resolves."""
    from omegaconf import OmegaConf

    # (the folder dataset reads its classes from root/classes.txt unless given)
    given = ["dataset.classes=[background,circle]"] if name == "folder" else []
    cfg = compose_config(
        "train", [f"dataset={name}", "paths.root_dir=/r", "paths.output_dir=/r/out", *given]
    )
    OmegaConf.resolve(cfg)
    data = cfg.dataset
    assert len(data.class_names) == len(data.palette) == data.num_classes
    assert len(set(data.class_names)) == data.num_classes
    assert cfg.module.palette == data.palette and all(len(c) == 3 for c in data.palette)
