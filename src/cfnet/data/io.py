"""Reading images and label maps, with errors that name the file.

Dataset files are read strictly: a training set that silently converts an RGBA screenshot, a
colour-coded mask or a 16-bit label map trains on garbage, so every such file is refused with a
``SampleError`` naming it (``dataset.on_bad_sample=skip`` turns these into counted skips).
``cfnet.predict`` reads the user's own pictures leniently instead (``read_any_image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cfnet.data.labels import INVALID

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABEL_MODES = ("P", "L")  # 8-bit index maps: palette PNG (VOC) or greyscale PNG (the others)
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class SampleError(ValueError):
    """A dataset sample that cannot be used; the message names the file and the problem."""


def read_any_image(path: Path) -> np.ndarray:
    """RGB uint8 H×W×3 from any picture (greyscale/palette converted, alpha dropped)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except _READ_ERRORS as err:
        raise SampleError(f"cannot read image {str(path)!r}: {err}") from err


def read_rgb_image(path: Path, allow_greyscale: bool) -> np.ndarray:
    """A dataset image: 8-bit RGB H×W×3 (8-bit greyscale converted only if allowed)."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode == "L" and allow_greyscale:
                return np.asarray(image.convert("RGB"))
            if mode != "RGB":
                hint = (
                    " (greyscale: set dataset.allow_greyscale=true to convert such images)"
                    if mode == "L"
                    else ""
                )
                raise SampleError(
                    f"image {str(path)!r} has mode {mode!r}; expected 8-bit RGB{hint}"
                )
            array = np.asarray(image)
    except SampleError:
        raise
    except _READ_ERRORS as err:
        raise SampleError(f"cannot read image {str(path)!r}: {err}") from err
    if array.size == 0:
        raise SampleError(f"image {str(path)!r} is empty ({image.size[0]}×{image.size[1]})")
    return array


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header only: label statistics need no image decoding."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except _READ_ERRORS as err:
        raise SampleError(f"cannot read image {str(path)!r}: {err}") from err


def read_label(path: Path) -> np.ndarray:
    """Raw ids H×W uint8 of an 8-bit index map (palette PNGs give indices, not colours)."""
    try:
        with Image.open(path) as label:
            mode = label.mode
            if mode.startswith("I"):
                raise SampleError(
                    f"label map {str(path)!r} is {mode} (16/32-bit); expected an 8-bit index PNG "
                    f"(mode {' or '.join(LABEL_MODES)})"
                )
            if mode not in LABEL_MODES:
                raise SampleError(
                    f"label map {str(path)!r} has mode {mode!r}; expected a single-channel 8-bit "
                    f"index PNG (mode {' or '.join(LABEL_MODES)}); colour-coded masks must be "
                    "converted to class ids (see python -m cfnet.prepare)"
                )
            return np.asarray(label, dtype=np.uint8)
    except SampleError:
        raise
    except _READ_ERRORS as err:
        raise SampleError(f"cannot read label map {str(path)!r}: {err}") from err


def describe_valid(lut: np.ndarray) -> str:
    """The raw values a lookup table accepts, as compact ranges: '0..20, 255'."""
    valid = np.flatnonzero(lut != INVALID).tolist()
    parts, start = [], None
    for i, v in enumerate(valid):
        if start is None:
            start = v
        if i + 1 == len(valid) or valid[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}..{v}")
            start = None
    return ", ".join(parts)


def map_labels(raw: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Raw ids → training ids (uint8) through ``lut``; refuses values the format does not define."""
    mapped = lut[raw]
    if (mapped == INVALID).any():
        bad = np.unique(raw[mapped == INVALID]).tolist()
        raise SampleError(
            f"label map {str(path)!r} has values {bad[:10]} outside the dataset's classes and "
            f"ignore label (valid raw values: {describe_valid(lut)})"
        )
    return mapped.astype(np.uint8)
