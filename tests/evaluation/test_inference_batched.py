"""Batched evaluation (``inference.batch_size``): the windows of a pass and its flipped pass run
several per forward, with the results of the one-window-at-a-time protocol up to float rounding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from cfnet.evaluation.inference import SegmentationInference
from support.configs import compose_config, compose_model

PAD = torch.tensor([-2.0, -1.5, -1.8])


@pytest.fixture(scope="module")
def cfnet_model():
    torch.manual_seed(0)
    cfg = compose_model("cfnet", ["model.backbone=resnet10t", "model.channels=16"], num_classes=5)
    return instantiate(cfg.model).eval()


def one_window_at_a_time(model, image, pad, scales, flip, base, crop, stride_rate):
    """The authors' protocol written out independently: every window its own forward pass."""
    height, width = image.shape[-2:]
    stride = int(crop * stride_rate)
    passes = []
    for scale in scales:
        long_side = math.ceil(base * scale)
        ratio = long_side / max(height, width)
        size = (max(round(height * ratio), 1), max(round(width * ratio), 1))
        scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for mirrored in [False, True] if flip else [False]:
            view = scaled.flip(-1) if mirrored else scaled
            h, w = size
            total, count = None, torch.zeros(h, w)
            ys = range(0, max(h - crop, 0) + stride, stride) if max(h, w) > crop else [0]
            xs = range(0, max(w - crop, 0) + stride, stride) if max(h, w) > crop else [0]
            for y in ys:
                for x in xs:
                    window = view[..., y : y + crop, x : x + crop]
                    wh, ww = window.shape[-2:]
                    padded = pad[None, :, None, None].expand(1, 3, crop, crop).clone()
                    padded[..., :wh, :ww] = window
                    with torch.no_grad():
                        out = model(padded)[..., :wh, :ww]
                    total = torch.zeros(1, out.shape[1], h, w) if total is None else total
                    total[..., y : y + wh, x : x + ww] += out
                    count[y : y + wh, x : x + ww] += 1
            probs = (total / count).softmax(1)
            probs = probs.flip(-1) if mirrored else probs
            passes.append(
                F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
            )
    return sum(passes) / len(passes)


def test_batched_ms_flip_equals_one_window_at_a_time(cfnet_model):
    """A scale whose views fit one window (0.5: 15×24), one whose views span 3×4 windows with
    overhanging last windows (1.75: 54×84), and a last chunk of windows smaller than the batch:
    every batch size gives the reference probabilities."""
    settings = dict(scales=[0.5, 1.75], flip=True, base_size=48, crop_size=32, stride_rate=2 / 3)
    image = torch.randn(1, 3, 45, 70)
    expected = one_window_at_a_time(cfnet_model, image, PAD, *settings.values())
    for batch_size in (1, 5, 64):
        batched = SegmentationInference(mode="slide", batch_size=batch_size, **settings)
        probs = batched(cfnet_model, image, PAD)
        torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-5)


def test_batching_runs_fewer_forward_passes(cfnet_model):
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return cfnet_model(x)

    image = torch.randn(1, 3, 45, 70)
    kwargs = dict(mode="slide", scales=[1.75], flip=True, base_size=48, crop_size=32)
    SegmentationInference(**kwargs, stride_rate=2 / 3, batch_size=1)(counted, image, PAD)
    windows = len(calls)
    calls.clear()
    SegmentationInference(**kwargs, stride_rate=2 / 3, batch_size=8)(counted, image, PAD)
    assert windows == 2 * 3 * 4  # 84×54 → 3 rows × 4 columns of 32² windows, image and mirror
    assert calls == [8, 8, 8]


def test_whole_image_and_its_mirror_run_in_one_forward(cfnet_model):
    calls = []
    image = torch.randn(1, 3, 37, 53)
    p = SegmentationInference(
        mode="whole", scales=None, flip=True, base_size=64, crop_size=32, stride_rate=2 / 3
    )
    probs = p(lambda x: calls.append(x.shape) or cfnet_model(x), image, PAD)
    with torch.no_grad():
        plain = cfnet_model(image).softmax(1)
        mirrored = cfnet_model(image.flip(-1)).softmax(1).flip(-1)
    assert calls == [(2, 3, 37, 53)]
    torch.testing.assert_close(probs, (plain + mirrored) / 2, rtol=1e-4, atol=1e-5)


def test_every_preset_has_the_batch_size_setting():
    for preset in ("whole", "slide", "ms_flip"):
        cfg = compose_config("evaluate", ["ckpt_path=x", f"inference={preset}"])
        assert instantiate(cfg.inference).batch_size == cfg.inference.batch_size == 8


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_batch_size_is_named(bad):
    with pytest.raises(ValueError, match=r"inference\.batch_size=.*: must be a positive integer"):
        SegmentationInference(
            mode="slide", scales=[1.0], flip=False, base_size=64, crop_size=32, stride_rate=0.5,
            batch_size=bad,
        )  # fmt: skip


def test_the_windows_of_every_scale_share_forward_passes(cfnet_model):
    """Scale 0.5's views fit one window each (2 windows), scale 1.75's span 3×4 (24): 26 windows
    in forwards of 8 across the scales, only the image's last one short; the probabilities are
    those of one window at a time."""
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return cfnet_model(x)

    settings = dict(scales=[0.5, 1.75], flip=True, base_size=48, crop_size=32, stride_rate=2 / 3)
    image = torch.randn(1, 3, 45, 70)
    probs = SegmentationInference(mode="slide", batch_size=8, **settings)(counted, image, PAD)
    assert calls == [8, 8, 8, 2]
    expected = one_window_at_a_time(cfnet_model, image, PAD, *settings.values())
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-5)


def test_whole_views_share_a_forward_only_with_views_of_their_size(cfnet_model):
    calls = []
    image = torch.randn(1, 3, 40, 60)
    p = SegmentationInference(
        mode="whole", scales=[0.5, 1.0], flip=True, base_size=60, crop_size=32, stride_rate=2 / 3
    )
    p(lambda x: calls.append(tuple(x.shape)) or cfnet_model(x), image, PAD)
    assert calls == [(2, 3, 20, 30), (2, 3, 40, 60)]


def test_compiled_windows_run_in_one_shape_with_the_eager_results(cfnet_model, monkeypatch):
    """``compile=true``: every forward gets exactly ``batch_size`` windows (the last one padded)
    and is compiled once; the results are the eager protocol's. ``torch.compile`` itself is
    replaced by a recorder here (the real compile: tests/test_precision.py)."""
    compiled, shapes = [], []

    def fake_compile(model, **options):
        compiled.append(options)
        return lambda x: shapes.append(tuple(x.shape)) or model(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    settings = dict(scales=[0.5, 1.75], flip=True, base_size=48, crop_size=32, stride_rate=2 / 3)
    image = torch.randn(1, 3, 45, 70)
    eager = SegmentationInference(mode="slide", batch_size=8, **settings)(cfnet_model, image, PAD)
    protocol = SegmentationInference(mode="slide", batch_size=8, compile=True, **settings)
    for _ in range(2):
        torch.testing.assert_close(protocol(cfnet_model, image, PAD), eager)
    assert compiled == [{"mode": None, "dynamic": False}]  # the CPU: no CUDA graphs
    assert set(shapes) == {(8, 3, 32, 32)} and len(shapes) == 2 * 4


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_a_bad_compile_setting_is_named(bad):
    with pytest.raises(ValueError, match=r"inference\.compile=.*: allowed: true, false"):
        SegmentationInference(
            mode="slide", scales=[1.0], flip=False, base_size=64, crop_size=32, stride_rate=0.5,
            compile=bad,
        )  # fmt: skip
