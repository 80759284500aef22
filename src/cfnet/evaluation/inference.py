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

``compile=true`` runs the sliding windows through ``torch.compile`` (CUDA graphs on CUDA): every
forward then has one shape, ``batch_size`` windows of crop × crop (a shorter last chunk is padded
with copies), so the model is compiled once per run. Off by default: on the CPU it did not pay
(docs/gpu.md); on CUDA ``benchmarks/gpu_check.sh`` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cfnet.utils.checks import one_of, positive_int

Model = Callable[[Tensor], Tensor]  # B×3×h×w normalised image → B×C×h×w logits
MODES = ("whole", "slide")


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of images or scores (align_corners=False, as the models' upsampling)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def long_side_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) rescaled so that the long side is ``long_side``, the aspect ratio kept:
    how the ``slide`` / ``ms_flip`` passes size an image, and how ``cfnet.explore`` and
    ``cfnet.cooccurrence`` shrink a large one."""
    ratio = long_side / max(height, width)
    return max(round(height * ratio), 1), max(round(width * ratio), 1)


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


def crops(image: Tensor, crop: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of the crop×crop windows that cover ``image`` (one if it fits one)."""
    h, w = image.shape[-2:]
    if max(h, w) <= crop:
        return [(0, 0)]
    return [(y, x) for y in window_starts(h, crop, stride) for x in window_starts(w, crop, stride)]


def views_logits(
    model: Model,
    views: Iterable[Tensor],
    crop: int | None,
    stride: int,
    pad_value: Tensor,
    batch_size: int = 1,
) -> Iterator[Tensor]:
    """Logits B×C×h×w of each view, in order, each as soon as its last window has run.

    ``crop=None`` runs each view whole. Otherwise each view is cut into crop×crop windows (padded
    where they overhang; a view that fits one window is padded to the crop and run once), and the
    logits of overlapping windows are averaged. The windows of successive views (every scale and
    its mirror image) are run ``batch_size`` at a time, across views, so only the image's last
    forward is short of ``batch_size``: one forward for many windows keeps an accelerator busy,
    and on the CPU it is no slower (docs/gpu.md). Whole views share a forward only with views of
    their size. Batching changes nothing but float rounding, as the models see each image on its
    own (batch-norm in eval mode). Views are read lazily and released once done, so the sums of
    only a view or two are held at a time. The sums are float32 whatever the model computes in
    (bf16 under autocast would round every window's logits added to them).
    """
    # per open view: the view, its logit sums (from its first window), window counts, windows left
    open_views: dict[int, list] = {}
    chunk: list[tuple[int, int, int]] = []  # (view, y, x) of the windows of the next forward

    def run() -> Iterator[Tensor]:
        inputs = [
            open_views[v][0]
            if crop is None
            else pad_to(open_views[v][0][..., y : y + crop, x : x + crop], crop, crop, pad_value)
            for v, y, x in chunk
        ]
        logits = model(torch.cat(inputs)).split(inputs[0].shape[0])
        for (v, y, x), out in zip(chunk, logits, strict=True):
            view, total, count, _ = state = open_views[v]
            h, w = view.shape[-2:]
            wh, ww = min(h - y, crop or h), min(w - x, crop or w)
            if total is None:
                total = state[1] = out.new_zeros(*out.shape[:2], h, w, dtype=torch.float32)
            total[..., y : y + wh, x : x + ww] += out[..., :wh, :ww]
            count[..., y : y + wh, x : x + ww] += 1
            state[3] -= 1
        chunk.clear()
        for v in sorted(v for v, state in open_views.items() if state[3] == 0):
            _, total, count, _ = open_views.pop(v)
            yield total / count

    for v, view in enumerate(views):
        windows = [(0, 0)] if crop is None else crops(view, crop, stride)
        if crop is None and chunk and open_views[chunk[0][0]][0].shape != view.shape:
            yield from run()
        count = torch.zeros(1, 1, *view.shape[-2:], device=view.device)
        open_views[v] = [view, None, count, len(windows)]
        for y, x in windows:
            chunk.append((v, y, x))
            if len(chunk) == batch_size:
                yield from run()
    if chunk:
        yield from run()


class FixedShapeModel:
    """``model`` compiled for inputs of exactly ``batch_size`` (``torch.compile``, no dynamic
    shapes; mode ``reduce-overhead``, i.e. CUDA graphs, on CUDA): a smaller batch is padded with
    copies of its first input and only its own outputs are returned. Compiled on first use per
    device."""

    def __init__(self, model: Model, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size
        self.compiled: dict[str, Model] = {}

    def __call__(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if n < self.batch_size:
            x = torch.cat([x, x[:1].expand(self.batch_size - n, *x.shape[1:])])
        kind = x.device.type
        if kind not in self.compiled:
            mode = "reduce-overhead" if kind == "cuda" else None
            self.compiled[kind] = torch.compile(self.model, mode=mode, dynamic=False)
        if kind == "cuda":  # the last call's outputs (read already) may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        return self.compiled[kind](x)[:n]


def sliding_logits(
    model: Model, image: Tensor, crop: int, stride: int, pad_value: Tensor, batch_size: int = 1
) -> Tensor:
    """Logits B×C×h×w of ``image`` from crop×crop windows, averaged where windows overlap."""
    return next(views_logits(model, [image], crop, stride, pad_value, batch_size))


class SegmentationInference:
    """Runs a model on B×3×H×W normalised images and returns class probabilities B×C×H×W.

    Args mirror ``conf/inference/*.yaml``: ``mode`` whole | slide; ``scales`` None (original
    resolution) or factors of ``base_size`` for the long side; ``flip`` adds the mirrored image;
    ``crop_size`` and ``stride_rate`` define the sliding windows; ``batch_size`` is how many
    windows (of a pass and its mirrored pass) one forward runs: the results are the same up to
    float rounding, and an accelerator runs many windows at once in about the time of one.
    ``name`` is the preset's (``inference=<name>``; ``custom`` for one built in Python): metrics
    files record it with the settings (``protocol``). ``compile``: the sliding windows run
    through ``FixedShapeModel`` (same results up to float rounding; not part of the protocol).
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
        batch_size: int = 8,
        name: str = "custom",
        compile: bool = False,
    ) -> None:
        one_of("inference.mode", mode, MODES)
        if scales is not None and (not scales or any(s <= 0 for s in scales)):
            raise ValueError(f"inference.scales must be null or positive factors, got {scales}")
        if not 0 < stride_rate <= 1:
            raise ValueError(f"inference.stride_rate must be in (0, 1], got {stride_rate}")
        self.batch_size = positive_int("inference.batch_size", batch_size)
        self.name, self.mode, self.flip = name, mode, flip
        self.scales = None if scales is None else [float(s) for s in scales]
        self.base_size, self.crop_size = base_size, crop_size
        self.stride = max(int(crop_size * stride_rate), 1)
        if not isinstance(compile, bool):
            raise ValueError(f"inference.compile={compile!r}: allowed: true, false")
        self.compile = compile
        self._windows: tuple[Model, FixedShapeModel] | None = None  # (model, compiled for it)

    @property
    def compiles_windows(self) -> bool:
        """``compile`` for sliding windows (a whole image has no fixed size: never compiled)."""
        return self.compile and self.mode == "slide"

    def windows_model(self, model: Model) -> Model:
        """What the windows run through: ``model``, or when ``compiles_windows`` its
        ``FixedShapeModel``, built once per model."""
        if not self.compiles_windows:
            return model
        if self._windows is None or self._windows[0] is not model:
            self._windows = (model, FixedShapeModel(model, self.batch_size))
        return self._windows[1]

    def protocol(self) -> dict[str, Any]:
        """What produced the numbers, as ``metrics/<split>.json`` records it: the preset's
        ``name``, the ``scales`` (None: the original size) of ``base_size`` (None without
        scales), the sliding windows' ``crop`` and ``stride`` in pixels (None: the whole image in
        one pass) and ``flip`` (the mirrored image added)."""
        sliding = self.mode == "slide"
        return {
            "name": self.name,
            "scales": self.scales,
            "base_size": None if self.scales is None else self.base_size,
            "crop": self.crop_size if sliding else None,
            "stride": self.stride if sliding else None,
            "flip": self.flip,
        }

    def describe(self) -> str:
        """One line for reports' titles: the ``protocol`` in words."""
        protocol = self.protocol()
        parts = [self.mode]
        if protocol["scales"] is None:
            parts.append("original size")
        else:
            parts.append(f"scales {protocol['scales']} × base {protocol['base_size']}")
        if protocol["crop"] is not None:
            parts.append(f"crop {protocol['crop']} stride {protocol['stride']}")
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
        return long_side_size(height, width, math.ceil(self.base_size * scale))

    @torch.no_grad()
    def __call__(self, model: Model, image: Tensor, pad_value: Sequence[float] | Tensor) -> Tensor:
        height, width = image.shape[-2:]
        pad = torch.as_tensor(pad_value, dtype=image.dtype, device=image.device)
        crop = self.crop_size if self.mode == "slide" else None
        model = self.windows_model(model)

        def views() -> Iterator[Tensor]:  # every pass's view, made when its windows are due
            for scale in self.scales or [None]:
                scaled = resize(image, self.scaled_size(height, width, scale))
                yield scaled
                if self.flip:
                    yield scaled.flip(-1)

        probs: Tensor | None = None
        logits = views_logits(model, views(), crop, self.stride, pad, self.batch_size)
        for i, view_logits in enumerate(logits):
            p = view_logits.float().softmax(1)
            p = resize(p.flip(-1) if self.flip and i % 2 == 1 else p, (height, width))
            probs = p if probs is None else probs + p
        assert probs is not None
        return probs / self.passes
