"""The DataModule base: the paper's augmentation and the loaders, shared by every dataset.

Data flows one way: a ``SegmentationDataset`` reads one sample (RGB uint8 image, mask of training
ids with ``ignore_index`` for unlabelled pixels) → albumentations transforms → the DataModule's
loaders → the LightningModule.

Each dataset has a ``SegmentationDataModule`` subclass (a keyword-only dataclass, so its
constructor is explicit and complete: the base's fields plus the dataset's own) that only says how
to build the dataset of a split; the base owns the paper's augmentation and the loaders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import albumentations as A
import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from cfnet.data.collate import pad_collate
from cfnet.data.dataset import ON_BAD_SAMPLE, SegmentationDataset
from cfnet.data.sample import Batch, Sample, SkippedSample
from cfnet.data.sampling import ResumableLoader, ResumableSampler
from cfnet.data.transforms import eval_transform, normalised_black, train_transform
from cfnet.utils.checks import allowed, is_int, is_number, one_of, positive_int
from cfnet.utils.hardware import cpus_available, loader_workers, trainer_on_cpu


def per_process_batch(batch_size: int, processes: int) -> int:
    """The images each process loads: ``batch_size`` is the global batch (the paper's 16 across
    GPUs), so it must split evenly over the processes."""
    if batch_size % processes:
        multiples = [m * processes for m in range(1, 5)]
        raise ValueError(
            f"batch_size={batch_size}: the global batch must be divisible by the number of "
            f"processes (trainer.devices × trainer.num_nodes = {processes}); allowed: "
            f"{allowed(multiples)}, ..."
        )
    return batch_size // processes


@dataclass(kw_only=True, eq=False)
class SegmentationDataModule(L.LightningDataModule):
    """Loaders and augmentation shared by every dataset (``dataset=<name>`` configs).

    ``batch_size`` is the global batch, as in the paper (16 across GPUs): each of the
    ``trainer.world_size`` processes loads ``batch_size / world_size`` images.
    """

    name: str
    num_classes: int
    class_names: list[str]
    class_groups: dict[str, list[int]]  # extra mIoU reports, e.g. {"ambiguous": [3, 4, 5, 6]}
    palette: list[list[int]]  # RGB per class, for masks and overlays
    ignore_index: int
    mean: list[float]
    std: list[float]
    batch_size: int
    eval_batch_size: int
    num_workers: int | str  # a count, or auto (cfnet.utils.hardware.loader_workers)
    loader_timeout: float  # s per batch from a worker before the run stops (0: no limit)
    base_size: int
    crop_size: int
    scale_range: list[float]
    flip: bool
    val_split: str
    test_split: str
    shuffle_seed: int  # the training order is a function of (seed, epoch): exact resumes
    on_bad_sample: str  # "error": stop, naming the file | "skip": drop it and count it
    eval_scales: list[float]  # the paper's multi-scale protocol (conf/inference/ms_flip.yaml)
    datasets: dict[str, Dataset] = field(default_factory=dict, init=False, repr=False)
    # The training stream's position, saved in checkpoints (cfnet.data.sampling).
    _train_loader: ResumableLoader | None = field(default=None, init=False, repr=False)
    _resume_at: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        """Each field's own rule (the geometry of the training crop: ``train_transform``)."""
        L.LightningDataModule.__init__(self)
        for key in ("num_classes", "batch_size", "eval_batch_size", "base_size", "crop_size"):
            positive_int(key, getattr(self, key))
        for key, values, what in (
            ("class_names", self.class_names, "names"),
            ("palette", self.palette, "colours"),
        ):
            if len(values) != self.num_classes:
                raise ValueError(
                    f"{key} has {len(values)} {what} for num_classes={self.num_classes}"
                )
        workers = self.num_workers
        if workers != "auto" and (not is_int(workers) or workers < 0):
            raise ValueError(f"num_workers={workers!r}: allowed: auto, 0, 1, 2, ...")
        if not is_number(self.loader_timeout) or self.loader_timeout < 0:
            raise ValueError(
                f"loader_timeout={self.loader_timeout!r}: seconds per batch, a number >= 0 "
                "(0: no limit)"
            )
        one_of("on_bad_sample", self.on_bad_sample, ON_BAD_SAMPLE)
        if any(not is_number(s) or s <= 0 for s in self.eval_scales):
            raise ValueError(f"eval_scales={list(self.eval_scales)}: must all be > 0")

    # ---- what a dataset subclass provides -------------------------------------------------
    def build_dataset(
        self,
        split: str,
        transform: Callable[..., dict[str, Any]] | None,
        replace_bad: bool = False,
    ) -> SegmentationDataset:
        """The dataset of ``split`` (train | val | test); ``transform=None`` gives raw samples.

        ``replace_bad``: with ``on_bad_sample=skip``, replace a bad sample by the next good one
        (training) instead of dropping it (evaluation, statistics).
        """
        raise NotImplementedError

    def split_names(self) -> list[str]:
        """The splits this dataset has, as ``build_dataset`` names them (``cfnet.stats``)."""
        return list(dict.fromkeys(["train", self.val_split, self.test_split]))

    # ---- transforms -----------------------------------------------------------------------
    def train_transform(self) -> A.Compose:
        """The paper's augmentation with this dataset's sizes (``cfnet.data.transforms``)."""
        return train_transform(
            base_size=self.base_size,
            crop_size=self.crop_size,
            scale_range=self.scale_range,
            flip=self.flip,
            mean=self.mean,
            std=self.std,
            ignore_index=self.ignore_index,
        )

    def eval_transform(self) -> A.Compose:
        """Normalisation only: evaluation sees each image whole, at its own size."""
        return eval_transform(mean=self.mean, std=self.std)

    # ---- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage reads (each once: a later stage reuses them)."""
        wanted = {
            "fit": [("train", "train"), ("val", self.val_split)],
            "validate": [("val", self.val_split)],
            "test": [("test", self.test_split)],
            "predict": [("test", self.test_split)],
        }
        for role, split in wanted.get(stage or "fit", []):
            if role not in self.datasets:
                transform = self.train_transform() if role == "train" else self.eval_transform()
                self.datasets[role] = self.build_dataset(
                    split, transform, replace_bad=role == "train"
                )

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def per_process_batch(self, batch_size: int) -> int:
        """A global batch's share of each of this run's processes."""
        return per_process_batch(batch_size, self._world_size())

    def _collate(self) -> Callable[[list[Sample | SkippedSample]], Batch]:
        fill = normalised_black(self.mean, self.std)
        return functools.partial(pad_collate, image_fill=fill, ignore_index=self.ignore_index)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented, resumable batches of crops (the last incomplete one dropped)."""
        # Order and augmentation are functions of (shuffle_seed, epoch, index), and the loader's
        # position is saved in checkpoints: a run resumed from any step -- also in the middle of
        # an epoch -- sees the batches of the uninterrupted run (cfnet.data.sampling). The sampler
        # also shards the data across DDP processes.
        sampler = ResumableSampler(
            self.datasets["train"],
            num_replicas=self._world_size(),
            rank=self.trainer.global_rank if self.trainer is not None else 0,
            seed=self.shuffle_seed,
        )
        loader = ResumableLoader(
            self.datasets["train"],
            batch_size=self.per_process_batch(self.batch_size),
            sampler=sampler,
            drop_last=True,  # as in the paper: the last incomplete batch is discarded
            collate_fn=self._collate(),  # equal crops: a plain stack, plus the skip messages
            **self.loader_settings(),
        )
        loader.resume(self._resume_at)
        self._train_loader, self._resume_at = loader, {}
        return loader

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the training stream where it stopped."""
        return self._train_loader.position() if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning restores this before it builds the training loader, or after (strategies
        that restore after setup): either way the next training iteration continues from it."""
        if self._train_loader is not None:
            self._train_loader.resume(state_dict)
        else:
            self._resume_at = dict(state_dict)

    def workers(self) -> int:
        """Loader workers per process: ``num_workers``, or for ``auto`` what the trainer's device
        calls for (``cfnet.utils.hardware.loader_workers``: none on the CPU, up to 8 on a GPU)."""
        trainer = self.trainer
        return loader_workers(
            self.num_workers,
            on_cpu=trainer_on_cpu(trainer),
            processes=trainer.num_devices if trainer is not None else 1,
            cpus=cpus_available(),
        )

    def loader_settings(self) -> dict[str, Any]:
        """The DataLoader options every loader shares, sized to the machine.

        Workers stay alive between epochs (``persistent_workers``), and batches go to page-locked
        memory (``pin_memory``) when the model runs on a GPU, so host-to-device copies overlap
        with compute. A stalled read (a hung network mount, a decoder that never returns) must not
        hang the run: PyTorch raises once a worker is silent for ``loader_timeout`` s, and the
        file it was reading is named at exit (``cfnet.data.inflight``); workers only.
        """
        workers = self.workers()
        return {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": not trainer_on_cpu(self.trainer),
            "timeout": self.loader_timeout if workers > 0 else 0,
        }

    def _eval_loader(self, role: str) -> DataLoader:
        dataset = self.datasets[role]
        world = self._world_size()
        # Each sample exactly once across processes, so metrics equal the single-process ones
        # (the default DistributedSampler would pad by repeating samples).
        sampler = (
            UnrepeatedDistributedSampler(
                dataset,
                num_replicas=world,
                rank=self.trainer.global_rank,
                shuffle=False,
            )
            if world > 1
            else None
        )
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=self._collate(),
            **self.loader_settings(),
        )

    def val_dataloader(self) -> DataLoader:
        """Whole images of ``val_split``, padded into batches (their sizes kept)."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Whole images of ``test_split`` (``cfnet.evaluate``'s ``split``), as validation's."""
        return self._eval_loader("test")
