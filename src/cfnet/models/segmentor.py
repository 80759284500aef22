"""Segmentor = dilated backbone → head (+ auxiliary FCN head on Res-4), a plain ``nn.Module``.

``CFNet`` and ``FCN`` are the two models the configs in ``conf/model/`` build: their constructor
arguments *are* the config keys (``model.k``, ``model.heads``, ``model.backbone``, ...), so
``hydra.utils.instantiate(cfg.model)`` returns a ready segmentor and the model is equally usable
from plain Python, without Lightning or Hydra.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from cfnet.models.acf import AttentionImpl, CooccurrenceMaps
from cfnet.models.backbone import Backbone
from cfnet.models.heads import CFNetHead, FCNHead, upsample_to


class SegmentorOutput(NamedTuple):
    """Everything the training losses need, all logits at input resolution."""

    logits: Tensor  # B×C×H×W main head
    aux_logits: Tensor | None  # B×C×H×W auxiliary FCN head on Res-4
    se_logits: Tensor | None  # B×C per-image class presence (EncNet SE loss)


class Segmentor(nn.Module):
    """Backbone → head, logits upsampled to the input size for any H, W."""

    def __init__(self, backbone: Backbone, head: nn.Module, aux_head: nn.Module | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head

    def forward(self, images: Tensor) -> Tensor:
        """images B×3×H×W (normalised) → logits B×C×H×W. The auxiliary head is not run."""
        _, res5 = self.backbone(images)
        return upsample_to(self.head(res5).logits, images.shape[-2:])

    def forward_train(self, images: Tensor) -> SegmentorOutput:
        """Main, auxiliary and SE outputs in one pass, for the training losses."""
        res4, res5 = self.backbone(images)
        size = images.shape[-2:]
        main = self.head(res5)
        aux = upsample_to(self.aux_head(res4).logits, size) if self.aux_head is not None else None
        return SegmentorOutput(upsample_to(main.logits, size), aux, main.se_logits)

    @torch.no_grad()
    def cooccurrence(self, images: Tensor) -> CooccurrenceMaps:
        """What the ACF module attends to for each query position of ``images`` (B×3×H×W).

        Runs the backbone and the head's conv5, then returns the ACF module's maps on its
        query (h×w) and key (h'×w') grids; the attention notebooks and ``cfnet.attention`` read
        this. Models without an ACF module (FCN, ``use_acf=false``) raise a ValueError.
        """
        if not hasattr(self.head, "cooccurrence"):
            raise ValueError(f"{type(self).__name__} has no ACF module to inspect")
        _, res5 = self.backbone(images)
        return self.head.cooccurrence(res5)


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def _aux_head(
    body: Backbone, num_classes: int, aux: bool, channels: int, dropout: float
) -> FCNHead | None:
    """The auxiliary FCN head on Res-4 that both models train with (authors' code, PSPNet)."""
    return FCNHead(body.res4_channels, num_classes, channels, dropout) if aux else None


class CFNet(Segmentor):
    """CFNet (Zhang et al., CVPR 2019): dilated ResNet + CFNet head + auxiliary FCN head.

    Args mirror ``conf/model/cfnet.yaml``, where their values and meaning are documented.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str,
        pretrained: str | None,
        output_stride: int,
        channels: int,
        heads: int,
        k: int,
        phi: str,
        acf_dropout: float,
        attention_impl: AttentionImpl,
        use_acf: bool,
        use_gp: bool,
        use_enc: bool,
        enc_codewords: int,
        dropout: float,
        aux: bool,
        aux_channels: int,
    ) -> None:
        _check_num_classes(num_classes)
        body = Backbone(backbone, output_stride, pretrained)
        head = CFNetHead(
            body.res5_channels,
            num_classes,
            channels=channels,
            heads=heads,
            k=k,
            phi=phi,
            acf_dropout=acf_dropout,
            attention_impl=attention_impl,
            use_acf=use_acf,
            use_gp=use_gp,
            use_enc=use_enc,
            enc_codewords=enc_codewords,
            dropout=dropout,
        )
        super().__init__(body, head, _aux_head(body, num_classes, aux, aux_channels, dropout))


class FCN(Segmentor):
    """The paper's baseline: dilated ResNet + FCN head (+ the same auxiliary FCN head)."""

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str,
        pretrained: str | None,
        output_stride: int,
        channels: int,
        dropout: float,
        aux: bool,
        aux_channels: int,
    ) -> None:
        _check_num_classes(num_classes)
        body = Backbone(backbone, output_stride, pretrained)
        head = FCNHead(body.res5_channels, num_classes, channels, dropout)
        super().__init__(body, head, _aux_head(body, num_classes, aux, aux_channels, dropout))
