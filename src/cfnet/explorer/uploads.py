"""A picture uploaded to the explorer, read as leniently as ``cfnet.predict`` reads the user's own
pictures, and refused with one line that names the upload when it cannot be used.

The bytes go through ``cfnet.data.io.read_any_image`` (from a temporary file: its checks read the
file), so an upload meets the same rules as a picture given to ``cfnet.predict``: a header that
declares more than ``MAX_IMAGE_PIXELS`` is refused before anything is decoded (a 20000×20000 PNG
bomb of a few kilobytes included), damaged data is named, 16-bit and float pictures are refused.
What it adds is a size limit on the upload itself, and empty uploads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from cfnet.data.io import IMAGE_SUFFIXES, SampleError, read_any_image


class UploadError(ValueError):
    """An upload that cannot be used; the message names it and says why."""


def too_large(name: str, size: int, limit: int) -> UploadError:
    """The refusal of an upload of ``size`` bytes over ``limit`` bytes."""
    return UploadError(
        f"upload {name!r} is {size / 2**20:.1f} MB, more than the {limit / 2**20:g} MB the "
        "explorer accepts (max_upload_mb); resize or recompress it first"
    )


def decode_upload(data: bytes, name: str, limit: int) -> np.ndarray:
    """RGB uint8 H×W×3 from the uploaded bytes of file ``name``, or an ``UploadError``."""
    if not data:
        raise UploadError(f"upload {name!r} is empty (0 bytes): nothing to read")
    if len(data) > limit:
        raise too_large(name, len(data), limit)
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="cfnet-upload-") as folder:
        path = Path(folder) / f"upload{suffix if suffix in IMAGE_SUFFIXES else ''}"
        path.write_bytes(data)
        try:
            return read_any_image(path)
        except SampleError as err:  # it names the temporary file: name the upload instead
            raise UploadError(str(err).replace(repr(str(path)), repr(name))) from None
