"""The evaluation protocol: how a trained model is run on one full-resolution image.

Three presets (``conf/inference/``), all built from the same steps:

* ``whole``   — the image at its original resolution, one forward pass (what validation does).
* ``slide``   — the authors' single-scale protocol: rescale so the long side is ``base_size``, then
  ``crop_size`` windows with stride ``stride_rate × crop_size``; an image that fits one window is
  padded to the crop and run once.
* ``ms_flip`` — the paper's multi-scale protocol: long side ``ceil(base_size × s)`` for
  s ∈ {0.5, 0.75, 1.0, 1.25, 1.5, 1.75} (Cityscapes 0.75–2.25), sliding windows, plus the
  horizontally flipped image.

Padding uses the normalised value of black (what training pads crops with). Windows average their
logits where they overlap. Every pass (scale × flip) gives class probabilities at the original
resolution, and the result is their mean. The authors' code instead sums ``exp(logits + flipped
logits)`` over scales; that overflows float32 once logits pass ~44 and weights confident scales
exponentially, so we average softmax probabilities (as mmsegmentation does); the argmax differs
only where scales disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Model = Callable[[Tensor], Tensor]  # B×3×h×w normalised image → B×C×h×w logits
MODES = ("whole", "slide")


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of images or scores (align_corners=False, as the models' upsampling)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def pad_to(image: Tensor, height: int, width: int, pad_value: Tensor) -> Tensor:
    """Pad bottom/right up to ``height × width`` with the per-channel ``pad_value`` (3,)."""
    h, w = image.shape[-2:]
    if h >= height and w >= width:
        return image
    out = pad_value.to(image)[None, :, None, None].expand(
        image.shape[0], -1, max(h, height), max(w, width)
    )
    out = out.clone()
    out[..., :h, :w] = image
    return out


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets along one axis, ``0, stride, 2·stride, …`` until the end is covered (the last
    window may overhang and is padded, as in the authors' code)."""
    count = max(math.ceil((length - crop) / stride), 0) + 1
    return [i * stride for i in range(count)]


def sliding_logits(
    model: Model, image: Tensor, crop: int, stride: int, pad_value: Tensor
) -> Tensor:
    """Logits B×C×h×w of ``image`` from crop×crop windows, averaged where windows overlap."""
    h, w = image.shape[-2:]
    if max(h, w) <= crop:  # fits one window: pad to the crop and run once
        return model(pad_to(image, crop, crop, pad_value))[..., :h, :w]
    total: Tensor | None = None
    count = torch.zeros(1, 1, h, w, device=image.device)
    for y in window_starts(h, crop, stride):
        for x in window_starts(w, crop, stride):
            window = image[..., y : y + crop, x : x + crop]
            wh, ww = window.shape[-2:]
            logits = model(pad_to(window, crop, crop, pad_value))[..., :wh, :ww]
            if total is None:
                total = logits.new_zeros(*logits.shape[:2], h, w)
            total[..., y : y + wh, x : x + ww] += logits
            count[..., y : y + wh, x : x + ww] += 1
    assert total is not None
    return total / count


class SegmentationInference:
    """Runs a model on B×3×H×W normalised images and returns class probabilities B×C×H×W.

    Args mirror ``conf/inference/*.yaml``: ``mode`` whole | slide; ``scales`` None (original
    resolution) or factors of ``base_size`` for the long side; ``flip`` adds the mirrored image;
    ``crop_size`` and ``stride_rate`` define the sliding windows.
    """

    def __init__(
        self,
        *,
        mode: str,
        scales: Sequence[float] | None,
        flip: bool,
        base_size: int,
        crop_size: int,
        stride_rate: float,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"inference.mode must be one of {MODES}, got {mode!r}")
        if scales is not None and (not scales or any(s <= 0 for s in scales)):
            raise ValueError(f"inference.scales must be null or positive factors, got {scales}")
        if not 0 < stride_rate <= 1:
            raise ValueError(f"inference.stride_rate must be in (0, 1], got {stride_rate}")
        self.mode, self.flip = mode, flip
        self.scales = None if scales is None else [float(s) for s in scales]
        self.base_size, self.crop_size = base_size, crop_size
        self.stride = max(int(crop_size * stride_rate), 1)

    def describe(self) -> str:
        """One line for reports: what protocol produced the numbers."""
        scales = (
            "original size"
            if self.scales is None
            else (f"scales {self.scales} × base {self.base_size}")
        )
        parts = [self.mode, scales]
        if self.mode == "slide":
            parts.append(f"crop {self.crop_size} stride {self.stride}")
        if self.flip:
            parts.append("flip")
        return ", ".join(parts)

    @property
    def passes(self) -> int:
        """Forward passes over the (rescaled) image, windows not counted."""
        return (1 if self.scales is None else len(self.scales)) * (2 if self.flip else 1)

    def scaled_size(self, height: int, width: int, scale: float | None) -> tuple[int, int]:
        """The size of a pass: original, or long side ``ceil(base_size × scale)``."""
        if scale is None:
            return height, width
        long_side = math.ceil(self.base_size * scale)
        ratio = long_side / max(height, width)
        return max(round(height * ratio), 1), max(round(width * ratio), 1)

    def logits(self, model: Model, image: Tensor, pad_value: Tensor) -> Tensor:
        """One pass at the image's current size (whole or sliding windows)."""
        if self.mode == "whole":
            return model(image)
        return sliding_logits(model, image, self.crop_size, self.stride, pad_value)

    @torch.no_grad()
    def __call__(self, model: Model, image: Tensor, pad_value: Sequence[float] | Tensor) -> Tensor:
        height, width = image.shape[-2:]
        pad = torch.as_tensor(pad_value, dtype=image.dtype, device=image.device)
        probs: Tensor | None = None
        for scale in self.scales or [None]:
            scaled = resize(image, self.scaled_size(height, width, scale))
            views = [scaled, scaled.flip(-1)] if self.flip else [scaled]
            for i, view in enumerate(views):
                p = self.logits(model, view, pad).float().softmax(1)
                p = resize(p.flip(-1) if i == 1 else p, (height, width))
                probs = p if probs is None else probs + p
        assert probs is not None
        return probs / self.passes
