"""Paired scenes: where global context cannot decide, and the co-occurrence of features can.

The claim these tests hold, from the generator alone (no model): in a paired scene, the swapped
scene (the boat's and the car's marker colours exchanged) flips every ambiguous label, yet has the
same colour histogram and the same label histogram. Whatever is pooled over the image from single
pixels is therefore the same under both labellings, and twins (two objects of one kind, one per
marker colour) always carry opposite labels, so a per-image decision gets exactly one of each twin
pair right: chance. Only *which cue* a colour sits on decides, a relation between two places.
"""

from __future__ import annotations

import numpy as np
import pytest

from cfnet.data.synthetic import (
    BOAT,
    CANAL,
    CAR,
    LAMPPOST,
    MARKER_COLOURS,
    MAST,
    SEA,
    render,
    render_paired_scene,
    render_scene,
)

SIZE = 96
PARTNER = {SEA: CANAL, CANAL: SEA, MAST: LAMPPOST, LAMPPOST: MAST}
SCENES = [
    (
        render_paired_scene(0, "train", i, SIZE, 0.3, 3),
        render_paired_scene(0, "train", i, SIZE, 0.3, 3, swap=True),
    )
    for i in range(60)
]


def _histogram(image: np.ndarray) -> dict[tuple[int, ...], int]:
    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts, strict=True)}


@pytest.mark.parametrize("index", range(0, 60, 7))
def test_the_swap_keeps_every_pixel_statistic_and_flips_every_ambiguous_label(index):
    (image, mask, _), (swapped, swapped_mask, _) = SCENES[index]
    # the two labellings: every ambiguous pixel takes its partner label, nothing else changes
    for label, partner in PARTNER.items():
        assert np.array_equal(mask == label, swapped_mask == partner)
    assert np.array_equal(np.isin(mask, [0, BOAT, CAR]), np.isin(swapped_mask, [0, BOAT, CAR]))
    # ... yet the image-level statistics are identical: the colour histogram (exact pixel values)
    # and the label histogram (twins have the same shape, so sea and canal swap equal areas)
    assert _histogram(image) == _histogram(swapped)
    assert np.array_equal(np.bincount(mask.ravel(), minlength=7),
                          np.bincount(swapped_mask.ravel(), minlength=7))  # fmt: skip
    # the images differ on the cue markers only
    changed = (image != swapped).any(-1)
    assert changed.any() and np.isin(mask[changed], [BOAT, CAR]).all()


def test_twins_carry_opposite_labels_so_a_per_image_guess_is_chance():
    """Every ambiguous kind present comes as a twin pair with both labels of that kind: a label
    chosen per image (any function of pooled features) is right on exactly one twin of each pair."""
    for (_, mask, scene), _ in SCENES:
        twins = [o for o in scene.objects if o.kind in ("water", "pole")]
        assert len(twins) % 2 == 0 and twins
        for first, second in zip(twins[::2], twins[1::2], strict=True):
            assert first.kind == second.kind and first.box.radius == second.box.radius
            assert {first.colour, second.colour} == {0, 1}
            assert PARTNER[first.label] == second.label
            assert (mask == first.label).sum() == (mask == second.label).sum()


def test_each_ambiguous_label_follows_the_cue_of_its_marker_colour():
    """Read back from the pixels: the marker colour inside each ambiguous object equals the
    colour of the boat's marker for sea / mast, of the car's for canal / lamppost."""
    for (image, mask, scene), _ in SCENES:
        cue_colour = {}
        for obj in scene.objects[:2]:  # boat, car
            cue_colour[obj.label] = _marker_colour(image, mask, obj.label)
        assert cue_colour[BOAT] != cue_colour[CAR]
        for obj in scene.objects[2:]:
            inside = _marker_colour(image, mask, obj.label, obj.box)
            expected = BOAT if obj.label in (SEA, MAST) else CAR
            assert inside == cue_colour[expected]


def _marker_colour(image, mask, label, box=None) -> tuple[int, int, int]:
    """The most frequent colour of the object's pixels that is within 40 of a marker colour."""
    region = mask == label
    if box is not None:
        yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
        region &= np.hypot(yy - box.cy, xx - box.cx) <= box.radius + 1
    pixels = image[region].astype(int)
    markers = np.asarray(MARKER_COLOURS)
    near = np.abs(pixels[:, None, :] - markers[None]).max(-1) <= 40
    assert near.any(), "no marker colour inside the object"
    counts = near.sum(0)
    return MARKER_COLOURS[int(counts.argmax())]


def test_ambiguous_objects_keep_their_distance_from_both_cues():
    gap = 0.3 * SIZE * np.sqrt(2)
    for (_, mask, _), _ in SCENES[:30]:
        cue = np.argwhere(np.isin(mask, [BOAT, CAR]))
        amb = np.argwhere(np.isin(mask, [SEA, CANAL, MAST, LAMPPOST]))
        dist = np.sqrt(((cue[:, None, :] - amb[None, :, :]) ** 2).sum(-1)).min()
        assert dist >= gap * 0.99


def test_mixed_alternates_the_two_families_and_paired_scenes_hold_both_cues():
    for index in range(6):
        image, mask = render("mixed", 0, "val", index, SIZE, 0.3, 3)
        family = render_paired_scene if index % 2 else render_scene
        expected, expected_mask, _ = family(0, "val", index, SIZE, 0.3, 3)
        assert np.array_equal(image, expected) and np.array_equal(mask, expected_mask)
        present = set(np.unique(mask).tolist())
        assert ({BOAT, CAR} <= present) == bool(index % 2)
    with pytest.raises(ValueError, match=r"scenes='both': allowed: single, paired, mixed"):
        render("both", 0, "val", 0, SIZE, 0.3, 3)


def test_an_unknown_scene_family_on_the_command_line_is_one_line_and_leaves_no_run_dir(tmp_path):
    from support.cli import run_cli

    run_dir = tmp_path / "run"
    result = run_cli("cfnet.train", "dataset.scenes=both", f"hydra.run.dir={run_dir}", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: dataset.scenes='both': allowed: single, paired, mixed"
    ]
    assert not run_dir.exists()
