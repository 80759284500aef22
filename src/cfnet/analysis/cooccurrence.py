"""The class co-occurrence a model learned, beside the one its labels hold (``cfnet.cooccurrence``,
and the matrix of ``cfnet.explore``'s page).

    learned lift[a, b]     for the query cells of ground-truth class a, the share of their
                           attention mass (the mixture p(c|t), mean over the heads) that falls on
                           key cells of class b, divided by b's share of the key grid: the lift of
                           ``cfnet.analysis.attention``, one row per query class. 1 means "no
                           preference"; above 1, pixels of a look at b.
    label co-occurrence    the fraction of the images containing a (any labelled pixel) that also
                           contain b.

Beside the sums, each pair keeps the few images where a looks at b most (their own lift), with the
pixel of a that looks there most: the explorer opens them from a click on the matrix.

Images are inspected one at a time at the size ``inspection_size`` gives and prepared by
``prepare_image``; the explorer does the same, so the pixel a matrix cell opens is the pixel that
was measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cfnet.analysis.attention import attention_by_query_class, class_fractions, mass_on_classes
from cfnet.data.transforms import eval_transform
from cfnet.evaluation.inference import long_side_size, resize
from cfnet.models.acf import CooccurrenceMaps
from cfnet.models.heads import CFNetHead
from cfnet.models.segmentor import Segmentor

MIN_KEY_CELLS = 0.5  # a class "is there" for a pair's image ranking from half a key cell of area


# ---- the model's maps --------------------------------------------------------------------------
def acf_shape(net: Segmentor) -> tuple[int, int]:
    """(heads H, mixture components K) of the model's ACF module; (0, 0) without one."""
    acf = getattr(net.head, "acf", None)
    return (acf.heads, acf.k) if acf is not None else (0, 0)


def no_map_reason(net: Segmentor) -> str | None:
    """Why ``net`` has no co-occurrence map (None: it has one), in words for the user."""
    if getattr(net.head, "acf", None) is not None:
        return None
    if isinstance(net.head, CFNetHead):
        return "this CFNet was trained with model.use_acf=false, so it has no ACF module"
    return f"this model is an {type(net).__name__} (no ACF module)"


# ---- the size an image is inspected at -----------------------------------------------------
def map_megabytes(size: tuple[int, int], heads: int, k: int, output_stride: int) -> float:
    """What the co-occurrence maps of an image of ``size`` hold: H×(K+1)×N×M float32 (the K
    components and their mixture, N query and M key cells), in MiB; 0 for a model without them
    (``heads=0``)."""
    qh, qw = (math.ceil(s / output_stride) for s in size)
    n, m = qh * qw, math.ceil(qh / 2) * math.ceil(qw / 2)
    return 4 * heads * (k + 1) * n * m / 2**20


def inspection_size(
    height: int,
    width: int,
    max_size: int,
    *,
    heads: int,
    k: int,
    output_stride: int,
    max_map_mb: float,
) -> tuple[int, int]:
    """The size an image is inspected at: its own, or, when its long side exceeds ``max_size``,
    long side ``max_size`` (as the ``slide`` protocol sizes it: ``long_side_size``); then 10 %
    smaller at a time while its maps would exceed ``max_map_mb`` (N×M grows with the fourth
    power of the side: a Cityscapes frame at 2048 would need gigabytes)."""
    size = (height, width)
    if max(size) > max_size:
        size = long_side_size(height, width, max_size)
    while map_megabytes(size, heads, k, output_stride) > max_map_mb and max(size) > 16:
        size = long_side_size(*size, int(max(size) * 0.9))
    return size


def prepare_image(
    image: np.ndarray, size: tuple[int, int], mean: list[float], std: list[float]
) -> tuple[np.ndarray, Tensor]:
    """(the RGB uint8 picture at ``size``, the model's input 1×3×h×w): resized bilinearly as the
    evaluation protocols resize (``cfnet.evaluation.inference.resize``), then normalised as
    evaluation normalises. The picture shown is the one the model saw (to uint8 rounding)."""
    if image.shape[:2] != tuple(size):
        pixels = torch.tensor(image).permute(2, 0, 1)[None].float()  # (a copy: may be read-only)
        resized = resize(pixels, size)[0].permute(1, 2, 0).round().clamp(0, 255)
        image = resized.to(torch.uint8).numpy()
    tensor = eval_transform(mean=mean, std=std)(image=image)["image"][None]
    return image, tensor


# ---- the matrices -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Strong:
    """An image where the pixels of class a look at class b: its own lift for the pair, and the
    pixel (y, x) of a, in the inspected image, whose attention mass on b is largest."""

    lift: float
    index: int
    name: str
    point: tuple[int, int]


def _ratio(top: Tensor, bottom: Tensor) -> Tensor:
    return torch.where(bottom > 0, top / bottom.clamp_min(1e-30), torch.nan)


@dataclass
class ClassCooccurrence:
    """The sums over a split, and the strongest images of each pair (``add`` one image at a time).

    ``attention[a, b]``: Σ over the query cells of class a of their mass on class b;
    ``area[a, b]``: Σ over the same cells of b's share of the key grid; ``queries[a]``: those
    cells. ``images_with[a]`` / ``images_with_both[a, b]``: images containing a / a and b.
    """

    num_classes: int
    ignore_index: int
    top: int = 6
    images: int = 0
    attention: Tensor = field(init=False)
    area: Tensor = field(init=False)
    queries: Tensor = field(init=False)
    images_with: Tensor = field(init=False)
    images_with_both: Tensor = field(init=False)
    strongest: dict[tuple[int, int], list[Strong]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        c = self.num_classes
        self.attention, self.area, self.images_with_both = (
            torch.zeros(c, c, dtype=torch.float64) for _ in range(3)
        )
        self.queries, self.images_with = (torch.zeros(c, dtype=torch.float64) for _ in range(2))

    def add(
        self, maps: CooccurrenceMaps, mask: Tensor, index: int, name: str, size: tuple[int, int]
    ) -> None:
        """One image: ``maps`` of a batch of one computed on the image at ``size`` (h, w), and
        ``mask`` its 1×H×W ground truth (at any resolution: it is area-pooled onto the grids)."""
        c = self.num_classes
        attention, area, queries = attention_by_query_class(maps, mask, c, self.ignore_index)
        self.attention += attention.double()
        self.area += area.double()
        self.queries += queries.double()
        present = torch.unique(mask[mask != self.ignore_index]).long()
        self.images_with[present] += 1
        self.images_with_both[present[:, None], present[None, :]] += 1
        self.images += 1
        self._rank(maps, mask, (attention, area, queries), index, name, size)

    def _rank(
        self,
        maps: CooccurrenceMaps,
        mask: Tensor,
        sums: tuple[Tensor, Tensor, Tensor],
        index: int,
        name: str,
        size: tuple[int, int],
    ) -> None:
        """Enter this image into the top list of each pair it holds (a with query cells, b with
        at least ``MIN_KEY_CELLS`` key cells of area)."""
        attention, area, queries = sums
        key_cells = maps.key_size[0] * maps.key_size[1]
        held = (queries[:, None] > 0) & (area * key_cells >= MIN_KEY_CELLS * queries[:, None])
        if not held.any():
            return
        lift = _ratio(attention, area)
        frac = class_fractions(mask, maps.key_size, self.num_classes, self.ignore_index)[0]
        cell_mass, _ = mass_on_classes(maps.probability.mean(1)[0], frac)  # N×C
        cell_frac = class_fractions(mask, maps.query_size, self.num_classes, self.ignore_index)[0]
        (h, w), (height, width) = maps.query_size, size
        for a, b in held.nonzero().tolist():
            cells = (cell_frac[:, a] > 0.5).nonzero()[:, 0]
            best = int(cells[cell_mass[cells, b].argmax()])
            # the centre of the query cell, in the image the maps were computed on
            point = (int((best // w + 0.5) * height / h), int((best % w + 0.5) * width / w))
            entry = Strong(float(lift[a, b]), index, name, point)
            ranked = [*self.strongest.get((a, b), []), entry]
            self.strongest[(a, b)] = sorted(ranked, key=lambda s: -s.lift)[: self.top]

    def lift(self) -> Tensor:
        """A×C: attention share / area share; NaN where a has no query cells or b no area."""
        return _ratio(self.attention, self.area)

    def attention_share(self) -> Tensor:
        """A×C: the share of class a's attention mass on class b (rows sum to the labelled
        share, ≤ 1)."""
        return _ratio(self.attention, self.queries[:, None].expand_as(self.attention))

    def area_share(self) -> Tensor:
        """A×C: b's share of the key grid, averaged over a's query cells."""
        return _ratio(self.area, self.queries[:, None].expand_as(self.area))

    def label_cooccurrence(self) -> Tensor:
        """A×C: the fraction of images containing a that also contain b (NaN: no image has a)."""
        return _ratio(self.images_with_both, self.images_with[:, None].expand_as(self.area))

    def strongest_partner(self, a: int) -> int | None:
        """The class b ≠ a with the largest lift in row a (None: the row is empty)."""
        row = self.lift()[a].clone()
        row[a] = torch.nan
        if torch.isnan(row).all():
            return None
        return int(torch.nan_to_num(row, nan=-math.inf).argmax())

    def to_json(self, class_names: list[str]) -> dict[str, Any]:
        """The matrices (rows: query class a, columns: key class b; null where undefined), the
        counts and the strongest images per pair."""
        return {
            "class_names": list(class_names),
            "images": self.images,
            "query_cells": [int(q) for q in self.queries],
            "images_with": [int(n) for n in self.images_with],
            "lift": _rows(self.lift()),
            "attention_share": _rows(self.attention_share()),
            "area_share": _rows(self.area_share()),
            "label_cooccurrence": _rows(self.label_cooccurrence()),
            "strongest_partner": [self.strongest_partner(a) for a in range(self.num_classes)],
            "strongest_images": [
                {
                    "a": a,
                    "b": b,
                    "images": [
                        {
                            "index": s.index,
                            "name": s.name,
                            "lift": round(s.lift, 4),
                            "point": s.point,
                        }
                        for s in ranked
                    ],
                }
                for (a, b), ranked in sorted(self.strongest.items())
            ],
        }


def _rows(matrix: Tensor) -> list[list[float | None]]:
    """A matrix as JSON rows, NaN as null, 6 significant digits."""
    return [[None if math.isnan(v) else float(f"{v:.6g}") for v in row] for row in matrix.tolist()]


Sample = tuple[int, str, np.ndarray, np.ndarray]  # (index, name, RGB uint8 image, mask of ids)


@torch.no_grad()
def measure_cooccurrence(
    cooccurrence: Callable[[Tensor], CooccurrenceMaps],
    samples: Iterable[Sample],
    *,
    num_classes: int,
    ignore_index: int,
    size_of: Callable[[int, int], tuple[int, int]],
    mean: list[float],
    std: list[float],
    progress: Callable[[int], None] | None = None,
) -> ClassCooccurrence:
    """The matrices over ``samples``, one forward pass each at the size ``size_of(h, w)`` gives
    (``inspection_size``): ``cooccurrence`` is the model's (``Segmentor.cooccurrence``), or a
    function that calls it in turn with others (the explorer's). ``progress(done)`` after each
    image."""
    result = ClassCooccurrence(num_classes, ignore_index)
    for done, (index, name, image, mask) in enumerate(samples, 1):
        _, tensor = prepare_image(image, size_of(*image.shape[:2]), mean, std)
        maps = cooccurrence(tensor)
        mask_tensor = torch.from_numpy(np.asarray(mask)).long()[None]
        result.add(maps, mask_tensor, index, name, tuple(tensor.shape[-2:]))
        if progress is not None:
            progress(done)
    return result
