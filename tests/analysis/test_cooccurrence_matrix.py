"""The class co-occurrence matrices: the learned lift equals ``attention_by_class`` (the measure the
attention notebook and the claim test use) row by row, the labels' co-occurrence equals a count
done with Python sets, hand-made attention gives the lift it must, and images are inspected at the
size the slide protocol gives them, smaller when their maps would not fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cfnet.analysis.attention import attention_by_class, attention_by_query_class
from cfnet.analysis.cooccurrence import ClassCooccurrence, inspection_size, map_megabytes
from cfnet.models.acf import CooccurrenceMaps


def random_maps(seed: int, heads: int = 2, k: int = 2) -> CooccurrenceMaps:
    """Maps of a 6×8 query grid over a 3×4 key grid: random components and priors."""
    g = torch.Generator().manual_seed(seed)
    components = torch.rand(1, heads, k, 48, 12, generator=g).softmax(-1)
    prior = torch.rand(1, heads, k, generator=g).softmax(-1)
    probability = torch.einsum("bhk,bhknm->bhnm", prior, components)
    return CooccurrenceMaps(components, prior, probability, (3, 4), (6, 8))


def random_mask(seed: int, classes: int = 5) -> torch.Tensor:
    """A 24×32 mask of blocks of random classes, some pixels ignored (255)."""
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, classes, (6, 8)), np.ones((4, 4), np.int64))
    mask[rng.random(mask.shape) < 0.05] = 255
    return torch.from_numpy(mask)[None]


def test_each_row_is_attention_by_class_of_that_query_class():
    result = ClassCooccurrence(num_classes=5, ignore_index=255)
    totals = {a: None for a in range(5)}
    for seed in range(3):
        maps, mask = random_maps(seed), random_mask(seed)
        result.add(maps, mask, seed, f"image{seed}", (24, 32))
        for a in range(5):
            part = attention_by_class(maps, mask, [a], 5, 255)
            totals[a] = part if totals[a] is None else totals[a] + part
    lift = result.lift()
    for a, total in totals.items():
        for b in range(5):
            expected = total.summary([b])["lift"]
            assert lift[a, b].item() == pytest.approx(expected, rel=1e-5, nan_ok=True)
        assert result.queries[a] == total.queries


def test_the_matrix_is_one_pass_of_attention_by_query_class():
    maps, mask = random_maps(7), random_mask(7)
    attention, area, queries = attention_by_query_class(maps, mask, 5, 255)
    for a in range(5):
        reference = attention_by_class(maps, mask, [a], 5, 255)
        torch.testing.assert_close(attention[a], reference.attention[:, -1].mean(0))
        torch.testing.assert_close(area[a], reference.area)
        assert queries[a] == reference.queries


def test_the_label_cooccurrence_is_the_share_of_images_with_a_that_hold_b():
    masks = [random_mask(seed, classes=4) for seed in range(6)]
    masks[2][masks[2] == 3] = 0  # one image without class 3
    result = ClassCooccurrence(num_classes=5, ignore_index=255)  # class 4 never appears
    for i, mask in enumerate(masks):
        result.add(random_maps(i), mask, i, str(i), (24, 32))
    present = [set(np.unique(m.numpy())) - {255} for m in masks]
    labels = result.label_cooccurrence()
    for a in range(5):
        holding = [p for p in present if a in p]
        for b in range(5):
            expected = sum(b in p for p in holding) / len(holding) if holding else math.nan
            assert labels[a, b].item() == pytest.approx(expected, nan_ok=True)
    assert torch.isnan(result.lift()[4]).all()  # no query cell of class 4: an empty row


def test_attention_focused_on_a_class_has_the_lift_of_its_inverse_share():
    mask = torch.zeros(1, 24, 32, dtype=torch.long)
    mask[0, :12, :16] = 1  # the top-left quarter: class 1
    focused = torch.zeros(1, 1, 1, 48, 12)
    focused[..., 0] = 1.0  # every query looks only at key cell 0 (inside class 1)
    maps = CooccurrenceMaps(focused, torch.ones(1, 1, 1), focused[:, :, 0], (3, 4), (6, 8))
    result = ClassCooccurrence(num_classes=2, ignore_index=255)
    result.add(maps, mask, 0, "x", (24, 32))
    # background's queries put all their mass on class 1, which covers a quarter of the keys
    assert result.lift()[0, 1].item() == pytest.approx(4.0, rel=1e-5)
    assert result.attention_share()[0, 1].item() == pytest.approx(1.0)
    assert result.strongest_partner(0) == 1
    (strong,) = result.strongest[(0, 1)]
    y, x = strong.point  # the centre of a background query cell (4×4 pixels a cell)
    assert mask[0, y, x] == 0 and y % 4 == x % 4 == 2


def test_images_are_inspected_at_the_slide_size_and_smaller_when_their_maps_would_not_fit():
    sizes = dict(heads=4, k=2, output_stride=8)
    assert inspection_size(300, 400, 520, **sizes, max_map_mb=1024) == (300, 400)
    assert inspection_size(1000, 2000, 520, **sizes, max_map_mb=1024) == (260, 520)
    # Cityscapes at its base size 2048: 256×128 queries × 128×64 keys × 12 maps = 6 GiB
    assert map_megabytes((1024, 2048), **sizes) == pytest.approx(4 * 12 * 32768 * 8192 / 2**20)
    h, w = inspection_size(1024, 2048, 2048, **sizes, max_map_mb=1024)
    assert w / h == pytest.approx(2, rel=0.02)
    assert (
        map_megabytes((h, w), **sizes) <= 1024 < map_megabytes((h * 10 // 9, w * 10 // 9), **sizes)
    )
    assert inspection_size(1024, 2048, 2048, heads=0, k=0, output_stride=8, max_map_mb=1) == (
        1024,
        2048,
    )  # no maps (FCN): the slide size alone
