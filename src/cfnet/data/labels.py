"""Label conventions of the official dataset releases: raw ids on disk → training ids.

These tables describe file formats (what the dataset authors wrote into their PNGs and JSON), not
hyper-parameters, so they live in code; the readers (``cfnet.data.*``) and the converters
(``cfnet.data.releases``) share them. Each ``*_lut`` returns a lookup table
``lut[raw] → training id`` in which ``ignore_index`` marks pixels to ignore and ``INVALID`` marks
raw values the format does not define (a reader refuses a label map that contains one).
"""

from __future__ import annotations

import numpy as np

INVALID = -1
LUT_SIZE = 256  # label maps are 8-bit (16-bit maps are refused before the lookup)


def voc_palette(num_colours: int = 256, first: int = 0) -> np.ndarray:
    """The Pascal VOC colour map (num_colours × 3 uint8): the devkit's bit-interleaving of the id.

    Colours of ids ``first .. first + num_colours - 1``: 0 is black, 1 (aeroplane) (128, 0, 0),
    255 (boundary) (224, 224, 192). The palette PNGs of VOC/SBD/COCO masks carry all 256; the
    dataset configs take their class colours from it (``${voc_palette:150,1}``).
    """
    palette = np.zeros((num_colours, 3), np.uint8)
    for row, index in enumerate(range(first, first + num_colours)):
        cid, rgb = index, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((cid >> channel) & 1) << bit
            cid >>= 3
        palette[row] = rgb
    return palette


def _lut(mapping: dict[int, int]) -> np.ndarray:
    lut = np.full(LUT_SIZE, INVALID, np.int32)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    return lut


def voc_lut(num_classes: int, ignore_index: int) -> np.ndarray:
    """Pascal VOC / SBD / COCO→VOC masks: ids 0..num_classes-1 as is, 255 (boundary) ignored."""
    return _lut({i: i for i in range(num_classes)} | {255: ignore_index})


def shifted_lut(num_classes: int, ignore_index: int) -> np.ndarray:
    """ADE20K and 59-class Pascal Context: 0 ("other" / background) ignored, 1..C → 0..C-1."""
    return _lut({0: ignore_index} | {i + 1: i for i in range(num_classes)})


def identity_lut(num_classes: int, ignore_index: int) -> np.ndarray:
    """60-class Pascal Context (background is class 0): 0..C-1 as is; nothing else is valid."""
    return _lut({i: i for i in range(num_classes)})


# ---- Cityscapes ---------------------------------------------------------------------------------
# (labelId, name, trainId) from cityscapesScripts/helpers/labels.py; trainId 255 = not evaluated.
# "license plate" (labelId -1) never appears in the *_labelIds.png files.
CITYSCAPES_LABELS: tuple[tuple[int, str, int], ...] = (
    (0, "unlabeled", 255),
    (1, "ego vehicle", 255),
    (2, "rectification border", 255),
    (3, "out of roi", 255),
    (4, "static", 255),
    (5, "dynamic", 255),
    (6, "ground", 255),
    (7, "road", 0),
    (8, "sidewalk", 1),
    (9, "parking", 255),
    (10, "rail track", 255),
    (11, "building", 2),
    (12, "wall", 3),
    (13, "fence", 4),
    (14, "guard rail", 255),
    (15, "bridge", 255),
    (16, "tunnel", 255),
    (17, "pole", 5),
    (18, "polegroup", 255),
    (19, "traffic light", 6),
    (20, "traffic sign", 7),
    (21, "vegetation", 8),
    (22, "terrain", 9),
    (23, "sky", 10),
    (24, "person", 11),
    (25, "rider", 12),
    (26, "car", 13),
    (27, "truck", 14),
    (28, "bus", 15),
    (29, "caravan", 255),
    (30, "trailer", 255),
    (31, "train", 16),
    (32, "motorcycle", 17),
    (33, "bicycle", 18),
)
CITYSCAPES_TRAIN_NAMES: tuple[str, ...] = tuple(
    name for _, name, train_id in sorted(CITYSCAPES_LABELS, key=lambda r: r[2]) if train_id != 255
)


def cityscapes_label_id_lut(ignore_index: int) -> np.ndarray:
    """``*_gtFine_labelIds.png`` → trainIds; ids the benchmark does not evaluate → ignore."""
    return _lut({lid: (ignore_index if tid == 255 else tid) for lid, _, tid in CITYSCAPES_LABELS})


def cityscapes_train_id_lut(ignore_index: int) -> np.ndarray:
    """``*_gtFine_labelTrainIds.png`` (from ``cfnet.prepare cityscapes``): 0..18, 255 ignored."""
    return voc_lut(len(CITYSCAPES_TRAIN_NAMES), ignore_index)


def cityscapes_train_to_label_id() -> np.ndarray:
    """trainId → labelId, for test-server submissions (which are scored in labelId space)."""
    lut = np.zeros(LUT_SIZE, np.uint8)  # unknown trainIds → 0 "unlabeled"
    for label_id, _, train_id in CITYSCAPES_LABELS:
        if train_id != 255:
            lut[train_id] = label_id
    return lut


# ---- COCO → VOC ---------------------------------------------------------------------------------
# VOC id → COCO category id for the 20 VOC classes (the paper's COCO pre-training, as in the
# authors' code: CAT_LIST). Every other category, and crowd regions, are background.
COCO_VOC_CATEGORIES: dict[int, int] = {
    1: 5,  # aeroplane ← airplane
    2: 2,  # bicycle
    3: 16,  # bird
    4: 9,  # boat
    5: 44,  # bottle
    6: 6,  # bus
    7: 3,  # car
    8: 17,  # cat
    9: 62,  # chair
    10: 21,  # cow
    11: 67,  # diningtable ← dining table
    12: 18,  # dog
    13: 19,  # horse
    14: 4,  # motorbike ← motorcycle
    15: 1,  # person
    16: 64,  # pottedplant ← potted plant
    17: 20,  # sheep
    18: 63,  # sofa ← couch
    19: 7,  # train
    20: 72,  # tvmonitor ← tv
}
COCO_MIN_FOREGROUND = 1000  # images with fewer VOC-class pixels are dropped (authors' code)

# ---- Pascal Context -----------------------------------------------------------------------------
# The 59 most frequent of the 459 classes of the official release (labels.txt), in the order of
# their training ids 1..59 (0 = background: unlabelled or any of the other 400 classes).
CONTEXT59_NAMES: tuple[str, ...] = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow",
    "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
    "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
    "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)  # fmt: skip
