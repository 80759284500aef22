"""Data: the synthetic dataset's principle, the paper's augmentation, the loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from cfnet.data.collate import pad_collate
from cfnet.data.dataset import SegmentationDataset
from cfnet.data.io import SampleError
from cfnet.data.sample import Batch, Sample, SkippedSample
from cfnet.data.synthetic import (
    BOAT,
    CANAL,
    CAR,
    HARBOUR,
    LAMPPOST,
    MAST,
    SEA,
    render_scene,
)
from cfnet.data.transforms import eval_transform, train_transform
from support.configs import CONF_DIR

SIZE = 160
SAMPLES = [render_scene(0, "train", i, SIZE, 0.3, 3) for i in range(120)]


def test_generation_is_deterministic_and_split_specific():
    a_img, a_mask, _ = render_scene(0, "train", 7, SIZE, 0.3, 3)
    b_img, b_mask, _ = render_scene(0, "train", 7, SIZE, 0.3, 3)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _, _ = render_scene(0, "val", 7, SIZE, 0.3, 3)
    d_img, _, _ = render_scene(1, "train", 7, SIZE, 0.3, 3)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)
    assert (
        a_img.dtype == np.uint8 and a_img.shape == (SIZE, SIZE, 3) and a_mask.shape == (SIZE, SIZE)
    )


def test_labels_of_ambiguous_objects_follow_the_scene_cue():
    scenes = set()
    for _, mask, scene in SAMPLES:
        present = set(np.unique(mask).tolist())
        scenes.add(scene)
        if scene == HARBOUR:
            assert BOAT in present and CAR not in present
            assert not present & {CANAL, LAMPPOST}
        else:
            assert CAR in present and BOAT not in present
            assert not present & {SEA, MAST}
        assert present & {SEA, CANAL, MAST, LAMPPOST}  # every image has an ambiguous object
    assert scenes == {0, 1}


def test_cues_are_far_from_ambiguous_objects():
    """Pixel gap between any cue pixel and any ambiguous pixel ≥ the configured fraction."""
    gap = 0.3 * SIZE * np.sqrt(2)
    for _, mask, _ in SAMPLES[:40]:
        cue = np.argwhere(np.isin(mask, [BOAT, CAR]))
        amb = np.argwhere(np.isin(mask, [SEA, CANAL, MAST, LAMPPOST]))
        dist = np.sqrt(((cue[:, None, :] - amb[None, :, :]) ** 2).sum(-1)).min()
        assert dist >= gap * 0.99


def _mean_colour(label_ids, scene_type):
    pixels = [img[np.isin(mask, label_ids)] for img, mask, s in SAMPLES if s == scene_type]
    return np.concatenate(pixels).mean(0)


def test_ambiguous_appearance_and_background_do_not_depend_on_the_scene():
    """Same appearance distribution in both scene types: the class is not visible locally."""
    water = _mean_colour([SEA], 0), _mean_colour([CANAL], 1)
    poles = _mean_colour([MAST], 0), _mean_colour([LAMPPOST], 1)
    background = _mean_colour([0], 0), _mean_colour([0], 1)
    for a, b in (water, poles, background):
        assert np.abs(a - b).max() < 8  # intensity units out of 255; scene-wise draws differ ~2-5


def _unnormalised(base: int, crop: int, scale_range: list[float], flip: bool):
    """The paper's augmentation with mean 0 and std 1: pixels stay in [0, 1], easy to read."""
    return train_transform(
        base_size=base, crop_size=crop, scale_range=scale_range, flip=flip,
        mean=[0.0] * 3, std=[1.0] * 3, ignore_index=255,
    )  # fmt: skip


def test_train_transform_scales_pads_with_ignore_and_crops():
    image = np.full((40, 60, 3), 200, np.uint8)
    mask = np.ones((40, 60), np.uint8)
    transform = train_transform(
        base_size=60, crop_size=60, scale_range=[1.0, 1.0], flip=True,
        mean=[0.5] * 3, std=[0.5] * 3, ignore_index=255,
    )  # fmt: skip
    out = transform(image=image, mask=mask)
    assert out["image"].shape == (3, 60, 60) and out["mask"].shape == (60, 60)
    # the 40-high image is padded at the bottom: ignore in the mask, black in the image
    assert (out["mask"] == 255).sum() == 60 * 60 - 40 * 60
    assert out["image"][:, out["mask"] == 255].min() == pytest.approx(-1.0)  # (0 − 0.5) / 0.5


def test_train_transform_random_scale_follows_the_long_side():
    image = np.zeros((50, 100, 3), np.uint8)
    mask = np.zeros((50, 100), np.uint8)
    transform = _unnormalised(base=100, crop=200, scale_range=[0.5, 2.0], flip=False)
    widths = set()
    for _ in range(30):
        m = transform(image=image, mask=mask)["mask"]
        widths.add(int((m[0] != 255).sum()))  # long side after rescale
    assert min(widths) >= 50 and max(widths) <= 200 and len(widths) > 5


def test_flip_moves_image_and_mask_together():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = 255
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 1
    transform = _unnormalised(base=8, crop=8, scale_range=[1.0, 1.0], flip=True)
    seen = set()
    for _ in range(20):
        out = transform(image=image, mask=mask)
        bright = out["image"][0] > 0.5
        assert torch.equal(bright, out["mask"] == 1)
        seen.add(bool(out["mask"][0, 0] == 1))
    assert seen == {True, False}


def test_pad_collate_batches_different_sizes():
    t = eval_transform(mean=[0.5] * 3, std=[0.5] * 3)
    samples = []
    for name, (h, w) in {"a": (5, 7), "b": (9, 4)}.items():
        out = t(image=np.zeros((h, w, 3), np.uint8), mask=np.ones((h, w), np.uint8))
        samples.append({"image": out["image"], "mask": out["mask"].long(), "name": name})
    batch = pad_collate(samples, image_fill=[-1.0] * 3, ignore_index=255)
    assert batch["image"].shape == (2, 3, 9, 7) and batch["mask"].shape == (2, 9, 7)
    assert (batch["mask"][0, 5:] == 255).all() and (batch["mask"][0, :5] == 1).all()
    assert (batch["image"][1, :, :, 4:] == -1.0).all()
    assert batch["name"] == ["a", "b"] and batch["sizes"] == [(5, 7), (9, 4)]


def test_pad_collate_drops_skipped_samples_and_keeps_their_messages():
    t = eval_transform(mean=[0.5] * 3, std=[0.5] * 3)
    out = t(image=np.zeros((4, 6, 3), np.uint8), mask=np.ones((4, 6), np.uint8))
    good = {"image": out["image"], "mask": out["mask"].long(), "name": "a", "skipped": ["x: bad"]}
    batch = pad_collate([good, {"skipped": ["y: bad"]}], image_fill=[0.0] * 3, ignore_index=255)
    assert batch["image"].shape == (1, 3, 4, 6) and batch["skipped"] == ["x: bad", "y: bad"]
    empty = pad_collate([{"skipped": ["z: bad"]}], image_fill=[0.0] * 3, ignore_index=255)
    assert empty["image"].shape[0] == 0 and empty["name"] == [] and empty["skipped"] == ["z: bad"]


class _GoodThenBad(SegmentationDataset):
    """Sample 0 is a white 2×3 image of class 1; sample 1 is a file that cannot be read."""

    def __len__(self) -> int:
        return 2

    def read(self, index):
        if index == 1:
            raise SampleError("b.png: truncated")
        return np.full((2, 3, 3), 255, np.uint8), np.ones((2, 3), np.uint8), "a"


def test_samples_and_batches_are_what_their_types_say():
    """The keys, dtypes and shapes ``data.sample`` documents, from the real dataset base."""
    t = eval_transform(mean=[0.5] * 3, std=[0.5] * 3)
    good, bad = _GoodThenBad(t, on_bad_sample="skip")[0], _GoodThenBad(t, on_bad_sample="skip")[1]
    assert good.keys() == Sample.__required_keys__
    assert good["image"].dtype == torch.float32 and good["image"].shape == (3, 2, 3)
    assert (good["image"] == 1.0).all()  # white, normalised: (1 - 0.5) / 0.5
    assert good["mask"].dtype == torch.long and (good["mask"] == 1).all()
    assert good["name"] == "a" and good["skipped"] == []
    assert bad.keys() == SkippedSample.__required_keys__ and bad["skipped"] == ["b.png: truncated"]
    replaced = _GoodThenBad(t, on_bad_sample="skip", replace_bad=True)[1]  # walks on to sample 0
    assert replaced.keys() == Sample.__required_keys__ and replaced["name"] == "a"
    assert replaced["skipped"] == ["b.png: truncated"]
    batch = pad_collate([good, bad, replaced], image_fill=[-1.0] * 3, ignore_index=255)
    assert batch.keys() == Batch.__required_keys__
    assert batch["image"].shape == (2, 3, 2, 3) and batch["sizes"] == [(2, 3), (2, 3)]
    assert batch["skipped"] == ["b.png: truncated", "b.png: truncated"]


def _datamodule(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["dataset.sizes={train:12,val:3,test:3}", *overrides])
    return instantiate(cfg.dataset)


def test_synthetic_datamodule_loaders():
    dm = _datamodule("dataset.batch_size=4", "dataset.eval_batch_size=2")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 96, 96) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 96, 96) and batch["mask"].dtype == torch.long
    assert len(dm.train_dataloader()) == 3
    assert [b["image"].shape[0] for b in dm.val_dataloader()] == [2, 1]


def test_iterating_a_dataset_ends_after_its_last_sample():
    dm = _datamodule()
    dm.setup("test")
    assert [s["name"] for s in dm.datasets["test"]] == ["test_00000", "test_00001", "test_00002"]


def test_training_order_depends_only_on_seed_and_epoch():
    def order(epoch, seed=0):
        dm = _datamodule("dataset.batch_size=4", f"seed={seed}")
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [n for b in loader for n in b["name"]]

    assert order(1) == order(1)
    assert order(0) != order(1)
    assert order(0) != order(0, seed=1)


@pytest.mark.parametrize(
    "override, match",
    [
        ("dataset.num_classes=8", "class_names has 7 names for num_classes=8"),
        ("dataset.eval_batch_size=0", "eval_batch_size=0: must be a positive integer"),
        ("dataset.num_workers=-1", "num_workers=-1: allowed: auto, 0, 1, 2, ..."),
        ("dataset.eval_scales=[1.0,0.0]", r"eval_scales=\[1.0, 0.0\]: must all be > 0"),
    ],
)
def test_inconsistent_dataset_config_is_named(override, match):
    with pytest.raises(Exception, match=match):
        _datamodule(override)


@pytest.mark.parametrize(
    "scale_range, crop_size, match",
    [
        ([2.0, 1.0], 8, r"scale_range=\[2.0, 1.0\]: must be \[low, high\] with 0 < low <= high"),
        ([0.5], 8, r"scale_range=\[0.5\]: must be \[low, high\]"),
        ([0.5, 1.0], 101, r"crop_size=101: .* 1.0 × 100 = 100\), .*; allowed: 1 .. 100"),
    ],
)
def test_the_training_crop_must_fit_the_rescaled_image(scale_range, crop_size, match):
    with pytest.raises(ValueError, match=match):
        _unnormalised(base=100, crop=crop_size, scale_range=scale_range, flip=False)
    _unnormalised(base=100, crop=100, scale_range=[0.5, 1.0], flip=False)  # the largest that fits
