"""Builders of tiny raw dataset releases, in the official formats, for tests.

Each ``make_*`` writes a miniature copy of one official download (same directory layout, same file
formats: JPEG/PNG via PIL, MATLAB files via ``scipy.io.savemat``, COCO json with polygon and RLE
segmentations) and returns the label arrays it wrote, so a test can compute the expected output
of ``cfnet.prepare`` or class-pixel counts without re-reading the files. Contents are deterministic
(seeded by the image id), and different builders draw different labels for the same id, so a
test can tell which source a converted mask came from.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from cfnet.data.labels import CITYSCAPES_LABELS, CONTEXT59_NAMES, voc_palette

Size = tuple[int, int]  # (height, width)


def _rng(*keys: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, keys)).encode()))


def _write_jpeg(path: Path, size: Size, seed: object) -> np.ndarray:
    image = _rng("image", seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return image


def _write_list(path: Path, ids: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def _blocks(rng: np.random.Generator, values: Sequence[int], size: Size, block: int = 4):
    """A label map of ``block``-pixel squares drawn from ``values`` (int64 H×W)."""
    h, w = size
    coarse = rng.choice(np.asarray(values), ((h + block - 1) // block, (w + block - 1) // block))
    return np.kron(coarse, np.ones((block, block), np.int64))[:h, :w]


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (mtime_ns, size)} of everything under ``root`` (links not followed)."""
    snap = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            stat = path.lstat()
            snap[str(path.relative_to(root))] = (stat.st_mtime_ns, stat.st_size)
    return snap


# ---- Pascal VOC 2012 + SBD ----------------------------------------------------------------------


def make_voc_tree(
    root: Path,
    train: Sequence[str] = ("2007_000032", "2007_000039"),
    val: Sequence[str] = ("2007_000033",),
    extra_images: Sequence[str] = (),
    size: Size = (12, 16),
) -> dict[str, np.ndarray]:
    """The VOC 2012 trainval release as extracted in ``root``:

    ``root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg`` for every id of train, val and extra_images
    (extra_images: pictures with no VOC mask, e.g. the SBD-only ones);
    ``SegmentationClass/<id>.png`` (palette PNG, indices = class ids 0..20, a 1-pixel 255
    boundary ring) and ``ImageSets/Segmentation/{train,val}.txt`` for train and val.
    Returns {id: uint8 mask} of the masks written.
    """
    base = Path(root) / "VOCdevkit" / "VOC2012"
    masks = {}
    for i in [*train, *val, *extra_images]:
        _write_jpeg(base / "JPEGImages" / f"{i}.jpg", size, i)
    for i in [*train, *val]:
        mask = _blocks(_rng("voc", i), range(21), size).astype(np.uint8)
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 255
        image = Image.fromarray(mask)
        image.putpalette(voc_palette().tobytes())
        path = base / "SegmentationClass" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        masks[i] = mask
    _write_list(base / "ImageSets" / "Segmentation" / "train.txt", train)
    _write_list(base / "ImageSets" / "Segmentation" / "val.txt", val)
    return masks


def make_sbd(
    src: Path,
    train: Sequence[str] = ("2007_000039", "2008_000002"),
    val: Sequence[str] = ("2008_000003",),
    size: Size = (12, 16),
) -> dict[str, np.ndarray]:
    """The SBD release ``benchmark_RELEASE`` as ``src``:

    ``src/dataset/cls/<id>.mat`` (MATLAB struct ``GTcls`` with ``Segmentation`` uint8 H×W of
    class ids 0..20, no 255; ``Boundaries``; ``CategoriesPresent``) for every id of train and
    val, and ``src/dataset/{train,val}.txt``. Returns {id: uint8 segmentation}.
    """
    dataset = Path(src) / "dataset"
    (dataset / "cls").mkdir(parents=True, exist_ok=True)
    masks = {}
    for i in [*train, *val]:
        seg = _blocks(_rng("sbd", i), range(21), size).astype(np.uint8)
        present = np.unique(seg[seg > 0]).astype(np.uint8)
        gt = {"Segmentation": seg, "Boundaries": np.zeros(1), "CategoriesPresent": present}
        savemat(dataset / "cls" / f"{i}.mat", {"GTcls": gt})
        masks[i] = seg
    _write_list(dataset / "train.txt", train)
    _write_list(dataset / "val.txt", val)
    return masks


# ---- Pascal Context -----------------------------------------------------------------------------

# A stand-in for the release's labels.txt: 459 classes, ids 1..459, "2: aeroplane" as in the
# release; the 59 classes sit at ids unrelated to their training ids (a converter must map by
# name), the other 400 are rare classes that become background.
CONTEXT_RELEASE_LABELS: dict[int, str] = {i: f"rare_class_{i}" for i in range(1, 460)}
CONTEXT_RELEASE_LABELS[1] = "accordion"
CONTEXT_RELEASE_LABELS.update({2 + 7 * k: name for k, name in enumerate(CONTEXT59_NAMES)})
CONTEXT_RELEASE_ID: dict[str, int] = {n: i for i, n in CONTEXT_RELEASE_LABELS.items()}


def context59(label_map: np.ndarray) -> np.ndarray:
    """Expected ``cfnet.prepare pascal_context`` output (0..59) of a release ``LabelMap``."""
    lut = np.zeros(max(CONTEXT_RELEASE_LABELS) + 1, np.uint8)
    for train_id, name in enumerate(CONTEXT59_NAMES, 1):
        lut[CONTEXT_RELEASE_ID[name]] = train_id
    return lut[label_map]


def make_context_release(
    src: Path,
    ids: Sequence[str] = ("2008_000002", "2008_000003"),
    size: Size = (12, 16),
    drop_names: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """The PASCAL-Context release (trainval.tar.gz + labels.txt) as ``src``:

    ``src/trainval/<id>.mat`` (variable ``LabelMap``, uint16 H×W of release ids, 0 = unlabelled)
    and ``src/labels.txt`` (``"<id>: <name>"`` lines of ``CONTEXT_RELEASE_LABELS``, without the
    names in drop_names). Each map draws from unlabelled, a few of the 59 classes and a few rare
    classes, and its first row starts with [id of "table", 1 ("accordion", rare), 0].
    Returns {id: uint16 LabelMap}.
    """
    src = Path(src)
    (src / "trainval").mkdir(parents=True, exist_ok=True)
    common = [CONTEXT_RELEASE_ID[n] for n in ("person", "sky", "wall", "table", "cat", "wood")]
    values = [0, *common, 1, 3, 100, 459]
    maps = {}
    for i in ids:
        label_map = _blocks(_rng("context", i), values, size).astype(np.uint16)
        label_map[0, :3] = (CONTEXT_RELEASE_ID["table"], 1, 0)
        savemat(src / "trainval" / f"{i}.mat", {"LabelMap": label_map})
        maps[i] = label_map
    lines = [f"{k}: {n}\n" for k, n in CONTEXT_RELEASE_LABELS.items() if n not in drop_names]
    (src / "labels.txt").write_text("".join(lines))
    return maps


def make_voc2010_tree(
    root: Path,
    train: Sequence[str] = ("2008_000002",),
    val: Sequence[str] = ("2008_000003",),
    size: Size = (12, 16),
) -> dict[str, np.ndarray]:
    """The VOC 2010 trainval release as extracted in ``root`` (what Pascal Context needs):

    ``root/VOCdevkit/VOC2010/JPEGImages/<id>.jpg`` for train and val and
    ``ImageSets/Main/{train,val}.txt``. It has no labels: returns {id: RGB image} written.
    """
    base = Path(root) / "VOCdevkit" / "VOC2010"
    images = {i: _write_jpeg(base / "JPEGImages" / f"{i}.jpg", size, i) for i in [*train, *val]}
    _write_list(base / "ImageSets" / "Main" / "train.txt", train)
    _write_list(base / "ImageSets" / "Main" / "val.txt", val)
    return images


# ---- Cityscapes ---------------------------------------------------------------------------------

CITYSCAPES_FIRST_ROW = (7, 26, 0, 9, 33, 24)  # road, car, unlabeled, parking, bicycle, person


def make_cityscapes_tree(
    root: Path,
    cities: Mapping[str, Mapping[str, int]] | None = None,
    size: Size = (8, 16),
) -> dict[str, np.ndarray]:
    """The Cityscapes release (leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip) in ``root``.

    For ``cities = {split: {city: n_frames}}`` (default train: aachen ×2, val: frankfurt ×1)
    writes, for frame ``<city>_000000_0000<k>19``: ``leftImg8bit/<split>/<city>/<frame>
    _leftImg8bit.png`` (RGB) and ``gtFine/<split>/<city>/<frame>_gtFine_labelIds.png`` (mode L,
    labelIds 0..33, first row starting with ``CITYSCAPES_FIRST_ROW``) plus the release's other
    gtFine files (``_color.png``, ``_instanceIds.png``, ``_polygons.json``) that converters
    must ignore. Returns {"<split>/<city>/<frame>": uint8 labelIds}.
    """
    cities = cities or {"train": {"aachen": 2}, "val": {"frankfurt": 1}}
    root = Path(root)
    label_ids = [lid for lid, _, _ in CITYSCAPES_LABELS]
    labels = {}
    for split, per_city in cities.items():
        for city, n in per_city.items():
            for k in range(n):
                frame = f"{city}_000000_{k:04d}19"
                left = root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png"
                _write_jpeg(left, size, frame)
                gt = root / "gtFine" / split / city
                gt.mkdir(parents=True, exist_ok=True)
                ids = _blocks(_rng("cityscapes", frame), label_ids, size, 2).astype(np.uint8)
                ids[0, : len(CITYSCAPES_FIRST_ROW)] = CITYSCAPES_FIRST_ROW
                Image.fromarray(ids).save(gt / f"{frame}_gtFine_labelIds.png")
                Image.fromarray(np.zeros((*size, 3), np.uint8)).save(
                    gt / f"{frame}_gtFine_color.png"
                )
                Image.fromarray(ids.astype(np.uint16) * 1000).save(
                    gt / f"{frame}_gtFine_instanceIds.png"
                )
                (gt / f"{frame}_gtFine_polygons.json").write_text('{"objects": []}')
                labels[f"{split}/{city}/{frame}"] = ids
    return labels


# ---- COCO 2017 ----------------------------------------------------------------------------------

COCO_CATEGORIES = (  # (id, name): a few real COCO categories, VOC ones and others
    (1, "person"),
    (6, "bus"),
    (13, "stop sign"),
    (17, "cat"),
    (18, "dog"),
    (63, "couch"),
)
COCO_IMAGE_IDS = {"train2017": (139, 285, 632, 724), "val2017": (776, 785, 802, 872)}


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    """A polygon that pycocotools rasterises to exactly rows y0..y1-1, columns x0..x1-1."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _coco_scene(ids: Sequence[int]) -> list[tuple[int, Size, list[dict], np.ndarray]]:
    """Four images: (id, size, annotations, expected VOC mask)."""
    from pycocotools import mask as coco_mask

    big, small, exact, empty = ids
    crowd = np.zeros((48, 48), np.uint8)
    crowd[42:47, 0:10] = 1
    rle = coco_mask.encode(np.asfortranarray(crowd))
    rle["counts"] = rle["counts"].decode("ascii")
    big_anns = [
        {"category_id": 63, "segmentation": _rect(2, 2, 40, 40)},  # couch → sofa 18, 1444 px
        {"category_id": 1, "segmentation": _rect(20, 20, 30, 30)},  # person 15, painted over
        {"category_id": 1, "segmentation": rle, "iscrowd": 1},  # crowd: stays 0
        {"category_id": 13, "segmentation": _rect(42, 0, 47, 10)},  # stop sign: not VOC → 0
        {"category_id": 18, "segmentation": _rect(41, 12, 47, 20)},  # dog 12
    ]
    expected_big = np.zeros((48, 48), np.uint8)
    expected_big[2:40, 2:40] = 18
    expected_big[20:30, 20:30] = 15
    expected_big[12:20, 41:47] = 12
    expected_small = np.zeros((24, 24), np.uint8)
    expected_small[4:20, 4:20] = 8
    expected_exact = np.zeros((40, 40), np.uint8)
    expected_exact[0:25, 0:40] = 6
    return [
        (big, (48, 48), big_anns, expected_big),  # 1492 VOC pixels: kept
        (small, (24, 24), [{"category_id": 17, "segmentation": _rect(4, 4, 20, 20)}],
         expected_small),  # 256 cat pixels: dropped
        (exact, (40, 40), [{"category_id": 6, "segmentation": _rect(0, 0, 40, 25)}],
         expected_exact),  # exactly 1000 bus pixels: dropped (the rule is > 1000)
        (empty, (16, 16), [], np.zeros((16, 16), np.uint8)),  # no annotation: dropped
    ]  # fmt: skip


def make_coco_release(
    src: Path, splits: Sequence[str] = ("train2017", "val2017")
) -> dict[str, dict[str, np.ndarray]]:
    """The COCO 2017 release in ``src``: ``<split>/<12-digit id>.jpg`` and
    ``annotations/instances_<split>.json`` (``images`` with file_name/height/width,
    ``annotations`` with polygon segmentations and one compressed-RLE crowd region, bbox, area,
    ``categories`` = ``COCO_CATEGORIES``).

    Each split has four images (ids ``COCO_IMAGE_IDS[split]``): a 48×48 one with a couch, a
    person painted over it, a crowd person, a stop sign and a dog (1492 VOC-class pixels: kept);
    a 24×24 one with a small cat (dropped); a 40×40 one with exactly 1000 bus pixels (dropped);
    a 16×16 one with no annotation (dropped). Returns {split: {12-digit id: expected VOC mask}}.
    """
    src = Path(src)
    expected: dict[str, dict[str, np.ndarray]] = {}
    ann_id = 1
    for split in splits:
        images, annotations, expected[split] = [], [], {}
        for image_id, (h, w), anns, mask in _coco_scene(COCO_IMAGE_IDS[split]):
            name = f"{image_id:012d}"
            _write_jpeg(src / split / f"{name}.jpg", (h, w), name)
            images.append({"id": image_id, "file_name": f"{name}.jpg", "height": h, "width": w})
            for ann in anns:
                poly = ann["segmentation"][0] if isinstance(ann["segmentation"], list) else None
                xs, ys = (poly[0::2], poly[1::2]) if poly else ([0, 10], [42, 47])
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                annotations.append(
                    {"iscrowd": 0, **ann, "id": ann_id, "image_id": image_id, "bbox": bbox}
                    | {"area": float(bbox[2] * bbox[3])}
                )
                ann_id += 1
            expected[split][name] = mask
        categories = [{"id": i, "name": n, "supercategory": n} for i, n in COCO_CATEGORIES]
        doc = {"images": images, "annotations": annotations, "categories": categories}
        (src / "annotations").mkdir(parents=True, exist_ok=True)
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return expected
