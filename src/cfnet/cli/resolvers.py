"""OmegaConf resolvers: values that depend on the machine, and generated tables (palettes).

Registered by ``cfnet.cli.config`` before any config is composed: ``${best_accelerator:}``,
``${best_precision:}`` and ``${cpu_precision:}`` ask ``cfnet.utils.hardware``;
``${voc_palette:n,first}`` writes out the Pascal VOC colour map.
"""

from __future__ import annotations

from omegaconf import ListConfig, OmegaConf

from cfnet.data.labels import voc_palette
from cfnet.utils.hardware import best_accelerator, best_precision, cpu_precision


def voc_palette_config(num_colours: int, first: int = 0) -> ListConfig:
    """The Pascal VOC colour map (bit-interleaved ids), for datasets with many classes.

    Colours ``first .. first + num_colours - 1`` (VOC's own are 0..20, 0 being black):
    ``${voc_palette:150,1}`` saves writing 150 RGB triples and keeps black for ignored pixels.
    A ListConfig (not a list), so that ``OmegaConf.resolve`` (``--cfg job --resolve``) accepts it.
    """
    return OmegaConf.create(voc_palette(int(num_colours), int(first)).tolist())


def register() -> None:
    """Register the resolvers (again: ``replace``), so that configs can be composed."""
    OmegaConf.register_new_resolver("best_accelerator", best_accelerator, replace=True)
    OmegaConf.register_new_resolver("best_precision", best_precision, replace=True)
    OmegaConf.register_new_resolver("cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("voc_palette", voc_palette_config, replace=True)
