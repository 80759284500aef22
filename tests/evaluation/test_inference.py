"""Evaluation protocols (cfnet.evaluation.inference): whole, sliding window, multi-scale + flip."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from cfnet.evaluation.inference import SegmentationInference, resize, sliding_logits, window_starts
from support.configs import CONF_DIR, compose_config, compose_model

PAD = torch.tensor([-2.0, -1.5, -1.8])


def protocol(**overrides) -> SegmentationInference:
    args = dict(
        mode="whole", scales=None, flip=False, base_size=64, crop_size=32, stride_rate=2 / 3
    )
    return SegmentationInference(**(args | overrides))


class Pointwise(nn.Module):
    """A 1×1 convolution: each output pixel sees only its own input pixel, so windows, padding
    and the order of pixels cannot change it (the case where sliding must equal whole)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 1)
        self.calls: list[tuple[int, int]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape[-2:]))
        return self.conv(x)


class Skewed(nn.Module):
    """A 1×3 convolution with asymmetric weights: not mirror-symmetric, so flip matters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))

    def forward(self, x):
        return self.conv(x)


@pytest.fixture(scope="module")
def cfnet_model():
    cfg = compose_model("cfnet", ["model.backbone=resnet10t", "model.channels=16"], num_classes=5)
    return instantiate(cfg.model).eval()


def test_whole_at_original_size_equals_plain_inference(cfnet_model):
    image = torch.randn(1, 3, 37, 53)
    probs = protocol()(cfnet_model, image, PAD)
    with torch.no_grad():
        expected = cfnet_model(image).softmax(1)
    assert torch.equal(probs, expected)


def test_scale_one_without_flip_equals_plain_inference(cfnet_model):
    """scales=[1.0] with base_size = the long side: no resize, one pass, same probabilities."""
    image = torch.randn(1, 3, 40, 64)
    probs = protocol(scales=[1.0], base_size=64)(cfnet_model, image, PAD)
    with torch.no_grad():
        assert torch.equal(probs, cfnet_model(image).softmax(1))


@pytest.mark.parametrize("size", [(70, 95), (32, 32), (20, 90), (33, 31)])
def test_sliding_window_equals_whole_for_a_pointwise_model(size):
    model, image = Pointwise(), torch.randn(1, 3, *size)
    whole = protocol()(model, image, PAD)
    slide = protocol(mode="slide")(model, image, PAD)
    torch.testing.assert_close(slide, whole, rtol=0, atol=1e-6)
    assert all(call == (32, 32) for call in model.calls[1:])  # every window is a full crop


def test_sliding_windows_cover_the_image_with_the_authors_stride():
    assert window_starts(1000, 480, 320) == [0, 320, 640]  # 640 + 480 ≥ 1000
    assert window_starts(480, 480, 320) == [0]
    assert window_starts(481, 480, 320) == [0, 320]
    model = Pointwise()
    sliding_logits(model, torch.randn(1, 3, 70, 95), crop=32, stride=21, pad_value=PAD)
    assert len(model.calls) == len(window_starts(70, 32, 21)) * len(window_starts(95, 32, 21))


def test_sliding_window_pads_with_normalised_black():
    seen = []

    def model(x):
        seen.append(x.clone())
        return x[:, :2]

    image = torch.zeros(1, 3, 10, 12)
    sliding_logits(model, image, crop=16, stride=10, pad_value=PAD)
    assert seen[0].shape[-2:] == (16, 16)
    assert torch.equal(seen[0][0, :, 12, 13], PAD)  # bottom-right padding is "black"
    assert torch.equal(seen[0][0, :, :10, :12], image[0])


def test_flip_averages_the_mirrored_pass():
    model, image = Skewed(), torch.randn(1, 3, 9, 14)
    probs = protocol(flip=True)(model, image, PAD)
    with torch.no_grad():
        plain = model(image).softmax(1)
        mirrored = model(image.flip(-1)).softmax(1).flip(-1)
    torch.testing.assert_close(probs, (plain + mirrored) / 2)
    assert not torch.allclose(plain, mirrored)  # the test model really is not symmetric


def test_multi_scale_resizes_by_the_long_side_and_back():
    p = protocol(scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], base_size=520)
    assert p.scaled_size(300, 500, 0.75) == (234, 390)  # long side ceil(520 × 0.75) = 390
    assert p.scaled_size(500, 300, 1.75) == (910, 546)
    model, image = Skewed(), torch.randn(1, 3, 30, 50)
    probs = protocol(scales=[0.5, 1.5], base_size=50)(model, image, PAD)
    with torch.no_grad():
        expected = sum(
            resize(model(resize(image, size)).softmax(1), (30, 50)) for size in [(15, 25), (45, 75)]
        )
    torch.testing.assert_close(probs, expected / 2)
    assert probs.shape == (1, 4, 30, 50)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 30, 50))  # still probabilities


def test_presets_compose_with_the_datasets_scales():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        voc = compose(
            "evaluate", overrides=["ckpt_path=x", "dataset=pascal_voc", "inference=ms_flip"]
        )
        city = compose(
            "evaluate", overrides=["ckpt_path=x", "dataset=cityscapes", "inference=ms_flip"]
        )
        slide = compose(
            "evaluate", overrides=["ckpt_path=x", "dataset=pascal_voc", "inference=slide"]
        )
    ms = instantiate(voc.inference)
    assert ms.scales == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and ms.flip and ms.mode == "slide"
    assert (ms.base_size, ms.crop_size, ms.stride) == (520, 480, 320) and ms.passes == 12
    assert instantiate(city.inference).scales == [0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    single = instantiate(slide.inference)
    assert single.scales == [1.0] and not single.flip and single.passes == 1
    # what metrics/<split>.json records (docs/inference.md): VOC's base 520, crop 480, 2/3 stride
    assert ms.protocol() == {
        "name": "ms_flip", "scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "base_size": 520,
        "crop": 480, "stride": 320, "flip": True,
    }  # fmt: skip
    assert single.protocol() == {
        "name": "slide", "scales": [1.0], "base_size": 520, "crop": 480, "stride": 320,
        "flip": False,
    }  # fmt: skip
    whole = instantiate(compose_config("evaluate", ["ckpt_path=x"]).inference)
    assert whole.protocol() == {
        "name": "whole", "scales": None, "base_size": None, "crop": None, "stride": None,
        "flip": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    "override, match",
    [
        ({"mode": "tiles"}, "inference.mode='tiles': allowed: "),
        ({"scales": [1.0, 0.0]}, "inference.scales must be"),
        ({"stride_rate": 1.5}, "inference.stride_rate"),
    ],
)
def test_bad_protocol_settings_are_named(override, match):
    with pytest.raises(ValueError, match=match):
        protocol(**override)
