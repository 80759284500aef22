"""Datasets and LightningDataModules: files → samples → albumentations → loaders."""
