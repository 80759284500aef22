"""Dilated ResNet backbones from timm, returning the Res-4 and Res-5 feature maps.

The paper dilates Res-4 and Res-5 so both come out at output stride 8 (Res-4: stride 1, dilation 2;
Res-5: stride 1, dilation 4); timm's ``output_stride=8`` builds exactly that pattern, and
``output_stride=16`` dilates Res-5 only. Any architecture of timm's ResNet family is accepted
(``resnet50d``, ``resnet101d``, ``resnet50s`` -- the authors' PSPNet-style stem --, ``resnet18d``,
``resnet10t``, ``seresnext50_32x4d``, ...).

Pretrained weights never come from a hub at run time: ``pretrained`` is a path to a local
``.pth``/``.pt``/``.bin``/``.safetensors`` state dict of the same timm architecture (a classifier
checkpoint is fine; timm drops what the feature extractor does not use). ``.pth`` files are read
with ``torch.load(weights_only=True)``, so loading a file never executes pickled code.
"""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path

import timm
from timm.models import is_model_in_modules
from torch import Tensor, nn

OUTPUT_STRIDES: tuple[int, ...] = (8, 16)
WEIGHT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".safetensors")
# timm's stage indices of Res-4 (reduction 16) and Res-5 (reduction 32) in features_only mode.
RES4_RES5 = (3, 4)


def check_backbone_name(name: str) -> str:
    """Accept the timm ResNet family only: they all support dilation through ``output_stride``."""
    if not isinstance(name, str) or not timm.is_model(name):
        resnets = timm.list_models(module="resnet")
        close = difflib.get_close_matches(str(name), resnets, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"backbone {name!r} is not a timm model{hint} (timm ResNet names: "
            f"resnet50d, resnet101d, resnet50s, resnet18d, resnet10t, ...)"
        )
    if not is_model_in_modules(name, ["resnet"]):
        raise ValueError(
            f"backbone {name!r} is not a timm ResNet: cfnet needs a dilatable ResNet "
            f"(e.g. resnet50d, resnet101d, resnet50s, resnet18d)"
        )
    return name


def check_pretrained_file(pretrained: str | Path) -> Path:
    """A clear one-line error for a missing or odd weights file, before timm sees it."""
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file {str(path)!r} does not exist (model.pretrained must be a "
            f"local {'/'.join(WEIGHT_SUFFIXES)} file; nothing is downloaded)"
        )
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"pretrained weights file {str(path)!r} has suffix {path.suffix!r}; "
            f"expected one of {WEIGHT_SUFFIXES}"
        )
    return path


class Backbone(nn.Module):
    """timm dilated ResNet: images B×3×H×W → (Res-4, Res-5), both at H/os × W/os."""

    def __init__(self, name: str, output_stride: int, pretrained: str | None) -> None:
        super().__init__()
        check_backbone_name(name)
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}"
            )
        weights = check_pretrained_file(pretrained) if pretrained else None
        try:
            self.body = timm.create_model(
                name,
                features_only=True,
                out_indices=RES4_RES5,
                output_stride=output_stride,
                pretrained=weights is not None,
                pretrained_cfg_overlay={"file": str(weights)} if weights else None,
            )
        except pickle.UnpicklingError as err:  # weights_only=True met pickled code or objects
            raise ValueError(
                f"pretrained weights {str(weights)!r} were refused: they hold more than tensors "
                "and plain data (torch.load weights_only=True), e.g. pickled code"
            ) from err
        except RuntimeError as err:  # state-dict mismatch: name the file and the architecture
            if weights is None:
                raise
            first_line = str(err).strip().splitlines()[0]
            raise ValueError(
                f"pretrained weights {str(weights)!r} do not fit timm {name!r}: {first_line}"
            ) from err
        self.name, self.output_stride = name, output_stride
        self.res4_channels, self.res5_channels = self.body.feature_info.channels()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        res4, res5 = self.body(images)
        return res4, res5
