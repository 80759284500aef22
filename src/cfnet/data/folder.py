"""Your own data: a folder of images and masks, in mmsegmentation's custom-dataset layout.

    DIR/images/{train,val[,test]}/<stem>.<jpg|jpeg|png|bmp|tif|tiff>   (sub-folders allowed)
    DIR/masks/{train,val[,test]}/<stem>.png
    DIR/classes.txt        # optional: one class name per line; line i is training id i

Images and masks are paired by their path under the split folder, less the suffix
(``image_suffix`` / ``mask_suffix``). A mask is one of:

* a single-channel index PNG (mode L) or a palette PNG (mode P, whose indices are the ids, as in
  Pascal VOC): raw value v → training id v (``reduce_zero_label``: 0 → ignored, v → v − 1, as
  ADE20K), the raw ``ignore_index`` → ignored, and ``label_map`` entries (raw value → training id)
  before both: ``{255: 1}`` for 0/255 binary masks;
* an RGB colour mask: colour ``palette[i]`` → class i, and ``label_map`` entries written
  ``R-G-B`` (``{0-0-0: 255}``: black is unlabelled).

Everything else is refused with one line naming the file (``SampleError``; counted instead with
``on_bad_sample=skip``): an image without a mask or the reverse, a mask of another size than its
image, a value that is neither a class, ``ignore_index`` nor in ``label_map`` (a mask holding only 0
and 255 gets a hint pointing to ``label_map``), an unknown colour, an unreadable file, a JPEG mask.
Unpaired files are found when a split is listed: with ``on_bad_sample=error`` the first one stops
the run before anything is read.

Without an ``images/val`` folder, ``val_fraction`` of ``train`` is held out: the images whose name
hashes lowest (crc32), so the split is the same on every run, resume and machine, and adding
images moves none of the others across. The split is written to ``<run dir>/split.json``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cfnet.data.files import FileDataModule, FileSegmentation, Pair, require_dir
from cfnet.data.io import SampleError, describe_valid, read_label
from cfnet.data.labels import INVALID, LUT_SIZE
from cfnet.utils.atomic import write_atomically
from cfnet.utils.checks import is_int, is_number

CLASSES_FILE = "classes.txt"
SPLIT_FILE = "split.json"
LAYOUT = "images/{train,val[,test]}/<stem>.<jpg|png|...> and masks/{train,val[,test]}/<stem>.png"
JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_classes(root: str | Path) -> list[str]:
    """The class names in ``<root>/classes.txt``, one per line (line i is training id i); what
    ``dataset.classes`` is when not given (the ``${folder_classes:...}`` resolver)."""
    path = Path(root).expanduser() / CLASSES_FILE
    if not path.is_file():
        raise ValueError(
            f"dataset.classes is not set and {str(path)!r} does not exist: write the class names "
            "there, one per line (line i is training id i), or pass "
            "dataset.classes=[background,cat,dog]"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names:
        raise ValueError(f"{str(path)!r} is empty: expected one class name per line")
    if "" in names:
        raise ValueError(
            f"{str(path)!r} line {names.index('') + 1} is empty: line i names training id i, so "
            "a blank line would shift every class after it"
        )
    return names


def colour_key(key: str) -> tuple[int, int, int] | None:
    """``"0-128-255"`` → (0, 128, 255); None if ``key`` is not a colour written ``R-G-B``."""
    parts = key.split("-")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    r, g, b = (int(p) for p in parts)
    return r, g, b


def _code(r: int, g: int, b: int) -> int:
    return (r << 16) | (g << 8) | b


def _rgb(code: int) -> str:
    return f"{code >> 16}-{(code >> 8) & 255}-{code & 255}"


@dataclass(frozen=True)
class FolderPair(Pair):
    """A listed (image, mask) pair; ``problem``: what pairing found wrong, raised when read."""

    problem: str | None = None


@dataclass(frozen=True)
class MaskCoding:
    """How raw mask values (or colours) become training ids, and what to say when they cannot."""

    lut: np.ndarray  # raw index value → training id, INVALID where undefined (int32, 256)
    colours: dict[int, int]  # R<<16 | G<<8 | B → training id
    class_names: list[str]
    ignore_index: int
    label_map: dict[int | str, int]
    reduce_zero_label: bool
    # The same tables in the forms the hot path reads (every training sample goes through them):
    # uint8 ids (checked valid first), and the known colour codes sorted, with their ids.
    _ids: np.ndarray = field(init=False, repr=False)
    _codes: np.ndarray = field(init=False, repr=False)
    _code_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = np.where(self.lut == INVALID, 0, self.lut).astype(np.uint8)
        object.__setattr__(self, "_ids", ids)
        codes = sorted(self.colours)
        object.__setattr__(self, "_codes", np.array(codes, np.int32))
        object.__setattr__(self, "_code_ids", np.array([self.colours[c] for c in codes], np.uint8))

    def index_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        # which values occur: OpenCV's histogram of a uint8 map (float counts: only > 0 is read)
        hist = cv2.calcHist([np.ascontiguousarray(raw)], [0], None, [LUT_SIZE], [0, LUT_SIZE])
        present = np.flatnonzero(hist.ravel())
        bad = [int(v) for v in present if self.lut[v] == INVALID]
        binary = present.tolist() == [0, 255] and 255 not in self.label_map
        if bad or (binary and len(self.class_names) > 1 and self.lut[0] == 0):
            raise SampleError(self._values_message(path, present.tolist(), bad, binary))
        return np.take(self._ids, raw)

    def _values_message(self, path: Path, present: list[int], bad: list[int], binary: bool) -> str:
        one = self.class_names[1] if len(self.class_names) > 1 else "?"
        binary_hint = f"set dataset.label_map={{255: 1}} to make 255 class 1 ({one!r})" + (
            f", or dataset.label_map={{255: {self.ignore_index}}} if 255 marks unlabelled pixels"
            if self.ignore_index == 255
            else ""
        )
        if not bad:  # 0/255 with 255 = ignore_index: valid, but the foreground is never learned
            return (
                f"mask {str(path)!r} holds only the values 0 and 255: a binary mask? 255 is "
                "dataset.ignore_index, so those pixels would be ignored, never learned; "
                + binary_hint
            )
        num = len(self.class_names)
        ids = f"0..{num}" if self.reduce_zero_label else f"0..{num - 1}"
        message = (
            f"mask {str(path)!r} has values {bad[:10]} that are neither a class "
            f"({'reduce_zero_label: ' if self.reduce_zero_label else ''}raw {ids}), "
            f"dataset.ignore_index ({self.ignore_index}) nor a key of dataset.label_map "
            f"(valid raw values: {describe_valid(self.lut)})"
        )
        if binary:
            return f"{message}; it holds only 0 and 255: a binary mask? {binary_hint}"
        if not self.reduce_zero_label and max(bad) == num and 0 in present:
            message += (
                f"; values 1..{num} for {num} classes: if 0 marks unlabelled pixels (as in "
                "ADE20K), set dataset.reduce_zero_label=true"
            )
        return message

    def colour_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        codes = (raw[..., 0].astype(np.int32) << 16) | (raw[..., 1].astype(np.int32) << 8)
        codes |= raw[..., 2]
        slot = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        if not np.array_equal(self._codes[slot], codes):
            found, inverse = np.unique(codes, return_inverse=True)
            ids = np.array([self.colours.get(int(c), INVALID) for c in found], np.int32)
            raise SampleError(self._colours_message(path, found, ids, inverse))
        return np.take(self._code_ids, slot)

    def _colours_message(
        self, path: Path, found: np.ndarray, ids: np.ndarray, inverse: np.ndarray
    ) -> str:
        counts = np.bincount(inverse.ravel(), minlength=len(found))
        unknown = [(int(counts[i]), int(c)) for i, c in enumerate(found) if ids[i] == INVALID]
        unknown.sort(reverse=True)
        listed = ", ".join(f"{_rgb(c)} ({n:,} px)" for n, c in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        palette = ", ".join(
            f"{_rgb(c)} {self.class_names[i]}" for c, i in list(self.colours.items())[:8]
        )
        message = (
            f"mask {str(path)!r} has colours {listed}{more} that are neither in dataset.palette "
            f"nor keys of dataset.label_map (known: {palette}"
            f"{', ...' if len(self.colours) > 8 else ''}); set dataset.palette to the masks' "
            "colours, one [R, G, B] per class in class order, or map a colour with "
            f"dataset.label_map={{{_rgb(unknown[0][1])}: <class id or {self.ignore_index}>}}"
        )
        if all((c >> 16) == (c >> 8) & 255 == c & 255 for c in found.tolist()):
            message += (
                "; every colour is grey (R = G = B): class ids saved as an RGB picture? save "
                "the masks as single-channel (mode L) PNGs"
            )
        return message


class FolderSegmentation(FileSegmentation):
    """``FileSegmentation`` whose masks may also be RGB colour masks, and whose pairs may carry a
    problem found when they were listed."""

    def __init__(
        self,
        pairs: list[FolderPair],
        coding: MaskCoding,
        allow_greyscale: bool,
        transform: Callable[..., dict[str, Any]] | None,
        on_bad_sample: str,
        replace_bad: bool,
    ) -> None:
        super().__init__(pairs, coding.lut, allow_greyscale, transform, on_bad_sample, replace_bad)
        self.coding = coding

    def read_raw_labels(self, path: Path) -> np.ndarray:
        return read_label(path, colours=True)

    def training_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            return self.coding.colour_ids(raw, path)
        return self.coding.index_ids(raw, path)

    def _check_pair(self, index: int) -> None:
        problem = self.pairs[index].problem
        if problem is not None:
            raise SampleError(problem)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        self._check_pair(index)
        return super().read(index)

    def read_labels(self, index: int) -> tuple[np.ndarray, str]:
        self._check_pair(index)
        return super().read_labels(index)


def held_out(names: list[str], fraction: float) -> set[str]:
    """The ``fraction`` of ``names`` (at least one, never all) whose crc32 is lowest: a split
    that depends on the names alone."""
    count = max(1, round(fraction * len(names)))
    if count >= len(names):
        raise ValueError(
            f"val_fraction={fraction}: {len(names)} training image(s) cannot give {count} to "
            "validation and keep one to train on; add images, or an images/val folder"
        )
    order = sorted(names, key=lambda n: (zlib.crc32(n.encode("utf-8")), n))
    return set(order[:count])


@dataclass(kw_only=True, eq=False)
class FolderDataModule(FileDataModule):
    """``dataset=folder``: the layout of the module doc under ``root``; each field is a key of
    ``conf/dataset/folder.yaml``, documented there."""

    classes: list[str]
    image_dir: str
    mask_dir: str
    image_suffix: list[str]
    mask_suffix: str
    reduce_zero_label: bool
    label_map: dict[Any, int] | None
    val_fraction: float
    _held_out: dict[str, list[str]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        classes = list(self.classes)
        if not classes or not all(isinstance(c, str) and c.strip() for c in classes):
            raise ValueError(f"classes={classes!r}: expected a list of non-empty class names")
        if len(set(classes)) != len(classes):
            twice = sorted({c for c in classes if classes.count(c) > 1})
            raise ValueError(f"classes={classes!r}: {twice} named more than once")
        if list(self.class_names) != classes:
            raise ValueError(
                f"class_names={list(self.class_names)!r} differs from classes={classes!r}: set "
                "dataset.classes (class_names follows it)"
            )
        num, ignore = self.num_classes, self.ignore_index
        lowest = num + 1 if self.reduce_zero_label else num
        if not is_int(ignore) or not lowest <= ignore < LUT_SIZE:
            raise ValueError(
                f"ignore_index={ignore!r}: must not be a raw class value of the masks; "
                f"allowed: {lowest}..{LUT_SIZE - 1}"
            )
        suffixes = list(self.image_suffix)
        if not suffixes or not all(isinstance(s, str) and s.startswith(".") for s in suffixes):
            raise ValueError(f"image_suffix={suffixes!r}: expected a list such as [.jpg, .png]")
        if not isinstance(self.mask_suffix, str) or not self.mask_suffix:
            raise ValueError(f"mask_suffix={self.mask_suffix!r}: expected a suffix such as .png")
        if not is_number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction!r}: must be a number in [0, 1)")
        if "train" not in self.splits:
            raise ValueError(f"splits={dict(self.splits)}: must name the train folder")
        self.coding()  # checks label_map and palette

    # ---- labels ---------------------------------------------------------------------------
    def lut(self) -> np.ndarray:
        return self.coding().lut

    def coding(self) -> MaskCoding:
        """The raw value / colour → training id tables; refuses a bad ``label_map`` or palette."""
        num, ignore = self.num_classes, self.ignore_index
        lut = np.full(LUT_SIZE, INVALID, np.int32)
        first = 1 if self.reduce_zero_label else 0
        lut[first : first + num] = np.arange(num)
        lut[ignore] = ignore
        if self.reduce_zero_label:
            lut[0] = ignore
        colours: dict[int, int] = {}
        for i, colour in enumerate(self.palette):
            rgb = list(colour)
            if len(rgb) != 3 or not all(is_int(v) and 0 <= v < 256 for v in rgb):
                raise ValueError(
                    f"palette[{i}]={rgb!r}: expected [R, G, B] with 0 <= R, G, B < 256"
                )
            code = _code(*rgb)
            if code in colours:
                raise ValueError(
                    f"palette[{i}]={rgb}: the colour of class {colours[code]} too; each class "
                    "needs its own colour (RGB masks are read through the palette)"
                )
            colours[code] = i
        given = dict(self.label_map or {})
        for key, value in given.items():
            shown = f"label_map={{{key}: {value}}}"
            if not is_int(value) or not (0 <= value < num or value == ignore):
                raise ValueError(
                    f"{shown}: {value!r} is neither a training id (0..{num - 1}) nor "
                    f"ignore_index ({ignore})"
                )
            raw = int(key) if is_int(key) or (isinstance(key, str) and key.isdigit()) else None
            colour = colour_key(key) if isinstance(key, str) else None
            if raw is not None and 0 <= raw < LUT_SIZE:
                lut[raw] = value
            elif colour is not None:
                colours[_code(*colour)] = value
            else:
                raise ValueError(
                    f"{shown}: keys are raw mask values 0..255, or colours of RGB masks written "
                    "R-G-B (0-0-0 for black)"
                )
        label_map = {
            int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in given.items()
        }
        return MaskCoding(
            lut, colours, list(self.classes), ignore, label_map, self.reduce_zero_label
        )

    # ---- files ----------------------------------------------------------------------------
    def _folder(self, kind: str, split_name: str) -> Path:
        return self.root_path / (self.image_dir if kind == "images" else self.mask_dir) / split_name

    def _listed(self, folder: Path, suffixes: list[str]) -> dict[str, list[Path]]:
        """{path under ``folder`` less its suffix: files} for the files whose name ends with one
        of ``suffixes`` (any case), in sub-folders too; hidden files and folders left out."""
        found: dict[str, list[Path]] = {}
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            name = relative.as_posix()
            suffix = next((s for s in suffixes if name.lower().endswith(s.lower())), None)
            if suffix is not None:
                found.setdefault(name[: -len(suffix)], []).append(path)
        return found

    def pairs(self, split_name: str) -> list[FolderPair]:
        layout, how = LAYOUT, f"see docs/own-data.md; dataset.root={self.root!r}"
        images_dir = require_dir(self._folder("images", split_name), self.name, layout, how)
        masks_dir = require_dir(self._folder("masks", split_name), self.name, layout, how)
        images = self._listed(images_dir, list(self.image_suffix))
        masks = self._listed(masks_dir, [self.mask_suffix])
        if not images and not masks:
            raise FileNotFoundError(
                f"{self.name}: split {split_name!r} is empty: {str(images_dir)!r} holds no "
                f"images ({', '.join(self.image_suffix)}) and {str(masks_dir)!r} no masks "
                f"(*{self.mask_suffix})"
            )
        pairs = []
        for stem in sorted(images.keys() | masks.keys()):
            found = images.get(stem, [])
            mask = masks[stem][0] if stem in masks else masks_dir / f"{stem}{self.mask_suffix}"
            image = found[0] if found else images_dir / f"{stem}{self.image_suffix[0]}"
            problem = None
            if len(found) > 1:
                names = ", ".join(repr(str(p)) for p in found)
                problem = f"images {names} share one name: which one goes with {str(mask)!r}?"
            elif not found:
                problem = (
                    f"mask {str(mask)!r} has no image: expected {str(images_dir / stem)!r} with "
                    f"one of the suffixes {', '.join(self.image_suffix)} (dataset.image_suffix)"
                )
            elif stem not in masks:
                problem = f"image {str(image)!r} has no mask: expected {str(mask)!r}"
                problem += self._other_mask_hint(mask)
            pairs.append(FolderPair(image, mask, stem, problem))
        return pairs

    def _other_mask_hint(self, expected: Path) -> str:
        """What lies where the mask was expected, under another suffix."""
        base = expected.name[: -len(self.mask_suffix)]
        others = sorted(p for p in expected.parent.glob(f"{base}.*") if p != expected)
        if not others:
            return ""
        other = others[0]
        if other.suffix.lower() in JPEG_SUFFIXES:
            return (
                f"; found {str(other)!r}, a JPEG: masks must be lossless PNGs (JPEG compression "
                "changes class ids along every edge)"
            )
        return f"; found {str(other)!r}: set dataset.mask_suffix={other.suffix} if it is the mask"

    def _split_pairs(self, split: str) -> list[FolderPair]:
        """The pairs of cfnet's split ``split``; without a val folder, train and val are the two
        parts of the train folder (``held_out``)."""
        if split not in self.splits:
            raise ValueError(
                f"dataset {self.name!r} has no split {split!r}; dataset.splits has "
                f"{sorted(self.splits)}"
            )
        folder = self._folder("images", self.splits[split])
        if split == "test" and not folder.is_dir():
            raise FileNotFoundError(
                f"{self.name}: no test split: {str(folder)!r} does not exist (evaluate split=val, "
                "or add images/test and masks/test)"
            )
        val_folder = self._folder("images", self.splits.get("val", "val"))
        if split not in ("train", "val") or val_folder.is_dir():
            return self.pairs(self.splits[split])
        if self.val_fraction == 0:
            raise FileNotFoundError(
                f"{self.name}: no validation split: {str(val_folder)!r} does not exist; add it "
                "(with its masks), or set dataset.val_fraction=0.1 to validate on a fixed 10 % "
                "of train"
            )
        pairs = self.pairs(self.splits["train"])
        val = held_out([p.name for p in pairs], self.val_fraction)
        if self._held_out is None:
            print(
                f"{self.name}: no {str(val_folder)!r}: validating on {len(val)} of {len(pairs)} "
                f"training images (dataset.val_fraction={self.val_fraction}, a fixed split by "
                f"file name; written to <run dir>/{SPLIT_FILE})"
            )
        self._held_out = {
            "train": [p.name for p in pairs if p.name not in val],
            "val": [p.name for p in pairs if p.name in val],
        }
        return [p for p in pairs if (p.name in val) == (split == "val")]

    def build_dataset(
        self,
        split: str,
        transform: Callable[..., dict[str, Any]] | None,
        replace_bad: bool = False,
    ) -> FolderSegmentation:
        pairs = self._split_pairs(split)
        problems = [p.problem for p in pairs if p.problem is not None]
        if problems and self.on_bad_sample == "error":
            more = (
                f" (and {len(problems) - 1} more: python -m cfnet.stats dataset=folder "
                f"dataset.root={self.root} lists every problem)"
                if len(problems) > 1
                else ""
            )
            raise SampleError(problems[0] + more)
        return FolderSegmentation(
            pairs, self.coding(), self.allow_greyscale, transform, self.on_bad_sample, replace_bad
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        trainer = self.trainer
        if self._held_out is not None and trainer is not None and trainer.is_global_zero:
            record = {"val_fraction": self.val_fraction, **self._held_out}
            path = Path(trainer.default_root_dir) / SPLIT_FILE
            text = json.dumps(record, indent=1) + "\n"
            write_atomically(path, lambda tmp: tmp.write_text(text))

    def split_names(self) -> list[str]:
        """train, val, and test where there is a test folder: what ``cfnet.stats`` reports."""
        names = ["train", "val"]
        if "test" in self.splits and self._folder("images", self.splits["test"]).is_dir():
            names.append("test")
        return names
