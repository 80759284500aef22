"""Segmentation heads: the CFNet head (with the paper's ablation switches) and the FCN head.

Every head maps a backbone feature map to class logits at feature resolution and returns a
``HeadOutput``; the segmentor upsamples. The CFNet head follows the authors' ``ATTENHead``:

    Res-5 ─ 3×3 conv → BN → ReLU (``channels``) ─┬─ global pooling branch (GP)  ─┐
                                                  └─ ACF module (H heads × K)    ─┴ concat
        ─ [EncNet Context Encoding (+ SE logits)] ─ dropout ─ 1×1 conv → num_classes

With ``use_acf=use_gp=use_enc=False`` it reduces to the FCN head, so the paper's Table 2 rows
(FCN; +ACF; +ACF+GP; +ACF+GP+Enc) are one class with switches, trained from the same code path.
The released code turns the Enc module on by default; the paper's CFNet is FCN + ACF + GP, which is
what ``conf/model/cfnet.yaml`` builds (``use_enc: false``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfnet.models.acf import ACFModule, AttentionImpl, CooccurrenceMaps
from cfnet.models.encoding import EncModule
from cfnet.utils.checks import positive_int, probability


class HeadOutput(NamedTuple):
    logits: Tensor  # B×num_classes×h×w at feature resolution
    se_logits: Tensor | None = None  # B×num_classes image-level presence logits (EncNet SE loss)


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Classifier(nn.Sequential):
    """Dropout → 1×1 conv to class logits (``conv6`` in the authors' code)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__(
            nn.Dropout(probability("dropout", dropout)), nn.Conv2d(in_channels, num_classes, 1)
        )


class FCNHead(nn.Module):
    """3×3 conv → BN → ReLU → dropout → 1×1 conv: the baseline head and the auxiliary head."""

    def __init__(self, in_channels: int, num_classes: int, channels: int, dropout: float) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, positive_int("channels", channels), 3)
        self.classifier = Classifier(channels, num_classes, dropout)

    def forward(self, x: Tensor) -> HeadOutput:
        return HeadOutput(self.classifier(self.conv(x)))


class GlobalPooling(nn.Module):
    """Global average pool → 1×1 conv → BN → ReLU, broadcast back to the map size (ParseNet)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        # BN on a 1×1 map needs batch > 1 in training, exactly as in the authors' code.
        return self.conv(self.pool(x)).expand(-1, -1, x.shape[-2], x.shape[-1])


class CFNetHead(nn.Module):
    """The CFNet head with switchable ACF / global-pooling / Context-Encoding components.

    Every argument is required: the paper's values are ``CFNet``'s defaults, stated there once.

    Args:
        in_channels: Channels of the backbone's Res-5 map (2048 for ResNet-50/101).
        num_classes: Classes to predict.
        channels: Width of the 3×3 conv5 that the ACF and GP branches share.
        heads: H attention heads of the ACF module.
        k: K mixture components of the contextual prior.
        phi: Φ of the ACF module: ``conv`` or ``dilated_ffn``.
        acf_dropout: Dropout on the ACF module's aggregated features.
        attention_impl: ``sdpa`` (fused) or ``naive``.
        use_acf: Build the ACF module (Table 2).
        use_gp: Build the global pooling branch (Table 2).
        use_enc: Build EncNet's Context Encoding module, which adds SE logits (Table 2).
        enc_codewords: Codewords of the Context Encoding module.
        dropout: Dropout before the 1×1 classifier.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
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
    ) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, positive_int("channels", channels), 3)  # conv5
        self.acf = (
            ACFModule(channels, heads, k, phi, acf_dropout, attention_impl) if use_acf else None
        )
        self.gp = GlobalPooling(channels, channels) if use_gp else None
        out_channels = channels * (2 if use_gp else 1)
        self.enc = (
            EncModule(out_channels, num_classes, positive_int("enc_codewords", enc_codewords))
            if use_enc
            else None
        )
        self.classifier = Classifier(out_channels, num_classes, dropout)

    def forward(self, x: Tensor) -> HeadOutput:
        x = self.conv(x)  # B×channels×h×w
        feats = self.acf(x) if self.acf is not None else x
        if self.gp is not None:  # authors' order: [GP, ACF]
            feats = torch.cat([self.gp(x), feats], dim=1)  # B×2·channels×h×w
            # cat with the broadcast GP map comes out NCHW: keep channels_last models in NHWC
            # (else the classifier converts the layout, forward and backward).
            feats = feats.contiguous(memory_format=memory_format(x))
        se_logits = None
        if self.enc is not None:
            feats, se_logits = self.enc(feats)
        return HeadOutput(self.classifier(feats), se_logits)

    def cooccurrence(self, x: Tensor) -> CooccurrenceMaps:
        """The ACF module's p(c|t), π and per-mixture maps for backbone features x (inspection)."""
        if self.acf is None:
            raise ValueError("this CFNet head has no ACF module (model.use_acf=false)")
        return self.acf.cooccurrence(self.conv(x))


def memory_format(x: Tensor) -> torch.memory_format:
    """channels_last for an NHWC tensor, else contiguous (NCHW)."""
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


def upsample_to(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of feature-resolution logits to the input size (×8 at OS8)."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
