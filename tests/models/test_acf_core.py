"""mixture_of_softmaxes_attention: both impls against an explicit float64 formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from cfnet.models.acf import cooccurrence_probability, mixture_of_softmaxes_attention


def make_inputs(b, h, k, n, m, d, dv, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, h, k, n, d, generator=g, dtype=dtype)
    key = torch.randn(b, h, k, m, d, generator=g, dtype=dtype)
    value = torch.randn(b, h, m, dv, generator=g, dtype=dtype)
    prior = torch.randn(b, h, k, generator=g, dtype=dtype).softmax(-1)
    return [t.requires_grad_() for t in (query, key, value, prior)]


def explicit_formula(query, key, value, prior, scale):
    """z_t = Σ_c [Σ_k π_k exp(s·⟨q_tk,k_ck⟩) / Σ_i exp(s·⟨q_tk,k_ik⟩)] v_c, written as loops."""
    b, h, k, n, _ = query.shape
    m = key.shape[3]
    out = torch.zeros(b, h, n, value.shape[-1], dtype=query.dtype)
    for bi in range(b):
        for hi in range(h):
            for t in range(n):
                z = 0
                for ki in range(k):
                    sims = torch.stack(
                        [
                            scale * torch.dot(query[bi, hi, ki, t], key[bi, hi, ki, c])
                            for c in range(m)
                        ]
                    )
                    p = torch.exp(sims) / torch.exp(sims).sum()
                    z = z + prior[bi, hi, ki] * (p[:, None] * value[bi, hi]).sum(0)
                out[bi, hi, t] = z
    return out


def grads(fn, inputs):
    out = fn(*inputs)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return out, torch.autograd.grad((out * weights).sum(), inputs)


SHAPES = [
    # b, h, k, n, m, d, dv -- K ∈ {1, 2, 4}, several H, N ≠ M, d ≠ dv both ways
    (2, 1, 1, 7, 5, 4, 4),
    (1, 3, 2, 9, 4, 6, 3),
    (2, 2, 4, 6, 11, 3, 5),
    (1, 2, 2, 5, 5, 8, 8),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}h{}k{}n{}m{}d{}dv{}".format(*s))
def test_impls_match_explicit_formula_values_and_gradients(shape):
    inputs = make_inputs(*shape)
    k, d = shape[2], shape[5]
    scale = 1 / math.sqrt(k * d)  # the authors' temperature, written out independently
    ref, ref_grads = grads(lambda *x: explicit_formula(*x, scale=scale), inputs)
    for impl in ("naive", "sdpa"):
        out, out_grads = grads(
            lambda *x, impl=impl: mixture_of_softmaxes_attention(*x, impl=impl), inputs
        )
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10, msg=f"{impl} values")
        for name, g, rg in zip(
            ("query", "key", "value", "prior"), out_grads, ref_grads, strict=True
        ):
            torch.testing.assert_close(g, rg, rtol=1e-9, atol=1e-10, msg=f"{impl} d/d{name}")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}h{}k{}n{}m{}d{}dv{}".format(*s))
def test_impls_agree_in_float32(shape):
    b, h, k, n, m, d, dv = shape
    inputs = make_inputs(b, h, k, 3 * n, 5 * m, d, dv, dtype=torch.float32, seed=1)
    naive, naive_grads = grads(lambda *x: mixture_of_softmaxes_attention(*x, impl="naive"), inputs)
    sdpa, sdpa_grads = grads(lambda *x: mixture_of_softmaxes_attention(*x, impl="sdpa"), inputs)
    torch.testing.assert_close(sdpa, naive, rtol=1e-5, atol=1e-5)
    for g_sdpa, g_naive in zip(sdpa_grads, naive_grads, strict=True):
        torch.testing.assert_close(g_sdpa, g_naive, rtol=1e-4, atol=1e-5)


def test_default_scale_is_the_authors_temperature():
    # logits / sqrt(d_k), d_k = K·d: an explicit scale equal to that gives the same output.
    inputs = make_inputs(1, 2, 2, 6, 5, 4, 4)
    default = mixture_of_softmaxes_attention(*inputs)
    explicit = mixture_of_softmaxes_attention(*inputs, scale=1 / math.sqrt(2 * 4))
    torch.testing.assert_close(default, explicit)
    other = mixture_of_softmaxes_attention(*inputs, scale=1 / math.sqrt(4))
    assert not torch.allclose(default, other)


@pytest.mark.parametrize("impl", ["naive", "sdpa"])
def test_k1_is_ordinary_softmax_attention(impl):
    query, key, value, prior = make_inputs(2, 3, 1, 10, 7, 5, 6)
    assert torch.all(prior == 1)
    out = mixture_of_softmaxes_attention(query, key, value, prior, impl=impl)
    attn = (query[:, :, 0] @ key[:, :, 0].transpose(-1, -2) / math.sqrt(5)).softmax(-1)
    torch.testing.assert_close(out, attn @ value)


@pytest.mark.parametrize("impl", ["naive", "sdpa"])
def test_one_hot_prior_selects_one_component(impl):
    query, key, value, _ = make_inputs(1, 2, 3, 6, 5, 4, 4)
    prior = F.one_hot(torch.tensor([[2, 0]]), 3).double()
    out = mixture_of_softmaxes_attention(query, key, value, prior, impl=impl)
    scale = 1 / math.sqrt(3 * 4)
    for head, comp in ((0, 2), (1, 0)):
        attn = (query[0, head, comp] @ key[0, head, comp].T * scale).softmax(-1)
        torch.testing.assert_close(out[0, head], attn @ value[0, head])


def test_cooccurrence_probability_is_a_distribution():
    query, key, _, prior = make_inputs(2, 2, 2, 6, 9, 4, 4)
    p = cooccurrence_probability(query, key, prior)
    assert p.shape == (2, 2, 6, 9)
    assert torch.all(p >= 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 2, 6, dtype=p.dtype))


@pytest.mark.parametrize("d, dv", [(16, 16), (8, 16), (16, 8)])
def test_sdpa_impl_runs_on_the_fused_kernel(d, dv):
    """Flash-only: if PyTorch had to fall back to the math kernel this would raise."""
    query, key, value, prior = make_inputs(1, 2, 2, 33, 17, d, dv, dtype=torch.float32)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = mixture_of_softmaxes_attention(query, key, value, prior, impl="sdpa")
        out.sum().backward()
    naive = mixture_of_softmaxes_attention(query, key, value, prior, impl="naive")
    torch.testing.assert_close(out, naive, rtol=1e-5, atol=1e-5)


def test_bfloat16_inputs_are_supported():
    inputs = [t.detach().bfloat16() for t in make_inputs(1, 2, 2, 16, 8, 8, 8)]
    out = mixture_of_softmaxes_attention(*inputs, impl="sdpa")
    ref = mixture_of_softmaxes_attention(*[t.double() for t in inputs], impl="naive")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda q, k, v, p: (q[0], k, v, p), "query and key must be 5-D"),
        (lambda q, k, v, p: (q, k[..., :-1], v, p), "key .* does not match query"),
        (lambda q, k, v, p: (q, k, v[:, :, :-1], p), "value must be"),
        (lambda q, k, v, p: (q, k, v, p[..., :1]), "prior must be"),
    ],
)
def test_bad_shapes_are_named(mutate, match):
    inputs = make_inputs(1, 2, 2, 4, 3, 4, 4)
    with pytest.raises(ValueError, match=match):
        mixture_of_softmaxes_attention(*mutate(*inputs))


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="impl must be one of"):
        mixture_of_softmaxes_attention(*make_inputs(1, 1, 1, 2, 2, 2, 2), impl="flash")
