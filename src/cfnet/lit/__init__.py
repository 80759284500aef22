"""The Lightning glue: the LightningModule and what a Lightning run needs around it.

``module`` (``SegmentationModule``: loss, optimiser, poly LR, metrics; the model computes),
``losses``, ``class_weight`` (``loss.class_weight``: none, a list, or inverse frequency counted
from the train split), ``checkpoint_io`` (checkpoints written atomically), and the callbacks by
concern: ``reports`` (per-class tables, bad samples, model summary), ``resume`` (RNG states,
pre-emption checkpoints) and ``wandb_logging`` (the W&B logger, its pictures and the sweep
summary).
"""

from cfnet.lit.module import SegmentationModule

__all__ = ["SegmentationModule"]
