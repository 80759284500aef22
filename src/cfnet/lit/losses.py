"""Training loss of the authors' code: pixel CE + aux-head CE + EncNet's Semantic Encoding loss.

    L = CE(logits, y) + aux_weight · CE(aux_logits, y) + se_weight · BCE(se_logits, presence(y))

CE ignores ``ignore_index`` pixels and weighs each class by ``class_weight`` where given
(``loss.class_weight``: PyTorch's weighted mean over the labelled pixels); presence(y)[b, c] = 1
iff class c labels any pixel of image b (the SE loss teaches the Context Encoding module which
classes a scene contains).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cfnet.models.segmentor import SegmentorOutput


def class_presence(masks: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """B×H×W training ids → B×num_classes {0, 1} float: which classes each image contains."""
    valid = masks != ignore_index
    ids = masks.masked_fill(~valid, 0).flatten(1)
    presence = torch.zeros(masks.shape[0], num_classes, device=masks.device)
    return presence.scatter_reduce_(1, ids, valid.flatten(1).float(), reduce="amax")


def segmentation_loss(
    out: SegmentorOutput,
    masks: Tensor,
    *,
    aux_weight: float,
    se_weight: float,
    ignore_index: int,
    class_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """The total loss and its terms (for logging); absent heads contribute nothing."""
    ce = {"ignore_index": ignore_index, "weight": class_weight}
    terms = {"main": F.cross_entropy(out.logits, masks, **ce)}
    if out.aux_logits is not None:
        terms["aux"] = F.cross_entropy(out.aux_logits, masks, **ce)
    if out.se_logits is not None:
        target = class_presence(masks, out.se_logits.shape[1], ignore_index)
        terms["se"] = F.binary_cross_entropy_with_logits(out.se_logits, target)
    weights = {"main": 1.0, "aux": aux_weight, "se": se_weight}
    terms["total"] = sum(weights[name] * value for name, value in terms.items())
    return terms
