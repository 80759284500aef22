"""CFNet models: plain ``nn.Module``s, usable without Lightning or Hydra."""

from cfnet.models.acf import ACFModule, CooccurrenceMaps, mixture_of_softmaxes_attention
from cfnet.models.backbone import Backbone
from cfnet.models.heads import CFNetHead, FCNHead, HeadOutput
from cfnet.models.segmentor import FCN, CFNet, Segmentor, SegmentorOutput

__all__ = [
    "FCN",
    "ACFModule",
    "Backbone",
    "CFNet",
    "CFNetHead",
    "CooccurrenceMaps",
    "FCNHead",
    "HeadOutput",
    "Segmentor",
    "SegmentorOutput",
    "mixture_of_softmaxes_attention",
]
