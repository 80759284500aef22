"""A folder of images and masks in every format ``dataset=folder`` reads, built for tests and docs.

Pictures of shapes on a noisy background (each class its own hue, so a tiny model learns it in a
few dozen steps); masks rotate through single-channel index PNGs, palette PNGs (VOC colours) and
RGB colour masks, images through JPEG and PNG; some file names hold spaces and some samples sit in
a sub-folder. ``make_folder_tree`` returns the training ids it wrote, so a test can compute what
the dataset must give without reading the files back.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from cfnet.data.labels import voc_palette

CLASSES = ("background", "circle", "square", "triangle")
MASK_FORMATS = ("index", "palette", "rgb")
# Mean colour of each shape class (RGB), the background's is drawn per image.
HUES = {1: (200, 60, 50), 2: (60, 170, 70), 3: (70, 90, 210)}


def sample_names(count: int) -> list[str]:
    """Names of the samples: spaces in some, a sub-folder for others."""
    names = []
    for i in range(count):
        name = f"shape {i:02d}" if i % 4 == 0 else f"shape_{i:02d}"
        names.append(f"batch b/{name}" if i % 5 == 3 else name)
    return names


def draw(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, training ids uint8): 1-3 shapes on a noisy background; a thin line of
    unlabelled pixels (255) on every third image."""
    rng = np.random.default_rng(seed)
    h, w = size
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(1, 4))
        r = int(rng.integers(min(h, w) // 8, min(h, w) // 4))
        cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
        if cls == 1:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif cls == 2:
            inside = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        else:
            inside = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
        mask[inside] = cls
    base = rng.integers(90, 170, 3)
    image = np.broadcast_to(base, (h, w, 3)).astype(np.float64).copy()
    for cls, hue in HUES.items():
        image[mask == cls] = hue
    image += rng.normal(0, 12, image.shape)
    if seed % 3 == 0:
        mask[h // 2, :] = 255
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_mask(path: Path, ids: np.ndarray, fmt: str) -> None:
    """``ids`` (training ids, 255 unlabelled) as an index PNG, a palette PNG or an RGB mask
    (RGB: class colours of the generated palette; unlabelled pixels stay as in ``ids``' class 0,
    since an RGB mask has no ignore value unless ``label_map`` names a colour)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "index":
        Image.fromarray(ids, mode="L").save(path)
    elif fmt == "palette":
        picture = Image.fromarray(ids, mode="P")
        picture.putpalette(voc_palette().tobytes())
        picture.save(path)
    else:
        colours = voc_palette(len(CLASSES))
        Image.fromarray(colours[np.where(ids == 255, 0, ids)]).save(path)


def rgb_ids(ids: np.ndarray) -> np.ndarray:
    """What an RGB mask written by ``write_mask`` holds: unlabelled pixels became class 0."""
    return np.where(ids == 255, 0, ids).astype(np.uint8)


def make_folder_tree(
    root: Path,
    train: int = 24,
    val: int | None = 6,
    size: tuple[int, int] = (48, 64),
    classes_file: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """``root/{images,masks}/{train,val}`` (no val folder when ``val`` is None) and
    ``root/classes.txt``; returns {split: {sample name: expected training ids}}."""
    expected: dict[str, dict[str, np.ndarray]] = {}
    for split, count in (("train", train), ("val", val)):
        if count is None:
            continue
        expected[split] = {}
        for i, name in enumerate(sample_names(count)):
            seed = zlib.crc32(f"{split}/{name}".encode())
            image, ids = draw(seed, size)
            suffix = ".jpg" if i % 2 == 0 else ".png"
            image_path = root / "images" / split / f"{name}{suffix}"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(image_path, quality=95)
            fmt = MASK_FORMATS[i % 3]
            write_mask(root / "masks" / split / f"{name}.png", ids, fmt)
            expected[split][name] = rgb_ids(ids) if fmt == "rgb" else ids
    if classes_file:
        (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    return expected
