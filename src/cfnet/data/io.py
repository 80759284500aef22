"""Reading images and label maps, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 H×W×3 (greyscale and palette images are converted; alpha is dropped)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from err


def read_label(path: Path) -> np.ndarray:
    """Label map H×W of raw ids (palette PNGs give their indices, not colours)."""
    try:
        with Image.open(path) as label:
            if label.mode not in ("P", "L", "I", "I;16"):
                raise ValueError(f"expected a single-channel label PNG, got mode {label.mode}")
            return np.asarray(label)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read label map {str(path)!r}: {err}") from err
