"""The training stream is a function of (seed, epoch, position): the same batches -- order and
random augmentation -- in every run, from any resume point (cfnet.data.sampling)."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from support.configs import compose_config

# Random augmentation on: scale 0.5-1.5, 48² crops of 64² images, flips.
AUGMENTED = [
    "dataset.sizes={train:12,val:2,test:2}",
    "dataset.image_size=64",
    "dataset.base_size=64",
    "dataset.crop_size=48",
    "dataset.scale_range=[0.5,1.5]",
    "dataset.batch_size=4",
]


def _datamodule(*overrides: str):
    dm = instantiate(compose_config("train", [*AUGMENTED, *overrides]).dataset)
    dm.setup("fit")
    return dm


def _epoch(loader, epoch: int) -> list[dict]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["name"] == y["name"]
        and torch.equal(x["image"], y["image"])
        and torch.equal(x["mask"], y["mask"])
        for x, y in zip(a, b, strict=True)
    )


def test_augmentation_is_the_same_in_every_run_and_new_each_epoch():
    first = _epoch(_datamodule().train_dataloader(), 1)
    again = _epoch(_datamodule().train_dataloader(), 1)
    assert _same(first, again)  # a second "run": the same crops, scales and flips
    other = _epoch(_datamodule().train_dataloader(), 2)
    by_name = {n: b["image"][i] for b in other for i, n in enumerate(b["name"])}
    changed = [
        not torch.equal(b["image"][i], by_name[n]) for b in first for i, n in enumerate(b["name"])
    ]
    assert sum(changed) >= 10  # another epoch, other draws for (nearly) every image


def test_augmentation_does_not_depend_on_loader_workers():
    assert _same(
        _epoch(_datamodule().train_dataloader(), 0),
        _epoch(_datamodule("dataset.num_workers=2").train_dataloader(), 0),
    )


def test_a_resumed_loader_continues_with_the_remaining_batches():
    straight = _epoch(_datamodule().train_dataloader(), 1)
    dm = _datamodule()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    stream = iter(loader)
    next(stream)  # one batch trained on, then the job stops
    position = dm.state_dict()
    assert position == {"epoch": 1, "batches": 1}

    resumed = _datamodule()
    resumed.load_state_dict(position)  # restored before the loader exists (Lightning's order)
    assert _same(list(resumed.train_dataloader()), straight[1:])
    after = _datamodule()
    loader = after.train_dataloader()
    after.load_state_dict(position)  # or after it was built: it has not started iterating
    assert _same(list(loader), straight[1:])


def test_a_position_at_the_end_of_an_epoch_starts_the_next_one():
    dm = _datamodule()
    loader = dm.train_dataloader()
    done = _epoch(loader, 0)
    assert dm.state_dict() == {"epoch": 0, "batches": len(done)}
    resumed = _datamodule()
    resumed.load_state_dict(dm.state_dict())
    assert _same(list(resumed.train_dataloader()), _epoch(_datamodule().train_dataloader(), 1))


def test_iterating_does_not_draw_from_the_global_rng():
    """A resumed run starts iterating after its RNG states were restored: any draw there would
    shift every later dropout mask against the uninterrupted run."""
    loader = _datamodule().train_dataloader()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    next(iter(loader))
    assert torch.equal(torch.get_rng_state(), before)
