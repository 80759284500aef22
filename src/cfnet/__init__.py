"""cfnet: CFNet, Co-occurrent Features in Semantic Segmentation (Zhang et al., CVPR 2019)."""

__version__ = "0.1.0"
