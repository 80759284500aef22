"""The training loss against hand-computed values (float64 arithmetic with ``math``, not torch).

L = CE(main) + aux_weight · CE(aux) + se_weight · BCE(se, presence), CE over labelled pixels only.
"""

from __future__ import annotations

import math

import pytest
import torch

from cfnet.lit.losses import class_presence, segmentation_loss
from cfnet.models.segmentor import SegmentorOutput

IGNORE = 255


def _ce(logits: list[float], label: int) -> float:
    """−log softmax(logits)[label], by hand."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_class_presence_ignores_ignored_pixels():
    masks = torch.tensor([[[0, 2], [IGNORE, 2]], [[IGNORE, IGNORE], [1, 1]]])
    assert class_presence(masks, 3, IGNORE).tolist() == [[1, 0, 1], [0, 1, 0]]


def test_loss_terms_and_total_match_hand_computed_values():
    # one image of 1×3 pixels, 2 classes; the third pixel is ignored
    main = [[2.0, -1.0], [0.5, 0.25], [9.0, -9.0]]  # per pixel: logits of class 0, 1
    aux = [[0.0, 1.0], [1.0, 0.0], [3.0, 3.0]]
    labels = [0, 1, IGNORE]
    se = [0.3, -0.7]

    def image(values):  # pixels → 1×2×1×3 logits
        return torch.tensor(values, dtype=torch.float64).T.reshape(1, 2, 1, 3)

    out = SegmentorOutput(image(main), image(aux), torch.tensor([se], dtype=torch.float64))
    masks = torch.tensor([[labels]])
    terms = segmentation_loss(out, masks, aux_weight=0.2, se_weight=0.2, ignore_index=IGNORE)

    main_ce = (_ce(main[0], 0) + _ce(main[1], 1)) / 2  # mean over the two labelled pixels
    aux_ce = (_ce(aux[0], 0) + _ce(aux[1], 1)) / 2
    se_bce = (_bce(se[0], 1.0) + _bce(se[1], 1.0)) / 2  # both classes present
    assert terms["main"].item() == pytest.approx(main_ce, abs=1e-12)
    assert terms["aux"].item() == pytest.approx(aux_ce, abs=1e-12)
    # (the presence target is float32, so the SE term is computed in float32)
    assert terms["se"].item() == pytest.approx(se_bce, abs=1e-6)
    total = main_ce + 0.2 * aux_ce + 0.2 * se_bce
    assert terms["total"].item() == pytest.approx(total, abs=1e-6)


def test_absent_heads_add_nothing():
    logits = torch.tensor([[[[1.0, -2.0]], [[0.0, 0.5]]]], dtype=torch.float64)  # 1×2×1×2
    terms = segmentation_loss(
        SegmentorOutput(logits, None, None),
        torch.tensor([[[1, 0]]]),
        aux_weight=0.2,
        se_weight=0.2,
        ignore_index=IGNORE,
    )
    assert set(terms) == {"main", "total"}
    expected = (_ce([1.0, 0.0], 1) + _ce([-2.0, 0.5], 0)) / 2
    assert terms["total"].item() == pytest.approx(expected, abs=1e-12)


def test_class_weights_weigh_each_pixel_by_its_class():
    """loss.class_weight: Σ w_y · CE / Σ w_y over the labelled pixels (PyTorch's weighted mean),
    for the main and the auxiliary head alike."""
    main = [[2.0, -1.0], [0.5, 0.25], [9.0, -9.0], [0.0, 3.0]]
    labels = [0, 1, IGNORE, 1]
    weights = [0.25, 3.0]
    logits = torch.tensor(main, dtype=torch.float64).T.reshape(1, 2, 1, 4)
    terms = segmentation_loss(
        SegmentorOutput(logits, logits, None),
        torch.tensor([[labels]]),
        aux_weight=0.5,
        se_weight=0.2,
        ignore_index=IGNORE,
        class_weight=torch.tensor(weights, dtype=torch.float64),
    )
    kept = [(p, y) for p, y in zip(main, labels, strict=True) if y != IGNORE]
    expected = sum(weights[y] * _ce(p, y) for p, y in kept) / sum(weights[y] for _, y in kept)
    assert terms["main"].item() == pytest.approx(expected, abs=1e-12)
    assert terms["total"].item() == pytest.approx(1.5 * expected, abs=1e-12)


def test_auto_class_weights_are_inverse_frequency():
    """N / (C · n_c), hand-computed: 100 labelled pixels, 3 classes, one of them absent."""
    import numpy as np

    from cfnet.data.label_counts import LabelCounts

    counts = LabelCounts(np.array([80, 20, 0]), np.array([4, 2, 0]))
    assert counts.inverse_frequency() == [100 / (3 * 80), 100 / (3 * 20), 0.0]
