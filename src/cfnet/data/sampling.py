"""The training sample stream as a function of (seed, epoch, position): resumable mid-epoch.

Two things make a run stopped in the middle of an epoch (SIGTERM, a SLURM requeue) and resumed
from its checkpoint see exactly the batches of an uninterrupted run:

* **Order and augmentation are functions of (seed, epoch, index).** ``ResumableSampler`` is the
  seeded, sharded ``DistributedSampler`` the loaders always used, but it yields keys
  ``(index, augmentation seed)``: ``SegmentationDataset`` re-seeds the albumentations pipeline with
  that seed before transforming the sample. Albumentations otherwise draws from generators of its
  own, seeded from OS entropy, which no global seed reaches -- before this, random scale / crop /
  flip differed between two runs with the same ``seed``. The seed of a sample depends on neither
  the batch, the process count nor the loader workers.
* **The loader's position is in the checkpoint.** ``ResumableLoader`` counts the batches it has
  handed to the training loop in this epoch (not what its workers prefetched) and can start the
  next iteration after them. The DataModule saves that position as its own state
  (``LightningDataModule.state_dict``) and hands it back to the loader on resume.

  Why not Lightning's own route for stateful loaders (a loader with ``state_dict`` /
  ``load_state_dict``, kept in the fit loop's state)? Lightning 2.6 restores it only if the
  training loader is built *after* the checkpoint is restored; ``configure_optimizers`` reads
  ``trainer.estimated_stepping_batches`` (the poly schedule's length), which builds the loader
  first, and the saved position is then silently dropped (Lightning issue #20550). The
  DataModule's state is restored before either, and is applied whichever comes first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

SampleKey = tuple[int, int]  # (dataset index, augmentation seed)


def seed_augmentation(transform: A.Compose, seed: int) -> None:
    """Re-seed every random step of ``transform`` from ``seed``, each with its own stream.

    (``Compose.set_random_seed`` gives all its steps the *same* seed, which would tie e.g. the
    flip to the crop position: both would read the same first random number.)
    """
    seeds = np.random.SeedSequence(seed).generate_state(len(transform.transforms) + 1)
    transform.set_random_seed(int(seeds[0]))
    for step, step_seed in zip(transform.transforms, seeds[1:], strict=True):
        step.set_random_seed(int(step_seed))


class ResumableSampler(DistributedSampler):
    """Seeded shuffle and sharding (``set_epoch`` as usual), yielding ``(index, seed)`` keys and
    able to begin an epoch at position ``start`` (this process's samples already trained on)."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0  # set by ResumableLoader.resume; used by the next iteration only

    def augmentation_seeds(self) -> np.ndarray:
        """One seed per dataset index for this epoch (the same on every process)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.integers(0, 2**32, size=len(self.dataset), dtype=np.uint64)

    def __iter__(self) -> Iterator[SampleKey]:
        indices = list(super().__iter__())
        seeds = self.augmentation_seeds()
        start, self.start = self.start, 0
        return iter([(index, int(seeds[index])) for index in indices[start:]])


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` over a ``ResumableSampler`` that knows its position within the
    epoch (``position``) and can continue from one (``resume``); see the module doc.

    Should Lightning swap the sampler for another (``overfit_batches``), it is a plain loader.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A generator of its own for the per-iteration base seed (loader workers' seeds), which
        # a DataLoader otherwise draws from the global RNG when an iteration starts: a resumed
        # run starts its iteration after the RNG states were restored, the uninterrupted run
        # before they were saved, and dropout would then draw different numbers.
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)
        self.served = 0  # batches handed to the training loop in the current epoch

    def _resumable(self) -> ResumableSampler | None:
        sampler = self.sampler
        return sampler if isinstance(sampler, ResumableSampler) and self.batch_size else None

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing (no sampler, no worker) starts before the first batch is asked
        # for, so a position given after ``iter()`` still applies.
        sampler = self._resumable()
        self.served = sampler.start // self.batch_size if sampler is not None else 0
        if sampler is not None:
            entropy = np.random.SeedSequence([sampler.seed, sampler.epoch]).generate_state(1)
            self.generator.manual_seed(int(entropy[0]))
        for batch in super().__iter__():
            self.served += 1
            yield batch

    def position(self) -> dict[str, int]:
        """``{"epoch", "batches"}``: where the training stream is (plain ints: weights_only)."""
        sampler = self._resumable()
        return {"epoch": sampler.epoch, "batches": self.served} if sampler is not None else {}

    def resume(self, position: dict[str, int]) -> None:
        """Make the next iteration continue from ``position`` (from ``position()``)."""
        sampler = self._resumable()
        if sampler is None or not position:
            return
        epoch, batches = position["epoch"], position["batches"]
        if batches >= len(self):  # saved at the end of an epoch: the next one starts afresh
            epoch, batches = epoch + 1, 0
        sampler.set_epoch(epoch)
        sampler.start = batches * self.batch_size
