"""Reading images and label maps, with errors that name the file.

Dataset files are read strictly: a training set that silently converts an RGBA screenshot, a
colour-coded mask or a 16-bit label map trains on garbage, so every such file is refused with a
``SampleError`` naming it (``dataset.on_bad_sample=skip`` turns these into counted skips).
``cfnet.predict`` reads the user's own pictures leniently instead (``read_any_image``).

Every reader goes through ``_open`` and ``_pixels``, because a damaged file makes Pillow raise
almost anything, depending on the format and on where the damage is (the fuzz test,
``tests/data/test_fuzz.py``, meets ``OSError``, ``ValueError``, ``NotImplementedError`` and
``DecompressionBombError``; Pillow's plugins raise more), and an exception that is not a
``SampleError`` would stop a run without the file's name or slip past ``on_bad_sample=skip``.
They also:

* refuse a picture whose header declares more than ``MAX_IMAGE_PIXELS`` pixels before anything is
  decoded, so a damaged or hostile header cannot make a loader worker allocate gigabytes;
* check every chunk checksum of a PNG (a flipped bit or a copy cut off anywhere is found). JPEG has
  no checksum: damage inside its compressed data is found only where the decoder trips over it, and
  otherwise decodes to a picture with a damaged block, which no reader can tell from a real one.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cfnet.data.labels import INVALID
from cfnet.data.sniff import describe_unreadable, png_damage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABEL_MODES = ("P", "L")  # 8-bit index maps: palette PNG (VOC) or greyscale PNG (the others)
# Pillow's own warning threshold (about 9459², 0.27 GB as 8-bit RGB): 40× the largest picture of
# any supported dataset (Cityscapes, 2048×1024), and more than any camera photo for predict.
MAX_IMAGE_PIXELS = 89_478_485
# What the modes a reader refuses are, in words, for the error message.
MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "8-bit greyscale",
    "LA": "greyscale with alpha",
    "La": "greyscale with alpha",
    "P": "palette colours",
    "PA": "palette colours with alpha",
    "RGBA": "RGB with alpha",
    "RGBa": "RGB with alpha",
    "RGBX": "RGB with padding",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "CIE Lab",
    "HSV": "HSV",
    "I": "32-bit integer",
    "F": "32-bit float",
}
# Modes that hold colours: a label map in one of them is a colour-coded mask, not class ids.
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# Modes ``read_any_image`` refuses: converting them to 8-bit RGB would clip, not rescale.
_WIDE_MODES = ("I", "F")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class SampleError(ValueError):
    """A dataset sample that cannot be used; the message names the file and the problem."""


def describe_mode(mode: str) -> str:
    """A Pillow mode in words: 'I;16' → '16-bit greyscale'."""
    if mode.startswith("I;16"):
        return "16-bit greyscale"
    return MODE_NAMES.get(mode, f"mode {mode}")


def _too_large(what: str, path: Path, declared: str) -> SampleError:
    return SampleError(
        f"{what} {str(path)!r} declares {declared}, more than the {MAX_IMAGE_PIXELS:,} that cfnet "
        "reads (cfnet.data.io.MAX_IMAGE_PIXELS); refused from its header, before decoding"
    )


def _why_unopened(path: Path, err: Exception) -> str:
    """The reason ``Image.open`` failed, in words: the system's (missing file, a folder, no
    permission), or what the first bytes show, plus the header parser's own complaint."""
    if isinstance(err, OSError) and err.errno is not None:
        return err.strerror or str(err)
    try:
        reason = describe_unreadable(path)
    except OSError as again:
        return again.strerror or str(again)
    if isinstance(err, UnidentifiedImageError):  # its message only repeats the file name
        return reason
    return f"{reason}; Pillow says {type(err).__name__}: {err}"


@contextmanager
def _open(path: Path, what: str) -> Iterator[Image.Image]:
    """The picture at ``path``, opened (header parsed, pixels not decoded) and within the size
    limit; every way this fails is a ``SampleError`` naming the file."""
    try:
        with warnings.catch_warnings():  # the size is checked below, with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:  # declared more than 2× Pillow's own limit
        found = _BOMB_PIXELS.search(str(err))
        declared = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise _too_large(what, path, declared) from None
    except MemoryError:
        raise
    except Exception as err:  # missing, unreadable, or a header Pillow cannot parse
        raise SampleError(f"cannot read {what} {str(path)!r}: {_why_unopened(path, err)}") from err
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_large(what, path, f"{width}×{height} = {width * height:,} pixels")
        if width * height == 0:  # formats Pillow opens with a zero dimension
            raise SampleError(f"{what} {str(path)!r} is {width}×{height} pixels (empty)")
        yield image


def _pixels(image: Image.Image, path: Path, what: str, mode: str | None = None) -> np.ndarray:
    """Decode ``image`` (opened by ``_open``), converted to ``mode`` if given.

    A PNG's chunk checksums are all verified first (``png_damage``: a few percent of decoding it).
    """
    try:
        damage = png_damage(path) if image.format == "PNG" else None
        if damage is None:
            image.load()
    except MemoryError:
        raise
    except Exception as err:  # whatever the decoder of this format raises on damaged data
        raise SampleError(
            f"cannot read {what} {str(path)!r}: corrupt or truncated {image.format} data; "
            f"Pillow says {type(err).__name__}: {err}"
        ) from err
    if damage is not None:
        raise SampleError(f"cannot read {what} {str(path)!r}: corrupt or truncated PNG: {damage}")
    if mode is not None and image.mode != mode:
        try:
            if "transparency" in image.info:  # palette / greyscale with a transparent colour
                image = image.convert("RGBA")
            image = image.convert(mode)
        except ValueError as err:  # a mode Pillow has no conversion for
            raise SampleError(
                f"{what} {str(path)!r} has mode {image.mode!r} ({describe_mode(image.mode)}), "
                f"which cannot be converted to {mode} ({err})"
            ) from err
    return np.asarray(image)


def read_any_image(path: Path) -> np.ndarray:
    """RGB uint8 H×W×3 from any 8-bit picture (greyscale / palette / CMYK converted, alpha
    dropped); 16-bit and float pictures are refused, since converting them would clip."""
    with _open(path, "image") as image:
        if image.mode.startswith(_WIDE_MODES):
            raise SampleError(
                f"image {str(path)!r} has mode {image.mode!r} ({describe_mode(image.mode)}); "
                "expected an 8-bit picture (RGB, greyscale, palette or CMYK): convert it first"
            )
        return _pixels(image, path, "image", "RGB")


def read_rgb_image(path: Path, allow_greyscale: bool) -> np.ndarray:
    """A dataset image: 8-bit RGB H×W×3 (8-bit greyscale converted only if allowed)."""
    with _open(path, "image") as image:
        mode = image.mode
        if mode == "L" and allow_greyscale:
            return _pixels(image, path, "image", "RGB")
        if mode != "RGB":
            hint = (
                " (greyscale: set dataset.allow_greyscale=true to convert such images)"
                if mode == "L"
                else f" (this one is {describe_mode(mode)})"
            )
            raise SampleError(f"image {str(path)!r} has mode {mode!r}; expected 8-bit RGB{hint}")
        return _pixels(image, path, "image")


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header only: label statistics need no image decoding."""
    with _open(path, "image") as image:
        return image.height, image.width


def read_label(path: Path, colours: bool = False) -> np.ndarray:
    """Raw ids H×W uint8 of an 8-bit index map (palette PNGs give indices, not colours); with
    ``colours``, an RGB colour mask is read too, as H×W×3 uint8 (the folder dataset maps its
    colours to classes through the palette)."""
    with _open(path, "label map") as label:
        mode, expected = label.mode, f"(mode {' or '.join(LABEL_MODES)})"
        if colours:
            expected = f"(mode {', '.join(LABEL_MODES)} or an RGB colour mask)"
        if mode.startswith(_WIDE_MODES):
            raise SampleError(
                f"label map {str(path)!r} has mode {mode!r} ({describe_mode(mode)}); expected an "
                f"8-bit index PNG {expected}, not a 16/32-bit one"
            )
        if mode not in LABEL_MODES and not (colours and mode == "RGB"):
            hint = (
                "; colour-coded masks must be converted to class ids (see python -m cfnet.prepare)"
                if mode in _COLOUR_MODES and not colours
                else f" (this one is {describe_mode(mode)})"
            )
            raise SampleError(
                f"label map {str(path)!r} has mode {mode!r}; expected a single-channel 8-bit "
                f"index PNG {expected}{hint}"
            )
        if label.format == "JPEG":
            raise SampleError(
                f"label map {str(path)!r} is a JPEG file; expected a lossless index PNG "
                f"{expected}: JPEG compression changes class ids along every edge"
            )
        return _pixels(label, path, "label map").astype(np.uint8, copy=False)


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
