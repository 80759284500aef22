"""Dilated ResNet backbones from timm, returning the Res-4 and Res-5 feature maps.

The paper dilates Res-4 and Res-5 so both come out at output stride 8 (Res-4: stride 1, dilation 2;
Res-5: stride 1, dilation 4); timm's ``output_stride=8`` builds exactly that pattern, and
``output_stride=16`` dilates Res-5 only. Any architecture of timm's ResNet family is accepted
(``resnet50d``, ``resnet101d``, ``resnet50s`` -- the authors' PSPNet-style stem --, ``resnet18d``,
``resnet10t``, ``seresnext50_32x4d``, ...).

``pretrained`` names ImageNet weights in one of three ways (``resolve_pretrained``):

- a local ``.pth``/``.pt``/``.bin``/``.safetensors`` state dict of the same timm architecture (a
  classifier checkpoint is fine; timm drops what the feature extractor does not use). ``.pth``
  files are read with ``torch.load(weights_only=True)``, so loading never executes pickled code;
- ``imagenet``: timm's default pretrained tag of the backbone (``resnet50s`` → ``gluon_in1k``);
- a timm pretrained tag, ``resnet50s.gluon_in1k`` (or only ``gluon_in1k``).

Tags are loaded by timm's own loader from the Hugging Face hub cache (``HF_HOME``; downloaded
there on first use unless ``HF_HUB_OFFLINE=1``). Offline with the weights not in the cache, the
error names the tag, the command that downloads it and the cache it goes to.
"""

from __future__ import annotations

import difflib
import os
import pickle
from pathlib import Path

import timm
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import LocalEntryNotFoundError
from timm.models import get_pretrained_cfg, is_model_in_modules
from torch import Tensor, nn

from cfnet.utils.checks import allowed, one_of

OUTPUT_STRIDES: tuple[int, ...] = (8, 16)
IMAGENET = "imagenet"  # model.pretrained: timm's default pretrained tag of the backbone
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
            f"backbone={name!r}: not a timm model{hint} (timm ResNet names: "
            f"resnet50d, resnet101d, resnet50s, resnet18d, resnet10t, ...)"
        )
    if not is_model_in_modules(name, ["resnet"]):
        raise ValueError(
            f"backbone={name!r}: not a timm ResNet; cfnet needs a dilatable ResNet "
            f"(e.g. resnet50d, resnet101d, resnet50s, resnet18d)"
        )
    return name


def check_pretrained_file(pretrained: str | Path) -> Path:
    """A clear one-line error for a missing or odd weights file, before timm sees it."""
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained={str(path)!r}: no such weights file (allowed: a local "
            f"{'/'.join(WEIGHT_SUFFIXES)} file, '{IMAGENET}' or a timm tag such as "
            "resnet50s.gluon_in1k)"
        )
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"pretrained={str(path)!r}: a weights file with suffix {path.suffix!r}; "
            f"allowed: {allowed(WEIGHT_SUFFIXES)}"
        )
    return path


def resolve_pretrained(pretrained: str, backbone: str) -> Path | str:
    """What ``model.pretrained`` names: a local weights file (a checked ``Path``) or a timm
    pretrained tag ``"<backbone>.<tag>"`` (a ``str``). Nothing is read or downloaded here.

    A value is a file when it has a weights suffix, a path separator or exists; otherwise it is
    ``imagenet`` or a tag, which must be one of timm's tags of ``backbone``.
    """
    path = Path(pretrained).expanduser()
    if path.suffix in WEIGHT_SUFFIXES or os.sep in pretrained or path.exists():
        return check_pretrained_file(path)
    tags = timm.list_pretrained(f"{backbone}.*")
    if pretrained == IMAGENET:
        if not tags:
            raise ValueError(
                f"pretrained={IMAGENET!r}: timm has no pretrained weights for backbone "
                f"{backbone!r}; pass a local weights file instead"
            )
        return f"{backbone}.{get_pretrained_cfg(backbone).tag}"
    name = pretrained if "." in pretrained else f"{backbone}.{pretrained}"
    if name not in tags:
        arch = name.split(".", 1)[0]
        hint = (
            f"it is a tag of {arch!r}, set backbone={arch} too"
            if arch != backbone and name in timm.list_pretrained(f"{arch}.*")
            else f"timm's tags of {backbone!r}: {', '.join(tags) or 'none'}"
        )
        suffixes = "/".join(WEIGHT_SUFFIXES)
        raise ValueError(
            f"pretrained={pretrained!r} is neither a local weights file ({suffixes}) nor "
            f"'{IMAGENET}' nor a timm pretrained tag of backbone {backbone!r} ({hint})"
        )
    return name


def check_hub_cache(tag: str) -> None:
    """Offline (``HF_HUB_OFFLINE=1``), the weights of a timm tag must already be in the HF cache:
    say so in one line before anything is built. Online, timm downloads them when needed."""
    if not hf_constants.HF_HUB_OFFLINE:
        return
    cfg = get_pretrained_cfg(tag)
    # the files timm's hub loader asks for: the safetensors alternative first, then the default
    names = ["model.safetensors", cfg.hf_hub_filename or "pytorch_model.bin"]
    hub_id = cfg.hf_hub_id or f"timm/{tag}"
    if not any(isinstance(try_to_load_from_cache(hub_id, name), str) for name in names):
        raise _not_in_cache(tag)


def _not_in_cache(tag: str) -> FileNotFoundError:
    """The one-line error for hub weights that are neither in the cache nor downloadable."""
    hub_id = get_pretrained_cfg(tag).hf_hub_id or f"timm/{tag}"
    return FileNotFoundError(
        f"pretrained weights {tag!r} are not in the Hugging Face cache "
        f"{hf_constants.HF_HUB_CACHE} and cannot be downloaded "
        f"({'HF_HUB_OFFLINE=1' if hf_constants.HF_HUB_OFFLINE else 'no connection to the hub'}): "
        f"run `hf download {hub_id}` where there is network with the same HF_HOME, "
        "or pass a local file: model.pretrained=/path/to/weights.safetensors"
    )


class Backbone(nn.Module):
    """timm dilated ResNet: images B×3×H×W → (Res-4, Res-5), both at H/os × W/os."""

    def __init__(
        self, name: str, output_stride: int, pretrained: str | None, frozen: bool = False
    ) -> None:
        """Args:
        name: timm ResNet architecture (``resnet50s``, ``resnet101d``, ...).
        output_stride: 8 (Res-4 and Res-5 dilated, the paper) or 16.
        pretrained: ``None`` (random init), a local weights file, ``imagenet`` or a timm tag
            (module doc).
        frozen: Keep the weights fixed (no gradients) and BatchNorm in eval mode, so its running
            statistics stay as loaded too: the usual first step when fine-tuning on a few
            hundred images, whose batches are too few to re-estimate them.
        """
        super().__init__()
        if not isinstance(frozen, bool):
            raise ValueError(f"freeze_backbone={frozen!r}: allowed: true, false")
        check_backbone_name(name)
        one_of("output_stride", output_stride, OUTPUT_STRIDES)
        source = resolve_pretrained(pretrained, name) if pretrained else None
        weights = source if isinstance(source, Path) else None
        try:
            self.body = timm.create_model(
                source if isinstance(source, str) else name,  # "<name>.<tag>": timm's hub loader
                features_only=True,
                out_indices=RES4_RES5,
                output_stride=output_stride,
                pretrained=source is not None,
                pretrained_cfg_overlay={"file": str(weights)} if weights else None,
            )
        except LocalEntryNotFoundError as err:  # offline (or no network) and not in the cache
            raise _not_in_cache(str(source)) from err
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
        self.name, self.output_stride, self.frozen = name, output_stride, frozen
        self.res4_channels, self.res5_channels = self.body.feature_info.channels()
        if frozen:
            self.requires_grad_(False)
            self.train(False)

    def train(self, mode: bool = True) -> Backbone:
        """A frozen backbone stays in eval mode (Lightning sets train mode every epoch)."""
        return super().train(mode and not self.frozen)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        res4, res5 = self.body(images)
        return res4, res5
