"""Trainer/model switches: channels_last (on by default) and torch.compile (auto: where it pays)."""

from __future__ import annotations

import math

import torch
from hydra.utils import instantiate

from support.configs import TINY_NET, TINY_RUN, compose_config
from support.training import train_in_process


def test_channels_last_off_trains_too(tmp_path):
    metrics = train_in_process(
        [*TINY_RUN, "module.channels_last=false", "trainer.fast_dev_run=true"], tmp_path
    )
    assert math.isfinite(metrics["train/loss"])


def test_channels_last_head_gives_the_same_logits_in_nhwc():
    """The concatenation with the broadcast GP map is put back in NHWC: same numbers."""
    cfg = compose_config("train", TINY_NET)
    net = instantiate(cfg.model).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        reference = net(x)
        net.to(memory_format=torch.channels_last)
        nhwc = net(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(nhwc, reference, rtol=1e-4, atol=1e-4)


def test_defaults_and_compile_keeps_parameter_names():
    cfg = compose_config("train", TINY_NET)
    assert cfg.module.channels_last is True and cfg.module.compile == "auto"
    module = instantiate(cfg.module, channels_last=True, compile=True)
    names = [name for name, _ in module.net.named_parameters()]
    module.configure_model()
    conv = next(m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert module.net._compiled_call_impl is not None  # compiled in place, lazily
    assert hasattr(module.net.forward_train, "_torchdynamo_orig_callable")  # training path too
    assert [name for name, _ in module.net.named_parameters()] == names  # checkpoints unchanged


def test_optimized_metric_drives_the_best_checkpoint():
    """One key (conf/train.yaml optimized_metric) names the metric the best checkpoint is chosen
    by and that a sweep returns; the checkpoint callback follows it."""
    default = compose_config("train", [])
    assert default.optimized_metric == "val/mIoU"
    assert default.callbacks.model_checkpoint.monitor == "val/mIoU"
    cfg = compose_config("train", ["optimized_metric=val/mIoU_ambiguous"])
    assert cfg.callbacks.model_checkpoint.monitor == "val/mIoU_ambiguous"
