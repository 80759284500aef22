"""Seeded generators of broken picture files, for the fuzz tests.

A ``Case`` overwrites the image or the label map of one sample of a tiny VOC tree (12×16 RGB
JPEG, palette-PNG mask; see ``fixtures_raw.make_voc_tree``) with a broken file and says what the
reader must answer: a ``SampleError`` whose message matches ``expect`` (and names the file), or,
for damage the format cannot reveal (``may_decode``: a flipped bit inside JPEG data, which has no
checksum), either that or a well-formed picture. Every case is a pure function of its name, so a
failure is reproduced by running that one test again.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 12, 16  # the size of every picture of make_voc_tree
Rng = np.random.Generator
Writer = Callable[[Path, Rng], None]  # (path of the good file, seeded rng) → broken file there


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "image" | "label": which file of the sample is broken
    write: Writer
    expect: str  # regular expression the error message must match
    may_decode: bool = False  # damage the format cannot reveal: a picture is an answer too

    def rng(self) -> Rng:
        return np.random.default_rng(zlib.crc32(self.name.encode()))


# ---- bytes --------------------------------------------------------------------------------------


def encode(array: np.ndarray, fmt: str, mode: str | None = None, **params) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(rng: Rng, channels: int | None = None) -> np.ndarray:
    shape = (HEIGHT, WIDTH) if channels is None else (HEIGHT, WIDTH, channels)
    return rng.integers(0, 256, shape, np.uint8)


def ids(rng: Rng, dtype=np.uint8, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return rng.integers(0, 21, (height, width)).astype(dtype)


def noise_jpeg(rng: Rng) -> bytes:
    return encode(noise(rng, 3), "JPEG", quality=95)


def noise_png(rng: Rng) -> bytes:
    return encode(noise(rng, 3), "PNG")


def photo(rng: Rng, fmt: str) -> bytes:
    """A larger picture (96×128), whose compressed data is most of the file: a cut at a fraction
    of it lands in the data, not in the header."""
    return encode(rng.integers(0, 256, (96, 128, 3), np.uint8), fmt)


def png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR claiming ``width``×``height`` (checksum fixed: a valid header)."""
    ihdr = bytearray(png[8:33])  # length, "IHDR", 13 bytes of fields, CRC
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return png[:8] + bytes(ihdr) + png[33:]


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) claiming ``width``×``height`` (0..65535 allowed)."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def flip_bit(data: bytes, rng: Rng, start: int) -> bytes:
    damaged = bytearray(data)
    damaged[int(rng.integers(start, len(data)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(damaged)


def cut(data: bytes, at: float | int) -> bytes:
    """The first ``at`` bytes (an int; negative counts from the end) or fraction of the file."""
    return data[: int(at * len(data)) if isinstance(at, float) else at]


def palette_png(rng: Rng, transparent: bool) -> bytes:
    image = Image.fromarray(ids(rng), mode="L").convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **({"transparency": 0} if transparent else {}))
    return buffer.getvalue()


# ---- writers ------------------------------------------------------------------------------------


def replace_with(make: Callable[[Rng], bytes]) -> Writer:
    """Write ``make(rng)`` over the file."""
    return lambda path, rng: path.write_bytes(make(rng))


def transform(change: Callable[[bytes, Rng], bytes]) -> Writer:
    """Rewrite the good file's own bytes with ``change``."""
    return lambda path, rng: path.write_bytes(change(path.read_bytes(), rng))


def add_values(values: tuple[int, ...]) -> Writer:
    """Set a few pixels of the good label map to ``values`` (saved as an 8-bit greyscale PNG)."""

    def write(path: Path, rng: Rng) -> None:
        label = np.asarray(Image.open(path)).copy()
        for value in values:
            label[int(rng.integers(1, HEIGHT - 1)), int(rng.integers(1, WIDTH - 1))] = value
        path.write_bytes(encode(label, "PNG"))

    return write


def missing(path: Path, rng: Rng) -> None:
    path.unlink()


def dangling_link(path: Path, rng: Rng) -> None:
    path.unlink()
    path.symlink_to(path.with_name("nowhere" + path.suffix))


def folder(path: Path, rng: Rng) -> None:
    path.unlink()
    path.mkdir()


# ---- the cases ----------------------------------------------------------------------------------

READ = r"cannot read (image|label map) '[^']+': "
NOT_A_PICTURE = READ + r"Pillow cannot read it as a picture \(the file starts with b"
EMPTY = READ + r"the file is empty \(0 bytes\)"
NO_PIXELS = READ + r"its (PNG|JPEG) header declares a \d+×\d+ picture \(no pixels\)"
TOO_LARGE = (
    r"(image|label map) '[^']+' declares [\d,]+(×[\d]+ = [\d,]+)? pixels, more than the "
    r"89,478,485 that cfnet reads \(cfnet.data.io.MAX_IMAGE_PIXELS\); refused from its header, "
    r"before decoding"
)
NOT_FOUND = READ + "No such file or directory"
# Where random damage shows, if it does: an unreadable file, a header declaring a huge size or
# another mode, a size other than the label map's.
ANY_REFUSAL = "|".join((READ, TOO_LARGE, "has mode", "but its image"))
NON_PICTURES = {  # what ends up under a picture's name: error pages, lists, archives, documents
    "html": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
    "text": b"2007_000032 1\n2007_000039 -1\n",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(40),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "matlab": b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + bytes(90),
}
SIGNATURES = {  # random bytes behind a real format's signature: its header parser meets garbage
    "png": b"\x89PNG\r\n\x1a\n",
    "jpeg": b"\xff\xd8\xff\xe0",
    "gif": b"GIF89a",
    "bmp": b"BM",
    "tiff": b"II*\x00",
    "webp": b"RIFF\x00\x01\x00\x00WEBPVP8 ",
}
# Images of a mode other than 8-bit RGB: (pixels, format, fromarray mode, words in the message).
IMAGE_MODES = {
    "CMYK": (partial(noise, channels=4), "JPEG", "CMYK", "CMYK"),
    "I;16": (partial(ids, dtype=np.uint16), "PNG", None, "16-bit greyscale"),
    "I": (partial(ids, dtype=np.int32), "TIFF", None, "32-bit integer"),
    "F": (partial(ids, dtype=np.float32), "TIFF", None, "32-bit float"),
    "LA": (partial(noise, channels=2), "PNG", "LA", "greyscale with alpha"),
    "RGBA": (partial(noise, channels=4), "PNG", None, "RGB with alpha"),
    "1": (lambda rng: ids(rng) > 10, "PNG", None, "1-bit black and white"),
    "L": (noise, "JPEG", None, "greyscale: set dataset.allow_greyscale=true"),
}
_COLOUR = "has mode '{}'; expected a single-channel 8-bit index PNG .*; colour-coded masks must"
_WIDE = r"has mode '{}' \(.*\); expected an 8-bit index PNG .*, not a 16/32-bit one"
_OTHER = r"has mode '{}'; expected a single-channel 8-bit index PNG .* \(this one is .*\)"
LABEL_MODES = {
    "RGB": (lambda rng: noise(rng, 3) % 21, "PNG", None, _COLOUR),
    "RGBA": (lambda rng: noise(rng, 4) % 21, "PNG", None, _COLOUR),
    "CMYK": (partial(noise, channels=4), "TIFF", "CMYK", _COLOUR),
    "I;16": (partial(ids, dtype=np.uint16), "PNG", None, _WIDE),
    "I": (partial(ids, dtype=np.int32), "TIFF", None, _WIDE),
    "F": (partial(ids, dtype=np.float32), "TIFF", None, _WIDE),
    "LA": (lambda rng: noise(rng, 2) % 21, "PNG", "LA", _OTHER),
    "1": (lambda rng: ids(rng) > 10, "PNG", None, _OTHER),
}


def _encoded(make: Callable[[Rng], np.ndarray], fmt: str, mode: str | None) -> Writer:
    return replace_with(lambda rng: encode(make(rng), fmt, mode))


def garbage_cases() -> list[Case]:
    """Random bytes, non-pictures, empty files, random bytes behind real signatures."""
    random = replace_with(lambda rng: rng.bytes(int(rng.integers(1, 4096))))
    out = [
        Case(f"random_bytes_{i}", ("image", "label")[i % 2], random, NOT_A_PICTURE)
        for i in range(24)
    ]
    out += [
        Case(f"{kind}_as_image", "image", replace_with(lambda rng, d=data: d), NOT_A_PICTURE)
        for kind, data in NON_PICTURES.items()
    ]
    out += [Case(f"empty_{t}", t, replace_with(lambda rng: b""), EMPTY) for t in ("image", "label")]
    for fmt, magic in SIGNATURES.items():
        garbage = replace_with(lambda rng, m=magic: m + rng.bytes(int(rng.integers(0, 600))))
        # Behind a BMP/GIF/TIFF/WEBP signature garbage may parse as some picture (those formats
        # have no checksum); behind PNG's and JPEG's it never does.
        lucky = fmt not in ("png", "jpeg")
        out += [
            Case(f"{fmt}_signature_then_garbage_{i}", "image", garbage, ANY_REFUSAL, lucky)
            for i in range(4)
        ]
    return out


def truncation_cases() -> list[Case]:
    """Files cut inside the header, inside the data and just before the end."""
    out = []
    for at in (1, 2, 3, 10, 20, 100, 0.25, 0.5, 0.75, 0.9, -3, -2, -1):
        # Cut by 1 or 2 bytes a JPEG loses only its end-of-image marker; Pillow then reads some
        # such files, with every pixel there (test_fuzz.py checks they equal the whole file's).
        out.append(
            Case(
                f"jpeg_image_cut_at_{at}",
                "image",
                replace_with(lambda rng, a=at: cut(photo(rng, "JPEG"), a)),
                ANY_REFUSAL if at in (-2, -1) else READ,
                may_decode=at in (-2, -1),
            )
        )
    for at in (1, 8, 16, 30, 40, 0.25, 0.5, 0.75, -16, -13, -12, -4, -1):
        out.append(
            Case(
                f"png_image_cut_at_{at}",
                "image",
                replace_with(lambda rng, a=at: cut(photo(rng, "PNG"), a)),
                READ,
            )
        )
        out.append(
            Case(
                f"png_label_cut_at_{at}",
                "label",
                transform(lambda data, rng, a=at: cut(data, a)),
                READ,
            )
        )
    return out


DECLARED_SIZE_WRITERS = {  # kind → (target, writer of a file whose header declares w × h)
    "png_image": (
        "image",
        lambda w, h: replace_with(lambda rng: png_with_size(noise_png(rng), w, h)),
    ),
    "png_label": ("label", lambda w, h: transform(lambda data, rng: png_with_size(data, w, h))),
    "jpeg_image": ("image", lambda w, h: transform(lambda data, rng: jpeg_with_size(data, w, h))),
}


def _declared_size_cases(w: int, h: int, expect: str, kinds: tuple[str, ...]) -> list[Case]:
    """One case per kind of file (``DECLARED_SIZE_WRITERS``) whose header declares w × h."""
    return [
        Case(
            f"{kind}_{w}x{h}",
            DECLARED_SIZE_WRITERS[kind][0],
            DECLARED_SIZE_WRITERS[kind][1](w, h),
            expect,
        )
        for kind in kinds
    ]


def dimension_cases() -> list[Case]:
    """Headers declaring no pixels, or more than the limit (with nothing behind to decode)."""
    out = []
    for w, h in ((0, HEIGHT), (WIDTH, 0), (0, 0)):
        out += _declared_size_cases(w, h, NO_PIXELS, ("png_image", "png_label", "jpeg_image"))
    for w, h in ((100_000, 100_000), (10_000, 9_000), (1, 90_000_000)):
        out += _declared_size_cases(w, h, TOO_LARGE, ("png_image", "png_label"))
    for w, h in ((65_535, 65_535), (9_500, 9_500)):  # a JPEG header holds at most 65,535
        out += _declared_size_cases(w, h, TOO_LARGE, ("jpeg_image",))
    return out


def mode_cases() -> list[Case]:
    """Images that are not 8-bit RGB; label maps that are not 8-bit class ids or hold values
    outside the classes; label maps of another size than their image."""
    out = []
    for mode, (make, fmt, as_mode, words) in IMAGE_MODES.items():
        expect = rf"image '[^']+' has mode '{re.escape(mode)}'; expected 8-bit RGB \(.*{words}"
        out.append(Case(f"image_mode_{mode}", "image", _encoded(make, fmt, as_mode), expect))
    for suffix, transparent in (("", False), ("_with_transparency", True)):
        expect = r"has mode 'P'; expected 8-bit RGB \(this one is palette colours\)"
        write = replace_with(partial(palette_png, transparent=transparent))
        out.append(Case(f"image_mode_P{suffix}", "image", write, expect))
    for mode, (make, fmt, as_mode, pattern) in LABEL_MODES.items():
        expect = "label map '[^']+' " + pattern.format(re.escape(mode))
        out.append(Case(f"label_mode_{mode}", "label", _encoded(make, fmt, as_mode), expect))
    jpeg = r"label map '[^']+' is a JPEG file; expected a lossless index PNG"
    out.append(Case("label_jpeg", "label", _encoded(ids, "JPEG", None), jpeg))
    outside = (
        r"label map '[^']+' has values \[{}\] outside the dataset's classes and ignore label "
        r"\(valid raw values: 0\.\.20, 255\)"
    )
    for values in ((21,), (50, 254), (22, 100, 200)):
        expect = outside.format(", ".join(map(str, values)))
        out.append(
            Case(f"label_values_{'_'.join(map(str, values))}", "label", add_values(values), expect)
        )
    for h, w in ((HEIGHT - 4, WIDTH - 6), (WIDTH, HEIGHT), (HEIGHT, WIDTH + 1)):
        expect = rf"label map '[^']+' is {w}×{h} but its image '[^']+' is {WIDTH}×{HEIGHT}"
        write = replace_with(lambda rng, h=h, w=w: encode(ids(rng, height=h, width=w), "PNG"))
        out.append(Case(f"label_{w}x{h}_for_image_{WIDTH}x{HEIGHT}", "label", write, expect))
    return out


def bit_flip_cases() -> list[Case]:
    """One flipped bit after the signature: every PNG chunk has a checksum, JPEG data has none."""
    flip_png = replace_with(lambda rng: flip_bit(noise_png(rng), rng, start=8))
    flip_label = transform(lambda data, rng: flip_bit(data, rng, start=8))
    flip_jpeg = transform(lambda data, rng: flip_bit(data, rng, start=3))
    out = []
    for i in range(16):
        out.append(Case(f"png_image_bit_flip_{i}", "image", flip_png, READ + ".*PNG"))
        out.append(Case(f"png_label_bit_flip_{i}", "label", flip_label, READ + ".*PNG"))
    for i in range(24):
        out.append(Case(f"jpeg_image_bit_flip_{i}", "image", flip_jpeg, ANY_REFUSAL, True))
    return out


def file_system_cases() -> list[Case]:
    return [
        Case("missing_image", "image", missing, NOT_FOUND),
        Case("missing_label", "label", missing, NOT_FOUND),
        Case("dangling_link_image", "image", dangling_link, NOT_FOUND),
        Case("folder_as_label", "label", folder, READ + "Is a directory"),
    ]


def cases() -> list[Case]:
    """Every broken file of the fuzz tests, in a fixed order."""
    return [
        *garbage_cases(),
        *truncation_cases(),
        *dimension_cases(),
        *mode_cases(),
        *bit_flip_cases(),
        *file_system_cases(),
    ]
