"""Fine-tuning a model: ``model.init_from`` and ``model.freeze_backbone``, on the plain model.

``init_from`` against the source checkpoint read independently (``torch.load``), tensor by tensor,
from a ``.ckpt``, an exported ``.safetensors`` and a saved directory (``save_pretrained``); a file
of another architecture refused in one line naming what differs. ``freeze_backbone`` against the
backbone's bytes before and after real SGD steps. (The CLI journey that uses both:
``tests/test_finetune.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cfnet.export import save_safetensors
from cfnet.lit import SegmentationModule
from cfnet.models import CFNet, DatasetInfo
from cfnet.models.init_from import class_layers
from support.references import segmentor_tensors
from support.training import make_checkpoint

TINY = {"backbone": "resnet10t", "channels": 16, "aux": False}  # = make_checkpoint's model
NORM = ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])  # mean, std


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A 7-class checkpoint (random weights: every tensor differs from a fresh model's)."""
    return make_checkpoint(tmp_path_factory.mktemp("source"), "synthetic")


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors", "hub"])
def test_init_from_loads_every_matching_tensor_and_starts_classifiers_fresh(
    fmt, source, tmp_path, capsys
):
    path = source
    if fmt == "safetensors":
        path = tmp_path / "model.safetensors"
        save_safetensors(SegmentationModule.from_checkpoint(source), path)
    if fmt == "hub":  # a directory of save_pretrained (cfnet.export format=hub)
        path = tmp_path / "saved"
        net = SegmentationModule.from_checkpoint(source).net
        names, palette = [f"c{i}" for i in range(7)], [[0, 0, 0]] * 7
        net.dataset_info = DatasetInfo(None, names, palette, *NORM, ignore_index=255)
        net.save_pretrained(path)
    expected = segmentor_tensors(source)
    torch.manual_seed(1)
    model = CFNet(3, **TINY, init_from=str(path))
    mine = model.state_dict()
    fresh = {"head.classifier.1.weight", "head.classifier.1.bias"}
    assert class_layers(model) == fresh
    for name, tensor in mine.items():
        if name in fresh:
            assert tensor.shape[0] == 3 and expected[name].shape[0] == 7
            assert not torch.equal(tensor, expected[name][:3]), name
        else:
            assert torch.equal(tensor, expected[name]), name
    table = capsys.readouterr().out
    assert f"init_from {path} (CFNet resnet10t, 7 classes):" in table
    assert f"loaded  {len(mine) - 2:4d} tensors (backbone " in table
    assert "fresh      2 tensors: head.classifier.1.bias, head.classifier.1.weight" in table
    assert "unused     2 tensors of the file: head.classifier.1.bias, head.classifier.1.weight" in (
        table
    )


def test_init_from_another_architecture_is_refused_naming_what_differs(source):
    with pytest.raises(ValueError) as err:
        CFNet(3, **{**TINY, "backbone": "resnet50d"}, init_from=str(source))
    message = str(err.value)
    assert message.startswith(f"init_from={str(source)!r}: only ") and "\n" not in message
    assert "another architecture or backbone (backbone resnet10t → resnet50d)" in message
    with pytest.raises(ValueError) as err:  # everything matches but the Enc module
        CFNet(3, **TINY, use_enc=True, init_from=str(source))
    message = str(err.value)
    assert "that are not class layers do not match the file: head.enc." in message
    assert "(not in the file)" in message and message.endswith("use_enc False → True")


def test_freeze_backbone_keeps_weights_and_batchnorm_statistics_bit_identical():
    torch.manual_seed(0)
    model = CFNet(4, **TINY, freeze_backbone=True).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.conv[0].weight.clone()
    assert not model.backbone.training and not any(m.training for m in model.backbone.modules())
    trainable = [p for p in model.parameters() if p.requires_grad]  # as configure_optimizers
    assert not any(p.requires_grad for p in model.backbone.parameters())
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        logits = model.forward_train(torch.randn(2, 3, 32, 32)).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 32, 32)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # weights and running statistics
    assert not torch.equal(model.head.conv[0].weight, head_before)  # the head did train
