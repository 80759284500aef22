"""Segmentor = dilated backbone → head (+ auxiliary FCN head on Res-4), a plain ``nn.Module``.

``CFNet`` and ``FCN`` are the two models the configs in ``conf/model/`` build: their constructor
arguments *are* the config keys (``model.k``, ``model.heads``, ``model.backbone``, ...), so
``hydra.utils.instantiate(cfg.model)`` returns a ready segmentor and the model is equally usable
from plain Python, without Lightning or Hydra.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from cfnet.models.acf import AttentionImpl, CooccurrenceMaps
from cfnet.models.backbone import Backbone
from cfnet.models.heads import CFNetHead, FCNHead, upsample_to
from cfnet.models.hub import HubMixin, HubOptions, find_pretrained
from cfnet.models.init_from import load_init
from cfnet.utils.checks import positive_int


class SegmentorOutput(NamedTuple):
    """Everything the training losses need, all logits at input resolution."""

    logits: Tensor  # B×C×H×W main head
    aux_logits: Tensor | None  # B×C×H×W auxiliary FCN head on Res-4
    se_logits: Tensor | None  # B×C per-image class presence (EncNet SE loss)


class Segmentor(nn.Module, HubMixin):
    """Backbone → head, logits upsampled to the input size for any H, W.

    ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``: ``cfnet.models.hub``.
    """

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

        Runs the backbone and the head's conv5, then returns the ACF module's maps on its query
        (h×w) and key (h'×w') grids; the attention notebooks and ``cfnet.analysis.attention`` read
        this. Models without an ACF module (FCN, ``use_acf=false``) raise a ValueError.
        """
        if not hasattr(self.head, "cooccurrence"):
            raise ValueError(f"{type(self).__name__} has no ACF module to inspect")
        _, res5 = self.backbone(images)
        return self.head.cooccurrence(res5)


def _backbone_and_aux_head(
    num_classes: int,
    backbone: str,
    pretrained: str | None,
    freeze_backbone: bool,
    output_stride: int,
    aux: bool,
    aux_channels: int,
    dropout: float,
) -> tuple[Backbone, FCNHead | None]:
    """What CFNet and FCN build alike: the dilated backbone (frozen or not), and the auxiliary FCN
    head on Res-4 that both train with (authors' code, PSPNet), after checking the class count."""
    positive_int("num_classes", num_classes)
    body = Backbone(backbone, output_stride, pretrained, freeze_backbone)
    if not aux:
        return body, None
    positive_int("aux_channels", aux_channels)  # (FCNHead would call it "channels")
    return body, FCNHead(body.res4_channels, num_classes, aux_channels, dropout)


class CFNet(Segmentor):
    """CFNet (Zhang et al., CVPR 2019): dilated ResNet + CFNet head + auxiliary FCN head.

    The defaults are the paper's model (Table 3's best H=4, K=2; FCN + ACF + GP), so
    ``CFNet(num_classes=21)`` builds it. They are stated here only (``CFNetHead`` and
    ``ACFModule`` take every argument explicitly); ``conf/model/cfnet.yaml`` repeats them for
    Hydra (a test keeps the two equal).

    Args:
        num_classes: Classes to predict (21 for Pascal VOC, 59 for Pascal Context, ...).
        backbone: timm ResNet name (``resnet50d``; ``resnet50s`` / ``resnet101s`` are the
            authors' deep-stem ResNets).
        pretrained: ``None`` (random init), a local ``.pth`` / ``.safetensors`` file, ``imagenet``
            (timm's default tag of ``backbone``) or a timm tag such as ``resnet50s.gluon_in1k``.
        init_from: ``None``, or a trained cfnet model to start from (a ``.ckpt`` of
            ``cfnet.train`` or a ``.safetensors`` of ``cfnet.export``): every tensor whose name
            and shape match is loaded, class layers of other shapes start fresh
            (``cfnet.models.init_from``). Loaded after ``pretrained``.
        freeze_backbone: Keep the backbone's weights fixed and its BatchNorm in eval mode.
        output_stride: 8 (the paper: Res-4 and Res-5 dilated) or 16.
        channels: Width of the head's 3×3 conv5, which the ACF and GP branches use (authors:
            Res-5 channels / 4).
        heads: H attention heads of the ACF module; each gets ``channels / heads`` channels.
        k: K mixture components of the contextual prior (Eq. 3).
        phi: Φ, the query/key transform: ``conv`` (1×1, the authors' code) or ``dilated_ffn``
            (the paper's "atrous rate 4" ablation).
        acf_dropout: Dropout on the aggregated co-occurrent features z.
        attention_impl: ``sdpa`` (fused, O(N) memory) or ``naive`` (materialises p(c|t)).
        use_acf: Table 2 switch: the ACF module.
        use_gp: Table 2 switch: the global pooling branch.
        use_enc: Table 2 switch: EncNet's Context Encoding module and its SE loss.
        enc_codewords: Codewords of the Context Encoding module.
        dropout: Dropout before the 1×1 classifiers.
        aux: Train with the auxiliary FCN head on Res-4 (authors' code).
        aux_channels: Width of the auxiliary head's 3×3 conv.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet50d",
        pretrained: str | None = None,
        init_from: str | None = None,
        freeze_backbone: bool = False,
        output_stride: int = 8,
        channels: int = 512,
        heads: int = 4,
        k: int = 2,
        phi: str = "conv",
        acf_dropout: float = 0.1,
        attention_impl: AttentionImpl = "sdpa",
        use_acf: bool = True,
        use_gp: bool = True,
        use_enc: bool = False,
        enc_codewords: int = 32,
        dropout: float = 0.1,
        aux: bool = True,
        aux_channels: int = 256,
    ) -> None:
        body, aux_head = _backbone_and_aux_head(
            num_classes,
            backbone,
            pretrained,
            freeze_backbone,
            output_stride,
            aux,
            aux_channels,
            dropout,
        )
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
        super().__init__(body, head, aux_head)
        if init_from is not None:
            shape = {"backbone": backbone, "output_stride": output_stride, "channels": channels}
            shape |= {"heads": heads, "k": k, "phi": phi, "use_acf": use_acf, "use_gp": use_gp}
            shape |= {"use_enc": use_enc, "enc_codewords": enc_codewords, "aux": aux}
            shape |= {"aux_channels": aux_channels, "num_classes": num_classes}
            load_init(self, init_from, {"_target_": "cfnet.models.CFNet", **shape})


class FCN(Segmentor):
    """The paper's baseline: dilated ResNet + FCN head (+ the same auxiliary FCN head).

    ``FCN(num_classes=21)`` builds Table 2's first row; ``conf/model/fcn.yaml`` repeats the
    defaults for Hydra.

    Args:
        num_classes: Classes to predict.
        backbone: timm ResNet name, as in ``CFNet``.
        pretrained: ``None``, a local weights file, ``imagenet`` or a timm tag, as in ``CFNet``.
        init_from: ``None`` or a trained cfnet model to start from, as in ``CFNet``.
        freeze_backbone: Keep the backbone's weights fixed and its BatchNorm in eval mode.
        output_stride: 8 (the paper) or 16.
        channels: Width of the head's 3×3 conv, as CFNet's conv5.
        dropout: Dropout before the 1×1 classifiers.
        aux: Train with the auxiliary FCN head on Res-4.
        aux_channels: Width of the auxiliary head's 3×3 conv.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet50d",
        pretrained: str | None = None,
        init_from: str | None = None,
        freeze_backbone: bool = False,
        output_stride: int = 8,
        channels: int = 512,
        dropout: float = 0.1,
        aux: bool = True,
        aux_channels: int = 256,
    ) -> None:
        body, aux_head = _backbone_and_aux_head(
            num_classes,
            backbone,
            pretrained,
            freeze_backbone,
            output_stride,
            aux,
            aux_channels,
            dropout,
        )
        super().__init__(
            body, FCNHead(body.res5_channels, num_classes, channels, dropout), aux_head
        )
        if init_from is not None:
            shape = {"backbone": backbone, "output_stride": output_stride, "channels": channels}
            shape |= {"aux": aux, "aux_channels": aux_channels, "num_classes": num_classes}
            load_init(self, init_from, {"_target_": "cfnet.models.FCN", **shape})


# The classes a saved directory may name (config.json's model_class: hub.MODEL_CLASSES).
MODEL_CLASSES: dict[str, type[Segmentor]] = {cls.__name__: cls for cls in (CFNet, FCN)}


def from_pretrained(
    dir_or_repo_id: str | Path,
    *,
    force_download: bool = False,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    map_location: str = "cpu",
) -> Segmentor:
    """``cfnet.from_pretrained``: the CFNet or FCN saved in a directory or a Hub repo
    (``org/name``), whichever it holds, in eval mode on ``map_location``. The other arguments are
    ``hf_hub_download``'s; with ``HF_HUB_OFFLINE=1`` a repo id is read from the local Hub cache."""
    hub = HubOptions(revision, cache_dir, force_download, local_files_only, token)
    found = find_pretrained(dir_or_repo_id, hub)  # (its model_class checked: one of the two)
    return MODEL_CLASSES[found.config["model_class"]].from_pretrained(
        found.directory, map_location=map_location
    )
