"""What the explorer holds for one image: a forward pass, then every click answered from it.

``Inspected.open`` runs the model once on the image (at the size ``inspection_size`` gives): the
prediction (class and probability per pixel) and, for a model with an ACF module, its
co-occurrence maps: p(c|t) of every head for every query cell, per mixture component and
combined, and the mixture weights π. ``Inspected.query`` then answers a click without touching the
network: it slices the held maps at the query cell and measures which predicted classes the
attention mass falls on (``cfnet.analysis.attention.mass_on_classes``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cfnet.analysis.attention import class_fractions, mass_on_classes
from cfnet.analysis.cooccurrence import prepare_image
from cfnet.analysis.viz import query_index
from cfnet.models.acf import CooccurrenceMaps
from cfnet.models.heads import upsample_to
from cfnet.models.segmentor import Segmentor


@dataclass(frozen=True)
class ModelCard:
    """What the explorer needs to know of the checkpoint's model besides its network."""

    class_names: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    ignore_index: int
    no_map: str | None  # why the model has no co-occurrence map (FCN, use_acf=false); None: it has

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def encode_floats(values: Tensor) -> str:
    """float32 values, little-endian, base64: exact, and a third of their decimal JSON."""
    array = values.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return base64.b64encode(array.tobytes()).decode("ascii")


@dataclass(frozen=True)
class Inspected:
    """One image after its forward pass (``open``); ``query`` answers clicks from it."""

    key: str  # how the page names it: "val-12", "upload-<sha1>"
    name: str
    image: np.ndarray  # RGB uint8 h×w×3, as the model saw it
    original_size: tuple[int, int]
    prediction: np.ndarray  # uint8 h×w class ids
    confidence: np.ndarray  # float32 h×w, the predicted class's probability
    maps: CooccurrenceMaps | None  # batch of one; None: the model has none
    fractions: Tensor | None  # M×C: the predicted classes' share of each key cell

    @classmethod
    @torch.no_grad()
    def open(
        cls,
        net: Segmentor,
        card: ModelCard,
        key: str,
        name: str,
        image: np.ndarray,
        size: tuple[int, int],
    ) -> Inspected:
        """Run ``net`` once on ``image`` resized to ``size``: backbone, head, and the ACF
        module's maps from the same Res-5 features (``Segmentor.forward`` and
        ``Segmentor.cooccurrence`` each run the backbone; here it runs once)."""
        original = (int(image.shape[0]), int(image.shape[1]))
        shown, tensor = prepare_image(image, size, card.mean, card.std)
        _, res5 = net.backbone(tensor)
        probs = upsample_to(net.head(res5).logits, tuple(tensor.shape[-2:])).softmax(1)[0]
        confidence, prediction = probs.max(0)
        maps, fractions = None, None
        if card.no_map is None:
            maps = net.head.cooccurrence(res5)
            fractions = class_fractions(
                prediction[None], maps.key_size, card.num_classes, card.ignore_index
            )[0]
        return cls(
            key, name, shown, original, prediction.to(torch.uint8).numpy(),
            confidence.numpy(), maps, fractions,
        )  # fmt: skip

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def summary(self, card: ModelCard) -> dict[str, Any]:
        """What the page shows on opening the image (the pictures come separately)."""
        height, width = self.size
        resized = self.size != self.original_size
        answer: dict[str, Any] = {
            "key": self.key,
            "name": self.name,
            "size": [height, width],
            "original_size": list(self.original_size),
            "note": (
                f"resized from {self.original_size[1]}×{self.original_size[0]} to "
                f"{width}×{height} (long side max_size, as the slide protocol resizes)"
                if resized
                else None
            ),
            "classes_present": sorted(int(c) for c in np.unique(self.prediction)),
            "message": card.no_map,
        }
        if self.maps is not None:
            answer |= {
                "query_grid": list(self.maps.query_size),
                "key_grid": list(self.maps.key_size),
                "prior": self.maps.prior[0].tolist(),
            }
        return answer

    def query(self, y: int, x: int, card: ModelCard) -> dict[str, Any]:
        """The answer to a click on pixel (y, x): its predicted class and probability, and with
        maps, p(c|t) of its query cell t over the key grid for every head (the K components,
        then their mixture: ``maps``, H×(K+1)×M float32 as base64), π, and the attention mass
        on each predicted class with each class's share of the key grid."""
        height, width = self.size
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"pixel y={y}, x={x} lies outside the {width}×{height} image")
        label = int(self.prediction[y, x])
        answer: dict[str, Any] = {
            "pixel": [y, x],
            "class": label,
            "class_name": card.class_names[label],
            "probability": float(self.confidence[y, x]),
        }
        if self.maps is None or self.fractions is None:
            return answer | {"message": card.no_map}
        maps = self.maps
        t = query_index((y, x), (height, width), maps.query_size)
        rows = torch.cat([maps.components[0, :, :, t], maps.probability[0, :, None, t]], dim=1)
        mass, share = mass_on_classes(rows, self.fractions)
        return answer | {
            "cell": [t // maps.query_size[1], t % maps.query_size[1]],
            "query_grid": list(maps.query_size),
            "key_grid": list(maps.key_size),
            "maps_shape": list(rows.shape),
            "maps": encode_floats(rows),
            "prior": maps.prior[0].tolist(),
            "mass": mass.tolist(),
            "share": share.tolist(),
        }
