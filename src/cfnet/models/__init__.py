"""CFNet models: plain ``nn.Module``s, usable without Lightning or Hydra."""

from cfnet.models.acf import ACFModule, CooccurrenceMaps, mixture_of_softmaxes_attention
from cfnet.models.backbone import Backbone
from cfnet.models.heads import CFNetHead, FCNHead, HeadOutput
from cfnet.models.hub import DatasetInfo, TrainingRecord
from cfnet.models.segmentor import FCN, CFNet, Segmentor, SegmentorOutput, from_pretrained

__all__ = [
    "FCN",
    "ACFModule",
    "Backbone",
    "CFNet",
    "CFNetHead",
    "CooccurrenceMaps",
    "DatasetInfo",
    "FCNHead",
    "HeadOutput",
    "Segmentor",
    "SegmentorOutput",
    "TrainingRecord",
    "from_pretrained",
    "mixture_of_softmaxes_attention",
]
