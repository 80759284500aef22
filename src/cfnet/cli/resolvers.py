"""OmegaConf resolvers: values that depend on the machine, generated tables (palettes), and the
class names of a folder dataset (its ``classes.txt``).

Registered by ``cfnet.cli.config`` before any config is composed: ``${best_accelerator:}``,
``${best_precision:}``, ``${cpu_precision:}`` and ``${precision_on:setting,accelerator}``
(evaluate's ``precision=`` on the trainer's device) ask ``cfnet.utils.hardware``;
``${voc_palette:n,first}`` writes out the Pascal VOC colour map; ``${folder_classes:root}`` reads
``dataset=folder``'s ``classes.txt`` and ``${len:...}`` counts them; ``${required:key,why}``
refuses a run that lacks a value an experiment needs.
"""

from __future__ import annotations

from omegaconf import ListConfig, OmegaConf

from cfnet.data.folder import read_classes
from cfnet.data.labels import voc_palette
from cfnet.utils.hardware import (
    best_accelerator,
    best_precision,
    cpu_precision,
    inference_precision,
)


def voc_palette_config(num_colours: int, first: int = 0) -> ListConfig:
    """The Pascal VOC colour map (bit-interleaved ids), for datasets with many classes.

    Colours ``first .. first + num_colours - 1`` (VOC's own are 0..20, 0 being black):
    ``${voc_palette:150,1}`` saves writing 150 RGB triples and keeps black for ignored pixels.
    A ListConfig (not a list), so that ``OmegaConf.resolve`` (``--cfg job --resolve``) accepts it.
    """
    return OmegaConf.create(voc_palette(int(num_colours), int(first)).tolist())


def folder_classes(root: str) -> ListConfig:
    """``dataset=folder``'s class names from ``<root>/classes.txt`` (``cfnet.data.folder``)."""
    return OmegaConf.create(read_classes(root))


def precision_on(setting: str, accelerator: str) -> str:
    """``${precision_on:${precision},${trainer.accelerator}}``: ``cfnet.evaluate``'s
    ``precision=`` on the trainer's accelerator (``auto``: that device's precision, as
    ``cfnet.predict`` picks it). Resolved when the trainer is built, so after ``device=`` has
    moved the accelerator (``cfnet.lit.trainer.on_device``)."""
    return inference_precision(setting, "cuda" if accelerator == "gpu" else accelerator)


def required(key: str, what: str) -> None:
    """``${required:model.init_from,'...'}``: a value an experiment needs from the command line.

    ``???`` cannot say so where a group's default already set the key (a merge keeps the
    default), so this resolver stands in for it and refuses in one line when it is resolved.
    """
    raise ValueError(f"{key} is required here: {what}; pass {key}=<it>")


def register() -> None:
    """Register the resolvers (again: ``replace``), so that configs can be composed."""
    OmegaConf.register_new_resolver("best_accelerator", best_accelerator, replace=True)
    OmegaConf.register_new_resolver("best_precision", best_precision, replace=True)
    OmegaConf.register_new_resolver("cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("precision_on", precision_on, replace=True)
    OmegaConf.register_new_resolver("voc_palette", voc_palette_config, replace=True)
    OmegaConf.register_new_resolver("folder_classes", folder_classes, replace=True)
    OmegaConf.register_new_resolver("len", len, replace=True)  # num_classes: ${len:${.classes}}
    OmegaConf.register_new_resolver("required", required, replace=True)
