"""Raw release formats → cfnet label arrays: the pure part of ``python -m cfnet.prepare``.

Each function here turns one file of an official release into the label array cfnet's readers
expect, and refuses (``ValueError`` naming the file) what the format does not define, so a
corrupt download fails at conversion time instead of silently training on garbage. Walking the
trees and writing files live in ``cfnet.data.releases``, the command line in ``cfnet.prepare``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cfnet.data.io import map_labels
from cfnet.data.labels import (
    COCO_VOC_CATEGORIES,
    CONTEXT59_NAMES,
    cityscapes_label_id_lut,
    voc_lut,
)

VOC_CLASSES = 21  # background + 20 object classes
VOC_IGNORE = 255  # object boundaries in VOC's SegmentationClass PNGs


def load_mat(path: Path, variable: str) -> Any:
    """One variable of a MATLAB file (structs as attribute objects), or ValueError naming it."""
    from scipy.io import loadmat  # scipy is only needed by the two .mat converters

    try:
        content = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, MatReadError, ...
        raise ValueError(f"cannot read MATLAB file {str(path)!r}: {err}") from err
    if variable not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"MATLAB file {str(path)!r} has no variable {variable!r} (has {found})")
    return content[variable]


def _integer_map(value: Any, path: Path, what: str) -> np.ndarray:
    """A 2-D array of non-negative integers (int64), or ValueError naming the file."""
    array = np.asarray(value)
    ok = array.ndim == 2 and array.size > 0
    if ok and array.dtype.kind == "f":
        ok = bool(np.isfinite(array).all() and (array == np.round(array)).all())
    elif ok:
        ok = array.dtype.kind in "iu"
    if not ok or (array < 0).any():
        raise ValueError(
            f"{what} in {str(path)!r} is not a 2-D map of non-negative integers "
            f"(shape {array.shape}, dtype {array.dtype})"
        )
    return array.astype(np.int64)


def sbd_mask(path: Path) -> np.ndarray:
    """``cls/<id>.mat`` of SBD → VOC class ids (uint8 H×W, 0..20)."""
    gt = load_mat(path, "GTcls")
    try:
        segmentation = gt.Segmentation
    except AttributeError as err:
        raise ValueError(f"SBD file {str(path)!r}: GTcls has no field 'Segmentation'") from err
    ids = _integer_map(segmentation, path, "GTcls.Segmentation")
    if ids.max() > VOC_CLASSES - 1:
        bad = np.unique(ids[ids > VOC_CLASSES - 1]).tolist()[:10]
        raise ValueError(f"SBD file {str(path)!r} has class ids {bad} (expected 0..20)")
    return ids.astype(np.uint8)


def voc_mask(raw: np.ndarray, path: Path) -> np.ndarray:
    """A VOC SegmentationClass index map, checked: 0..20 and 255 (boundary) only."""
    return map_labels(raw, voc_lut(VOC_CLASSES, VOC_IGNORE), path)


def parse_context_labels(path: Path) -> dict[int, str]:
    """``labels.txt`` of PASCAL-Context (``"<id>: <name>"`` lines) → {id: name}."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {str(path)!r}: {err}") from err
    labels: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, name = line.partition(":")
        if not sep or not key.strip().isdigit() or not name.strip():
            raise ValueError(
                f"{str(path)!r} line {number}: expected '<id>: <name>', got {line.strip()!r}"
            )
        labels[int(key)] = name.strip()
    if not labels:
        raise ValueError(f"{str(path)!r} lists no classes (expected '<id>: <name>' lines)")
    return labels


def context_lut(labels: Mapping[int, str], source: Path) -> np.ndarray:
    """Release id → 59-class training id (1..59 by ``CONTEXT59_NAMES`` order; the rest → 0).

    Matched by name, not by id, so the table does not depend on the release's numbering.
    """
    by_name: dict[str, list[int]] = {}
    for raw_id, name in labels.items():
        by_name.setdefault(name, []).append(raw_id)
    missing = [name for name in CONTEXT59_NAMES if name not in by_name]
    if missing:
        raise ValueError(
            f"{str(source)!r} lacks {len(missing)} of the 59 Pascal Context classes: {missing} "
            "(is it the labels.txt of the official 459-class release?)"
        )
    lut = np.zeros(max(labels) + 1, np.uint8)
    for train_id, name in enumerate(CONTEXT59_NAMES, 1):
        lut[by_name[name]] = train_id
    return lut


def context_mask(path: Path, lut: np.ndarray) -> np.ndarray:
    """``trainval/<id>.mat`` (``LabelMap``, release ids) → 0..59 (uint8 H×W)."""
    ids = _integer_map(load_mat(path, "LabelMap"), path, "LabelMap")
    if ids.max() >= len(lut):
        bad = np.unique(ids[ids >= len(lut)]).tolist()[:10]
        raise ValueError(
            f"PASCAL-Context file {str(path)!r} has ids {bad} not in labels.txt "
            f"(which lists ids up to {len(lut) - 1})"
        )
    return lut[ids]


def cityscapes_train_ids(label_ids: np.ndarray, path: Path) -> np.ndarray:
    """``*_gtFine_labelIds.png`` content → trainIds (0..18, 255 = not evaluated)."""
    return map_labels(label_ids, cityscapes_label_id_lut(VOC_IGNORE), path)


def load_coco(path: Path) -> Any:
    """A ``pycocotools.coco.COCO`` index of an instances json, or ValueError naming the file."""
    from pycocotools.coco import COCO  # only the coco_voc converter needs it

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timing chatter
            return COCO(str(path))
    except Exception as err:  # JSONDecodeError, KeyError, TypeError, ... on a bad file
        raise ValueError(f"cannot read COCO annotations {str(path)!r}: {err!r}") from err


COCO_TO_VOC: dict[int, int] = {coco: voc for voc, coco in COCO_VOC_CATEGORIES.items()}


def coco_voc_mask(coco: Any, image_id: int, source: Path) -> np.ndarray:
    """One COCO image's VOC-class mask (uint8 H×W, 0..20).

    Instances are painted in annotation order, later ones over earlier ones; crowd regions and
    categories outside the 20 VOC classes are left as background 0.
    """
    info = coco.imgs[image_id]
    try:
        mask = np.zeros((int(info["height"]), int(info["width"])), np.uint8)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{str(source)!r}: image {image_id} lacks a valid height/width: {err!r}"
        ) from err
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)):
        voc_id = COCO_TO_VOC.get(ann.get("category_id"))
        if voc_id is None or ann.get("iscrowd", 0):
            continue
        try:
            instance = coco.annToMask(ann)
        except Exception as err:
            raise ValueError(
                f"{str(source)!r}: annotation {ann.get('id')} of image {image_id} has an "
                f"unreadable segmentation: {err!r}"
            ) from err
        mask[instance > 0] = voc_id
    return mask
