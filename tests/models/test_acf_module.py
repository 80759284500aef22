"""ACFModule: the two attention impls give the same module, shapes on odd maps, the prior."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from cfnet.models.acf import ACFModule


def module_pair(phi: str = "conv", heads: int = 2, k: int = 2):
    torch.manual_seed(0)
    # float64: some gradients are zero in exact arithmetic (Ψ's bias shifts every value alike and
    # the train-mode BN after the projection removes it), so float32 would compare rounding noise.
    naive = ACFModule(16, heads, k, phi, acf_dropout=0.0, attention_impl="naive").double()
    sdpa = copy.deepcopy(naive)
    sdpa.impl = "sdpa"
    return naive, sdpa


@pytest.mark.parametrize("phi", ["conv", "dilated_ffn"])
@pytest.mark.parametrize("heads, k", [(1, 1), (2, 2), (4, 4)])
def test_naive_and_sdpa_modules_agree_with_gradients(phi, heads, k):
    naive, sdpa = module_pair(phi, heads, k)
    x = torch.randn(2, 16, 9, 7, dtype=torch.float64)
    outs, grads = [], []
    for module in (naive, sdpa):
        xi = x.clone().requires_grad_()
        out = module.train()(xi)
        out.pow(2).sum().backward()
        outs.append(out)
        grads.append([xi.grad] + [p.grad for p in module.parameters()])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-10)
    for g_sdpa, g_naive in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_sdpa, g_naive, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("phi", ["conv", "dilated_ffn"])
@pytest.mark.parametrize("heads, k", [(1, 1), (4, 1), (2, 2), (2, 4)])
def test_module_runs_on_the_fused_kernel(phi, heads, k):
    """The module's real tensor layouts (views of conv outputs) must reach the flash kernel;
    restricted to it, a silent fallback to the O(N·M) math kernel raises instead."""
    module = ACFModule(16, heads, k, phi, acf_dropout=0.1, attention_impl="sdpa").train()
    x = torch.randn(2, 16, 9, 7, requires_grad=True)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        module(x).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("size", [(1, 1), (5, 5), (8, 8), (13, 6)])
def test_residual_shape_and_pooled_key_grid(size):
    module = ACFModule(16, 2, 2, "conv", 0.1, "sdpa").eval()
    x = torch.randn(1, 16, *size)
    assert module(x).shape == x.shape
    maps = module.cooccurrence(x)
    h, w = size
    # 3×3 stride-2 pooling with padding 1: ceil(h/2)·ceil(w/2) keys, odd sizes included.
    assert maps.key_size == (-(-h // 2), -(-w // 2))
    assert maps.probability.shape == (1, 2, h * w, maps.key_size[0] * maps.key_size[1])
    assert maps.components.shape == (1, 2, 2, h * w, maps.key_size[0] * maps.key_size[1])
    torch.testing.assert_close(maps.probability.sum(-1), torch.ones(1, 2, h * w))
    torch.testing.assert_close(maps.prior.sum(-1), torch.ones(1, 2))


def test_prior_depends_on_the_scene():
    """π = softmax(W·mean(query)) is image-specific: two different scenes, two different priors."""
    module = ACFModule(16, 2, 4, "conv", 0.0, "sdpa").eval()
    torch.manual_seed(1)
    priors = module.cooccurrence(torch.randn(2, 16, 6, 6)).prior
    assert priors.shape == (2, 2, 4)
    assert not torch.allclose(priors[0], priors[1])
    assert module.prior is not None and module.prior.weight.shape == (4, 4 * 8)  # W ∈ R^{K×d_k}


def test_k1_has_no_prior_parameters():
    module = ACFModule(16, 2, 1, "conv", 0.0, "sdpa")
    assert module.prior is None
    torch.testing.assert_close(
        module.cooccurrence(torch.randn(1, 16, 4, 4)).prior, torch.ones(1, 2, 1)
    )


def test_dropout_acts_on_features_only_in_training():
    module = ACFModule(16, 2, 2, "conv", 0.5, "sdpa")
    x = torch.randn(1, 16, 6, 6)
    module.eval()
    torch.testing.assert_close(module(x), module(x))
    module.train()
    assert not torch.allclose(module(x), module(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"heads": 0}, "heads=0: must be a positive integer"),
        ({"k": 0}, "k=0: must be a positive integer"),
        ({"k": -2}, "k=-2: must be a positive integer"),
        ({"channels": 18, "heads": 4}, r"heads=4: channels \(18\) must be divisible by heads"),
        ({"phi": "mlp"}, "phi='mlp': allowed: conv, dilated_ffn"),
        ({"attention_impl": "flash"}, "attention_impl='flash': allowed: naive, sdpa"),
        ({"acf_dropout": 1.5}, r"acf_dropout=1.5: must be a number in \[0, 1\)"),
    ],
)
def test_invalid_arguments_name_the_key(kwargs, match):
    args = {"channels": 16, "heads": 2, "k": 2, "phi": "conv", "acf_dropout": 0.0}
    args["attention_impl"] = "sdpa"
    with pytest.raises(ValueError, match=match):
        ACFModule(**{**args, **kwargs})
