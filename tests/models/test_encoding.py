"""EncNet's residual Encoding layer against its definition, written as loops."""

from __future__ import annotations

import torch

from cfnet.models.encoding import EncModule, Encoding


def test_encoding_matches_its_definition():
    torch.manual_seed(0)
    layer = Encoding(channels=5, codewords=3).double()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    features = x.flatten(2).transpose(1, 2)  # B×N×D
    c, s = layer.codewords, layer.scale
    expected = torch.zeros(2, 3, 5, dtype=torch.float64)
    for b in range(2):
        for i in range(12):
            dist = torch.stack([s[k] * (features[b, i] - c[k]).pow(2).sum() for k in range(3)])
            a = dist.softmax(0)  # a_ik
            for k in range(3):
                expected[b, k] += a[k] * (features[b, i] - c[k])
    torch.testing.assert_close(layer(x), expected)


def test_enc_module_reweights_channels_and_predicts_presence():
    module = EncModule(channels=8, num_classes=4, codewords=6).train()
    x = torch.randn(2, 8, 5, 5)
    features, se_logits = module(x)
    assert features.shape == x.shape and se_logits.shape == (2, 4)
    assert torch.all(features >= 0)  # relu(x + x·γ)
