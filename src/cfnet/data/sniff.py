"""What the bytes of a picture file say, where Pillow does not say it.

``describe_unreadable``: Pillow answers every file it cannot identify with the same "cannot
identify image file", whether it is an HTML error page saved as ``.jpg``, a copy cut off inside the
header, or a PNG / JPEG whose header declares a width or height of 0 (both formats can say so;
Pillow refuses such files as unidentifiable). Only error messages use it.

``png_damage``: Pillow checks the checksums of the PNG chunks it reads before the pixels, but not
of the last ones, so a file cut off in its last bytes or with a flipped bit there decodes as if
it were whole. Every chunk of a PNG carries a CRC, so a full walk finds any such damage.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
# JPEG start-of-frame markers (SOF0..SOF15 less DHT, JPG and DAC): they carry height and width.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
HEAD_BYTES = 1 << 16  # enough for a JPEG's frame header behind a typical EXIF segment


def _png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of the IHDR chunk, which a PNG must start with."""
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of the first start-of-frame segment, walking the marker segments."""
    pos = 2
    while pos + 9 <= len(head) and head[pos] == 0xFF:
        marker = head[pos + 1]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return width, height
        pos += 2 + struct.unpack(">H", head[pos + 2 : pos + 4])[0]
    return None


def describe_unreadable(path: Path) -> str:
    """What is wrong with a file Pillow cannot identify, for an error message."""
    with open(path, "rb") as file:
        head = file.read(HEAD_BYTES)
        length = file.seek(0, 2)
    if not head:
        return "the file is empty (0 bytes)"
    for name, signature, size_of in (
        ("PNG", PNG_SIGNATURE, _png_size),
        ("JPEG", JPEG_SOI, _jpeg_size),
    ):
        if head.startswith(signature):
            size = size_of(head)
            if size is not None and 0 in size:
                return f"its {name} header declares a {size[0]}×{size[1]} picture (no pixels)"
            damage = png_damage(path) if name == "PNG" else None
            if damage is not None:
                return f"damaged PNG header: {damage}"
            return f"its {name} header is damaged or cut off (the file has {length:,} bytes)"
    return f"Pillow cannot read it as a picture (the file starts with {head[:16]!r})"


def png_damage(path: Path) -> str | None:
    """Where the chunk stream of the PNG at ``path`` is damaged, or None if every chunk up to and
    including IEND is whole and matches its checksum (bytes after IEND are ignored, as by every
    PNG reader)."""
    data = memoryview(path.read_bytes())
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        name = kind.decode("ascii", "backslashreplace")
        end = pos + 12 + length
        if end > len(data):
            return f"cut off inside its {name} chunk at byte {pos:,} of {len(data):,}"
        if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return f"checksum mismatch in its {name} chunk at byte {pos:,}"
        if kind == b"IEND":
            return None
        pos = end
    return f"cut off before its IEND chunk, after {len(data):,} bytes"
