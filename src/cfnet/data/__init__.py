"""Datasets and LightningDataModules: files → samples → albumentations → loaders.

Data flows one way, one module a step: a ``SegmentationDataset`` (``dataset``) reads one
``Sample`` (``sample``: the typed contract) → the albumentations pipelines (``transforms``) →
``pad_collate`` batches it (``collate``) → the ``SegmentationDataModule``'s loaders
(``datamodule``) → the LightningModule. Each dataset (``synthetic``, ``files``, ``voc``, ...)
subclasses the dataset and DataModule bases.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import, in any module
