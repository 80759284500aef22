"""The embedded synthetic co-occurrence dataset: objects recognisable only from what co-occurs.

Each image is one of two scene types, *harbour* or *street*. A scene is marked only by its cue
objects: boats (orange triangles on a hull) in a harbour, cars (blue-violet bodies with dark wheels)
in a street. Two further kinds of object are drawn from **one shared appearance** in both scenes,
and their label depends on the scene alone:

    water blob  →  ``sea`` in a harbour,   ``canal`` in a street
    pole        →  ``mast`` in a harbour,  ``lamppost`` in a street

The background, the ambiguous objects' appearance, their number, size and placement follow the same
distribution in both scenes, and every ambiguous object is placed at least ``min_distance`` (a
fraction of the image diagonal) away from every cue. So a pixel of an ambiguous object cannot be
labelled from its own neighbourhood: the evidence lies in a distant, co-occurring object, which is
what CFNet's co-occurrent features are for (and what a local FCN receptive field lacks).

These *single* scenes have a shortcut: the whole image is one scene type, so one global average
of the features ("is there a boat anywhere?") decides every ambiguous pixel; global pooling alone
solves them. *Paired* scenes (``render_paired_scene``) remove it. Both cues are drawn in every
image, each carrying a square marker of one of two per-scene colours, and every ambiguous object
carries the same marker as exactly one cue, whose scene its label follows (a water blob with the
boat's marker colour is ``sea``, with the car's ``canal``). Every object keeps its single-scene
appearance; only the markers tell the pairing. Exchanging the two cues' colours flips every
ambiguous label and leaves the colour and label histograms of the image unchanged (a test checks
it), so no function of globally pooled statistics can beat chance on those objects: a pixel needs
the feature it co-occurs with, found by similarity, which is what ACF's p(c|t) computes.
``dataset.scenes`` picks ``single`` (the default), ``paired`` or ``mixed`` (alternating).

Everything is generated on the fly from ``(seed, split, index)``: deterministic, no files, and the
same sample whatever the worker or process that draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnet.data.datamodule import SegmentationDataModule
from cfnet.data.dataset import SegmentationDataset
from cfnet.utils.checks import one_of

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "boat",
    "car",
    "sea",
    "canal",
    "mast",
    "lamppost",
)
BOAT, CAR, SEA, CANAL, MAST, LAMPPOST = 1, 2, 3, 4, 5, 6
HARBOUR, STREET = 0, 1
# label of (appearance, scene): water → sea | canal, pole → mast | lamppost
AMBIGUOUS_LABEL = {("water", HARBOUR): SEA, ("water", STREET): CANAL}
AMBIGUOUS_LABEL |= {("pole", HARBOUR): MAST, ("pole", STREET): LAMPPOST}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_PAIRED_STREAM = 1  # paired scenes draw from their own random stream: (seed, split, index, 1)


@dataclass(frozen=True)
class _Box:
    cy: float
    cx: float
    radius: float  # bounding radius, for the distance constraint


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field + pixel noise, from one distribution for every scene type."""
    coords = np.arange(size, dtype=np.float32) / size
    base = rng.uniform(70, 150, size=3).astype(np.float32)
    field = np.zeros((size, size, 3), np.float32)
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 2.5, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(-25, 25, size=3).astype(np.float32)
        # cos(a + b) = cos a cos b − sin a sin b: a plane wave as two outer products (separable)
        a, b = 2 * np.pi * fy * coords, 2 * np.pi * fx * coords + phase
        wave = np.outer(np.cos(a), np.cos(b)) - np.outer(np.sin(a), np.sin(b))
        field += wave[..., None] * amp
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * 8
    return base + field + noise


def _jitter(
    rng: np.random.Generator, colour: tuple[float, float, float], amount: float
) -> np.ndarray:
    return np.asarray(colour, np.float32) + rng.uniform(-amount, amount, size=3).astype(np.float32)


def _draw_boat(rng, image, mask, box, yy, xx) -> None:
    r = box.radius
    hull = (np.abs(yy - (box.cy + 0.45 * r)) < 0.25 * r) & (
        np.abs(xx - box.cx) < 0.9 * r - 0.8 * np.abs(yy - box.cy - 0.2 * r)
    )
    sail = (yy > box.cy - 0.9 * r) & (yy < box.cy + 0.2 * r) & (xx > box.cx - 0.05 * r)
    sail &= (xx - box.cx) < 0.7 * r * (yy - (box.cy - 0.9 * r)) / (1.1 * r)
    image[hull] = _jitter(rng, (120, 60, 30), 15)
    image[sail] = _jitter(rng, (235, 120, 40), 15)
    mask[hull | sail] = BOAT


def _draw_car(rng, image, mask, box, yy, xx) -> None:
    r = box.radius
    body = (np.abs(yy - box.cy) < 0.35 * r) & (np.abs(xx - box.cx) < 0.95 * r)
    cabin = (yy > box.cy - 0.75 * r) & (yy <= box.cy - 0.3 * r) & (np.abs(xx - box.cx) < 0.5 * r)
    wheels = np.zeros_like(body)
    for wx in (-0.55, 0.55):
        wheels |= (yy - (box.cy + 0.4 * r)) ** 2 + (xx - (box.cx + wx * r)) ** 2 < (0.25 * r) ** 2
    image[body | cabin] = _jitter(rng, (90, 70, 210), 15)
    image[wheels] = _jitter(rng, (25, 25, 30), 5)
    mask[body | cabin | wheels] = CAR


def _draw_water(rng, image, mask, box, yy, xx, label) -> None:
    ry, rx = box.radius * rng.uniform(0.55, 0.8), box.radius
    blob = ((yy - box.cy) / ry) ** 2 + ((xx - box.cx) / rx) ** 2 < 1
    waves = np.sin(yy * rng.uniform(0.6, 0.9) + np.sin(xx * 0.3) * 2 + rng.uniform(0, 6))
    colour = _jitter(rng, (40, 150, 170), 12)
    image[blob] = colour + (waves[blob, None] * 25).astype(np.float32)
    mask[blob] = label


def _draw_pole(rng, image, mask, box, yy, xx, label) -> None:
    half_w = rng.uniform(3.0, 4.5)
    lamp = 2.2 * half_w  # lamp radius; pole + lamp stay inside the bounding circle
    half_len = box.radius - lamp
    pole = (np.abs(xx - box.cx) < half_w) & (np.abs(yy - (box.cy + lamp)) < half_len)
    top = ((yy - (box.cy + lamp - half_len)) ** 2 + (xx - box.cx) ** 2) < lamp**2
    stripes = (np.floor((yy - box.cy) / 5) % 2).astype(np.float32)
    colour = _jitter(rng, (225, 205, 70), 12)
    image[pole] = colour - stripes[pole, None] * 45
    image[top] = colour
    mask[pole | top] = label


def _window(box: _Box, size: int) -> tuple[slice, slice]:
    """Rows/columns that can hold the object (every shape lies inside its bounding circle)."""
    reach = int(np.ceil(box.radius)) + 2
    cy, cx = int(box.cy), int(box.cx)
    return (
        slice(max(cy - reach, 0), min(cy + reach + 1, size)),
        slice(max(cx - reach, 0), min(cx + reach + 1, size)),
    )


def _place(
    rng: np.random.Generator, size: int, radius: float, avoid: list[_Box], min_dist: float
) -> _Box | None:
    """Uniform position in the image, at least ``min_dist`` (between bounding circles) from every
    box of ``avoid``."""
    return _place_among(rng, size, radius, avoid, [min_dist] * len(avoid))


def render_scene(
    seed: int,
    split: str,
    index: int,
    image_size: int,
    min_distance: float,
    max_ambiguous: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One sample: (image H×W×3 uint8, mask H×W uint8 class ids, scene type 0|1).

    ``min_distance`` is the smallest gap between a cue and an ambiguous object (bounding circles),
    as a fraction of the image diagonal.
    """
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    size = image_size
    scene = int(rng.integers(2))
    image = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    gap = min_distance * size * np.sqrt(2)
    scale = size / 160  # object sizes are tuned for 160 px and follow the image size

    while True:  # rejection: a layout where ambiguous objects keep far from every cue
        cue_box = _place(rng, size, rng.uniform(13, 18) * scale, [], 0)
        ambiguous: list[tuple[str, _Box]] = []
        avoid = [cue_box]
        for _ in range(int(rng.integers(1, max_ambiguous + 1))):
            kind = "water" if rng.random() < 0.5 else "pole"
            radius = (rng.uniform(14, 22) if kind == "water" else rng.uniform(22, 28)) * scale
            box = _place(rng, size, radius, [cue_box], gap)
            if box is not None:
                ambiguous.append((kind, box))
                avoid.append(box)
        if ambiguous:
            break
    # An optional second cue of the same scene, also far from the ambiguous objects.
    cues = [cue_box]
    if rng.random() < 0.5:
        second = _place(rng, size, rng.uniform(11, 16) * scale, [b for _, b in ambiguous], gap)
        if second is not None and np.hypot(second.cy - cue_box.cy, second.cx - cue_box.cx) > (
            second.radius + cue_box.radius
        ):
            cues.append(second)

    # Each object is drawn in a window around it; the windows are views, so writes land in place.
    for kind, box in ambiguous:
        draw = _draw_water if kind == "water" else _draw_pole
        win = _window(box, size)
        draw(rng, image[win], mask[win], box, yy[win], xx[win], AMBIGUOUS_LABEL[(kind, scene)])
    for box in cues:
        win = _window(box, size)
        draw_cue = _draw_boat if scene == HARBOUR else _draw_car
        draw_cue(rng, image[win], mask[win], box, yy[win], xx[win])
    return np.clip(image, 0, 255).astype(np.uint8), mask, scene


# ---- paired scenes: both cue kinds in one image, pairing by a shared marker colour -------------
# Saturated marker colours, far from the objects' own colours (sail, hull, car body, water, pole).
MARKER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (235, 35, 35),  # red
    (35, 200, 60),  # green
    (245, 245, 245),  # white
    (20, 20, 20),  # black
    (220, 40, 220),  # magenta
    (20, 235, 235),  # cyan
)
# label of (appearance, paired cue): water → sea with a boat, canal with a car; pole likewise
PAIRED_LABEL = {("water", BOAT): SEA, ("water", CAR): CANAL}
PAIRED_LABEL |= {("pole", BOAT): MAST, ("pole", CAR): LAMPPOST}


@dataclass(frozen=True)
class PairedObject:
    """One object of a paired scene: what it is, where, and which marker colour it carries."""

    kind: str  # "boat" | "car" | "water" | "pole"
    box: _Box
    colour: int  # index into the scene's two marker colours (0: the boat's, 1: the car's)
    label: int  # class id


@dataclass(frozen=True)
class PairedScene:
    """The layout of a paired scene (for tests and measurements; ``render_paired_scene``)."""

    objects: tuple[PairedObject, ...]
    colours: tuple[int, int]  # MARKER_COLOURS indices of the boat's and the car's marker
    marker: int  # side of the square markers, px


def _marker(image, mask, cy: float, cx: float, side: int, colour, label: int) -> None:
    """A side×side square of ``colour`` centred (to the pixel) on (cy, cx), labelled ``label``.

    Every marker of a scene has the same integer side, so two markers cover the same pixel count.
    """
    top, left = round(cy) - side // 2, round(cx) - side // 2
    rows = slice(max(top, 0), max(top + side, 0))
    cols = slice(max(left, 0), max(left + side, 0))
    image[rows, cols] = colour
    mask[rows, cols] = label


def _place_twin(
    rng: np.random.Generator, size: int, first: _Box, avoid: list[_Box], gaps: list[float]
) -> _Box | None:
    """A second object of ``first``'s radius whose centre differs from it by whole pixels, so the
    two are drawn with the same mask; ``gaps[i]`` is the gap to keep from ``avoid[i]``."""
    margin = first.radius + 1
    for _ in range(200):
        cy, cx = rng.uniform(margin, size - margin, size=2)
        cy, cx = first.cy + round(cy - first.cy), first.cx + round(cx - first.cx)
        if not (margin <= cy <= size - margin and margin <= cx <= size - margin):
            continue
        if all(
            np.hypot(cy - b.cy, cx - b.cx) >= g + b.radius + first.radius
            for b, g in zip(avoid, gaps, strict=True)
        ):
            return _Box(cy, cx, first.radius)
    return None


def paired_layout(
    seed: int, split: str, index: int, image_size: int, min_distance: float, max_ambiguous: int
) -> tuple[PairedScene, np.random.Generator]:
    """Where the objects of a paired scene go, and the generator that then draws them.

    One boat and one car, each with a marker of its own colour (two distinct colours drawn from
    ``MARKER_COLOURS`` per scene). Ambiguous objects come as *twins*: two objects of the same kind
    and the same shape, one with each marker colour; each takes the label of the cue whose colour
    it carries. Every ambiguous object keeps ``min_distance`` (fraction of the diagonal) from both
    cues. ``max_ambiguous`` // 2 twin pairs at most (at least one).
    """
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, _PAIRED_STREAM])
    size, scale = image_size, image_size / 160
    gap = min_distance * size * np.sqrt(2)
    colours = tuple(int(c) for c in rng.choice(len(MARKER_COLOURS), size=2, replace=False))
    marker = max(3, round(14 * scale))
    while True:
        boat = _place(rng, size, rng.uniform(13, 18) * scale, [], 0)
        car = _place(rng, size, rng.uniform(13, 18) * scale, [boat], 2 * scale)
        if car is None:
            continue
        objects = [PairedObject("boat", boat, 0, BOAT), PairedObject("car", car, 1, CAR)]
        placed: list[_Box] = []
        for _ in range(max(1, max_ambiguous // 2)):
            kind = "water" if rng.random() < 0.5 else "pole"
            radius = (rng.uniform(14, 22) if kind == "water" else rng.uniform(22, 28)) * scale
            avoid, gaps = [boat, car, *placed], [gap, gap] + [2 * scale] * len(placed)
            first = _place_among(rng, size, radius, avoid, gaps)
            second = (
                None
                if first is None
                else _place_twin(rng, size, first, [*avoid, first], [*gaps, 2 * scale])
            )
            if second is None:
                break
            first_colour = int(rng.integers(2))
            for box, colour in ((first, first_colour), (second, 1 - first_colour)):
                cue = BOAT if colour == 0 else CAR
                objects.append(PairedObject(kind, box, colour, PAIRED_LABEL[(kind, cue)]))
            placed += [first, second]
        if placed:
            return PairedScene(tuple(objects), colours, marker), rng


def _place_among(
    rng: np.random.Generator, size: int, radius: float, avoid: list[_Box], gaps: list[float]
) -> _Box | None:
    """Uniform position at least ``gaps[i]`` (between bounding circles) from each ``avoid[i]``."""
    margin = radius + 1
    for _ in range(200):
        cy, cx = rng.uniform(margin, size - margin, size=2)
        if all(
            np.hypot(cy - b.cy, cx - b.cx) >= g + b.radius + radius
            for b, g in zip(avoid, gaps, strict=True)
        ):
            return _Box(cy, cx, radius)
    return None


def render_paired_scene(
    seed: int,
    split: str,
    index: int,
    image_size: int,
    min_distance: float,
    max_ambiguous: int,
    swap: bool = False,
) -> tuple[np.ndarray, np.ndarray, PairedScene]:
    """One paired sample: (image H×W×3 uint8, mask H×W uint8 class ids, its layout).

    ``swap=True`` draws the same scene with the boat's and the car's marker colours exchanged:
    the same pixels everywhere but on the two cue markers, and every ambiguous label flipped to
    its partner (sea ↔ canal, mast ↔ lamppost). A test checks that the two versions have the
    same colour histogram and the same label histogram: nothing pooled over the image can tell
    them apart, only which cue each marker colour sits on.
    """
    layout, rng = paired_layout(seed, split, index, image_size, min_distance, max_ambiguous)
    size = image_size
    image = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # one jitter per marker colour and scene, the same on the cue and on its twins
    palette = [_jitter(rng, MARKER_COLOURS[c], 10) for c in layout.colours]
    cue_colour = (1, 0) if swap else (0, 1)  # marker colour index on (boat, car)
    twins_seed = int(rng.integers(2**31))
    objects = []
    for obj in layout.objects:
        if obj.kind in ("water", "pole"):
            paired_cue = BOAT if cue_colour[0] == obj.colour else CAR
            obj = PairedObject(obj.kind, obj.box, obj.colour, PAIRED_LABEL[(obj.kind, paired_cue)])
        objects.append(obj)
    for i, obj in enumerate(objects):
        win, box = _window(obj.box, size), obj.box
        # twins (same radius, same pair index) draw their shape from the same generator state
        shape_rng = np.random.default_rng([twins_seed, i // 2]) if i >= 2 else rng
        args = (image[win], mask[win], box, yy[win], xx[win])
        if obj.kind == "water":
            _draw_water(shape_rng, *args, obj.label)
            spot = (box.cy, box.cx)
        elif obj.kind == "pole":
            _draw_pole(shape_rng, *args, obj.label)
            spot = (box.cy - box.radius * 0.55, box.cx)
        elif obj.kind == "boat":
            _draw_boat(rng, *args)
            spot = (box.cy - 0.2 * box.radius, box.cx + 0.25 * box.radius)
        else:
            _draw_car(rng, *args)
            spot = (box.cy, box.cx)
        colour = obj.colour if i >= 2 else cue_colour[i]
        _marker(image, mask, *spot, layout.marker, palette[colour], obj.label)
    scene = PairedScene(tuple(objects), layout.colours, layout.marker)
    return np.clip(image, 0, 255).astype(np.uint8), mask, scene


SCENE_FAMILIES: tuple[str, ...] = ("single", "paired", "mixed")


def render(
    family: str,
    seed: int,
    split: str,
    index: int,
    image_size: int,
    min_distance: float,
    max_ambiguous: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``index`` of a scene family: (image H×W×3 uint8, mask H×W uint8 class ids).

    ``mixed`` alternates the two families: even indices are single-scene, odd ones paired (the
    very samples of ``single`` and ``paired`` at that index).
    """
    if one_of("scenes", family, SCENE_FAMILIES) == "mixed":
        family = "paired" if index % 2 else "single"
    draw = render_paired_scene if family == "paired" else render_scene
    image, mask, _ = draw(seed, split, index, image_size, min_distance, max_ambiguous)
    return image, mask


class SyntheticCooccurrence(SegmentationDataset):
    """``length`` procedurally generated samples of one split (see the module docstring)."""

    def __init__(
        self,
        split: str,
        length: int,
        seed: int,
        image_size: int,
        min_distance: float,
        max_ambiguous: int,
        scenes: str = "single",
        transform=None,
    ) -> None:
        super().__init__(transform)
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {tuple(SPLIT_IDS)}, got {split!r}")
        self.split, self.length, self.seed = split, length, seed
        self.image_size, self.min_distance, self.max_ambiguous = (
            image_size,
            min_distance,
            max_ambiguous,
        )
        self.scenes = scenes

    def __len__(self) -> int:
        return self.length

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        image, mask = render(
            self.scenes,
            self.seed,
            self.split,
            index,
            self.image_size,
            self.min_distance,
            self.max_ambiguous,
        )
        return image, mask, f"{self.split}_{index:05d}"


@dataclass(kw_only=True, eq=False)
class SyntheticDataModule(SegmentationDataModule):
    """DataModule of the synthetic co-occurrence dataset (``dataset=synthetic``)."""

    sizes: dict[str, int]  # number of images per split
    seed: int
    image_size: int
    min_distance: float  # cue ↔ ambiguous gap, fraction of the image diagonal
    max_ambiguous: int  # ambiguous objects per image: 1..max_ambiguous
    scenes: str = "single"  # single | paired | mixed (SCENE_FAMILIES)

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("scenes", self.scenes, SCENE_FAMILIES)

    def build_dataset(
        self, split: str, transform, replace_bad: bool = False
    ) -> SyntheticCooccurrence:
        if split not in self.sizes:
            raise ValueError(f"dataset.sizes has no {split!r} split (has {sorted(self.sizes)})")
        return SyntheticCooccurrence(
            split,
            self.sizes[split],
            self.seed,
            self.image_size,
            self.min_distance,
            self.max_ambiguous,
            self.scenes,
            transform,
        )
