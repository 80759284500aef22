"""Where pixels attend: the ACF module's attention mass per ground-truth class of the key cells.

The paper's claim is that a pixel gathers its context from the objects that *co-occur* with it.
On the synthetic dataset this is measurable: a pixel of an ambiguous object (sea / canal, mast /
lamppost) can only be labelled from a distant cue object (boat or car), so a model that resolves
those classes through ACF should put more of its attention mass p(c|t) on cue pixels than their
share of the image. For query cells t of the chosen classes this module sums

    attention[c] = Σ_t Σ_m p(m|t) · frac_c(m)       (mass on key cells m, by class c)
    area[c]      = Σ_t (1/M) Σ_m frac_c(m)          (what uniform attention would give)

where frac_c(m) is the fraction of key cell m covered by class c (area-pooled ground truth on the
ACF key grid). ``attention / area`` per class is the *lift*: 1 means "no preference".

On the *paired* synthetic scenes both cues are in every image and each ambiguous object belongs to
one of them (``cfnet.data.synthetic``), so the measure splits by pairing (``measure_pairing``): the
mass of an ambiguous query on its *own* cue against the *other* cue. Both cues are in the image
and the pairing is random per scene, so attention that ignores the pairing gives a ratio of about
one, whatever it thinks of cues in general.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cfnet.data.synthetic import BOAT, CANAL, CAR, LAMPPOST, MAST, SEA
from cfnet.models.acf import CooccurrenceMaps
from cfnet.models.segmentor import Segmentor


def class_fractions(
    mask: Tensor, size: tuple[int, int], num_classes: int, ignore_index: int
) -> Tensor:
    """B×H×W class ids → B×(h·w)×C: how much of each cell of an h×w grid each class covers.

    Ignored pixels count for no class, so a cell's fractions may sum to less than one.
    """
    valid = mask != ignore_index
    onehot = F.one_hot(torch.where(valid, mask, 0).long(), num_classes) * valid[..., None]
    pooled = F.interpolate(onehot.permute(0, 3, 1, 2).float(), size=size, mode="area")
    return pooled.flatten(2).transpose(1, 2)  # B×M×C


def query_cells(mask: Tensor, classes: Sequence[int], size: tuple[int, int]) -> Tensor:
    """B×H×W class ids → B×(h·w) bool: the query cells mostly (> 50 %) covered by ``classes``."""
    inside = torch.isin(mask, torch.as_tensor(list(classes), device=mask.device)).float()
    return F.interpolate(inside[:, None], size=size, mode="area").flatten(1) > 0.5


@dataclass
class AttentionByClass:
    """Attention mass and area per key class, summed over ``queries`` query cells.

    ``attention`` is H×(K+1)×C: per head, per mixture component k (softmax_c of component k
    alone), and last the mixture p(c|t) = Σ_k π_k · component_k that the model actually uses.
    """

    attention: Tensor  # H×(K+1)×C
    area: Tensor  # C
    queries: int

    def __add__(self, other: AttentionByClass) -> AttentionByClass:
        return AttentionByClass(
            self.attention + other.attention, self.area + other.area, self.queries + other.queries
        )

    def mass(self, classes: Sequence[int]) -> Tensor:
        """Share of the attention mass on ``classes``: H×(K+1), the mixture in [..., -1]."""
        return self.attention[..., list(classes)].sum(-1) / max(self.queries, 1)

    def share(self, classes: Sequence[int]) -> float:
        """Share of the key grid covered by ``classes`` (the mass uniform attention would give)."""
        return float(self.area[list(classes)].sum()) / max(self.queries, 1)

    def summary(self, classes: Sequence[int]) -> dict[str, float]:
        """Mixture attention mass on ``classes`` (mean over heads), their area share, the lift."""
        mass = float(self.mass(classes)[:, -1].mean())
        share = self.share(classes)
        return {
            "queries": float(self.queries),
            "attention_mass": mass,
            "area_share": share,
            "lift": mass / share if share > 0 else float("nan"),
        }


def attention_by_class(
    maps: CooccurrenceMaps,
    mask: Tensor,
    query_classes: Sequence[int],
    num_classes: int,
    ignore_index: int,
) -> AttentionByClass:
    """Sum the attention of the query cells of ``query_classes`` by the class of the key cells."""
    frac = class_fractions(mask, maps.key_size, num_classes, ignore_index)  # B×M×C
    queries = query_cells(mask, query_classes, maps.query_size).float()  # B×N
    # components B×H×K×N×M and p(c|t) B×H×N×M, stacked: B×H×(K+1)×N×M
    p = torch.cat([maps.components, maps.probability[:, :, None]], dim=2)
    by_class = torch.einsum("bhknm,bmc,bn->hkc", p, frac, queries)
    area = torch.einsum("bmc,bn->c", frac, queries) / frac.shape[1]
    return AttentionByClass(by_class, area, int(queries.sum()))


def attention_by_query_class(
    maps: CooccurrenceMaps, mask: Tensor, num_classes: int, ignore_index: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``attention_by_class`` for every query class at once, on the mixture p(c|t) averaged over
    the heads (what ``AttentionByClass.summary`` reports): (attention A×C, area A×C, queries A),
    row a summed over the query cells of class a. ``attention[a] / area[a]`` is row a's lift; one
    pass over the maps instead of one per class (150 for ADE20K)."""
    frac = class_fractions(mask, maps.key_size, num_classes, ignore_index)  # B×M×C
    # a query cell belongs to the class covering more than half of it (``query_cells``)
    queries = (class_fractions(mask, maps.query_size, num_classes, ignore_index) > 0.5).float()
    mass = torch.einsum("bnm,bmc->bnc", maps.probability.mean(1), frac)  # B×N×C
    attention = torch.einsum("bna,bnc->ac", queries, mass)
    area = torch.einsum("bna,bmc->ac", queries, frac) / frac.shape[1]
    return attention, area, queries.sum((0, 1))


def mass_on_classes(rows: Tensor, fractions: Tensor) -> tuple[Tensor, Tensor]:
    """One query cell's attention rows ...×M and the key cells' class fractions M×C
    (``class_fractions``) → (its mass on each class ...×C, each class's share of the key grid C):
    ``attention_by_class`` for a single query, as the explorer shows it for a click."""
    return rows @ fractions, fractions.mean(0)


@dataclass(frozen=True)
class Pairing:
    """Query classes whose paired object is ``own`` and whose distractor is ``other`` (on the
    synthetic paired scenes: sea and mast are paired with the boat, against the car)."""

    queries: tuple[int, ...]
    own: int
    other: int


# the synthetic paired scenes' design (cfnet.data.synthetic.PAIRED_LABEL)
SYNTHETIC_PAIRINGS = (Pairing((SEA, MAST), BOAT, CAR), Pairing((CANAL, LAMPPOST), CAR, BOAT))


@dataclass
class PairedAttention:
    """Mixture attention mass p(c|t) (mean over heads) of the paired query cells on their own and
    on the other object, each summed over the query cells."""

    own: float
    other: float
    queries: int

    def summary(self) -> dict[str, float]:
        """Mean mass per query cell on the own / other object, and own / other."""
        n = max(self.queries, 1)
        ratio = self.own / self.other if self.other > 0 else float("nan")
        return {"queries": float(self.queries), "own": self.own / n, "other": self.other / n,
                "ratio": ratio}  # fmt: skip


@torch.no_grad()
def measure_pairing(
    net: Segmentor,
    batches: Iterable[tuple[Tensor, Tensor]],
    pairings: Sequence[Pairing],
    num_classes: int,
    ignore_index: int,
) -> PairedAttention:
    """Sum, over (images B×3×H×W, masks B×H×W) batches and over ``pairings``, the attention mass
    of each pairing's query cells on its ``own`` and on its ``other`` class."""
    own = other = 0.0
    queries = 0
    for images, masks in batches:
        maps = net.cooccurrence(images)
        for pairing in pairings:
            part = attention_by_class(maps, masks, pairing.queries, num_classes, ignore_index)
            mixture = part.attention[:, -1].mean(0)  # C: p(c|t), mean over heads
            own += float(mixture[pairing.own])
            other += float(mixture[pairing.other])
            queries += part.queries
    if not queries:
        raise ValueError("no query cells of the paired classes in these batches")
    return PairedAttention(own, other, queries)


@torch.no_grad()
def measure(
    net: Segmentor,
    batches: Iterable[tuple[Tensor, Tensor]],
    query_classes: Sequence[int],
    num_classes: int,
    ignore_index: int,
) -> AttentionByClass:
    """Accumulate ``attention_by_class`` over (images B×3×H×W, masks B×H×W) batches."""
    total: AttentionByClass | None = None
    for images, masks in batches:
        maps = net.cooccurrence(images)
        part = attention_by_class(maps, masks, query_classes, num_classes, ignore_index)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no batches to measure attention on")
    return total
