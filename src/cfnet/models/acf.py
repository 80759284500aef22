"""The Co-occurrent Feature Model (CFM) and the Aggregated Co-occurrent Feature (ACF) module.

Paper (Zhang et al., CVPR 2019, Sec. 2) symbols and the names used here:

    x_t, x_c   target / co-occurrent features of the input map X (positions t and c)
    Φ          shared feature transform: v_{x_t} = Φt(x_t) is the *query*,
               u_{x_c} = Φc(x_c) the *key* (Φt and Φc share weights; keys come from a 3×3,
               stride-2 average pool of X)
    s^k        similarity of mixture component k: ⟨u_{x_c,k}, v_{x_t,k}⟩ on the k-th d-wide chunk
    π_k        contextual prior: softmax_k(w_kᵀ v̄_x), v̄_x = mean_t v_{x_t} (the mean *query*)
    p(c|t)     Σ_k π_k softmax_c(scale · s^k(x_c, x_t))          (Eq. 2, mixture of softmaxes)
    ψ_c        co-occurrent context Ψ(x_c), the *value*
    z_t        Σ_c p(c|t) ψ_c                                      (Eq. 3)

A note on "v" in the paper: its v_{x_t} is the target representation Φt(x_t), i.e. our query, not
the value ψ. The prior is therefore computed from the mean query, which is also what the authors'
code does (``MixtureOfSoftMaxACF``: ``bar_qt = mean(qt)``) -- paper and code agree.

Two implementations of the same math are kept side by side:

* ``impl="naive"`` materialises p(c|t) (B×H×N×M). It is the readable reference and what the
  attention visualisations read.
* ``impl="sdpa"`` never builds the N×M matrix. Because z_t is linear in each component's
  probability rows, Σ_k π_k softmax(q_k k_kᵀ) ψ = Σ_k π_k SDPA(q_k, k_k, ψ): the K components are
  stacked as extra heads of a single ``scaled_dot_product_attention`` call and mixed afterwards.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cfnet.utils.checks import allowed, divisors, one_of, positive_int, probability

AttentionImpl = Literal["naive", "sdpa"]
ATTENTION_IMPLS: tuple[str, ...] = ("naive", "sdpa")
PHI_TRANSFORMS: tuple[str, ...] = ("conv", "dilated_ffn")


def _check_shapes(query: Tensor, key: Tensor, value: Tensor, prior: Tensor) -> None:
    """Raise a ValueError naming the offending argument; shape bugs are otherwise silent here."""
    if query.dim() != 5 or key.dim() != 5:
        raise ValueError(
            f"query and key must be 5-D (B×H×K×N×d, B×H×K×M×d), got query {tuple(query.shape)} "
            f"and key {tuple(key.shape)}"
        )
    b, h, k, _, d = query.shape
    if key.shape[:3] != (b, h, k) or key.shape[-1] != d:
        raise ValueError(f"key {tuple(key.shape)} does not match query {tuple(query.shape)}")
    m = key.shape[3]
    if value.dim() != 4 or value.shape[:3] != (b, h, m):
        raise ValueError(f"value must be B×H×M×dv = ({b}, {h}, {m}, dv), got {tuple(value.shape)}")
    if prior.shape != (b, h, k):
        raise ValueError(f"prior must be B×H×K = ({b}, {h}, {k}), got {tuple(prior.shape)}")


def default_scale(k: int, d: int) -> float:
    """The authors' temperature: logits divided by sqrt(d_k) with d_k = K·d (not sqrt(d))."""
    return 1.0 / math.sqrt(k * d)


def cooccurrence_components(query: Tensor, key: Tensor, scale: float) -> Tensor:
    """softmax_c(scale·⟨q_tk, k_ck⟩) per mixture component: B×H×K×N×M."""
    logits = torch.einsum("bhknd,bhkmd->bhknm", query, key) * scale
    return logits.softmax(dim=-1)


def cooccurrence_probability(
    query: Tensor, key: Tensor, prior: Tensor, scale: float | None = None
) -> Tensor:
    """p(c|t) = Σ_k π_k softmax_c(scale·⟨q_tk, k_ck⟩), Eq. 2 of the paper: B×H×N×M.

    Each row sums to one. This materialises the full N×M matrix; use it for inspection only.
    """
    _, _, k, _, d = query.shape
    scale = default_scale(k, d) if scale is None else scale
    return mix_components(prior, cooccurrence_components(query, key, scale))


def mix_components(prior: Tensor, components: Tensor) -> Tensor:
    """Σ_k π_k components_k: B×H×K, B×H×K×N×M → B×H×N×M."""
    return torch.einsum("bhk,bhknm->bhnm", prior, components)


def _naive(query: Tensor, key: Tensor, value: Tensor, prior: Tensor, scale: float) -> Tensor:
    p = cooccurrence_probability(query, key, prior, scale)  # p(c|t): B×H×N×M
    return p @ value  # z_t = Σ_c p(c|t) ψ_c: B×H×N×dv


def _unit_stride_last(t: Tensor) -> Tensor:
    """Copy only if needed: SDPA's fused kernels accept any layout whose last dim is dense."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _sdpa(query: Tensor, key: Tensor, value: Tensor, prior: Tensor, scale: float) -> Tensor:
    b, h, k, n, d = query.shape
    m, dv = key.shape[3], value.shape[-1]
    # Fused kernels need 4-D inputs whose last dim has stride 1, else PyTorch silently falls back
    # to the O(N·M) math kernel. The K components become extra heads: B×(H·K)×N×d.
    q = _unit_stride_last(query.reshape(b, h * k, n, d))
    kk = _unit_stride_last(key.reshape(b, h * k, m, d))
    # Every component attends over the same values ψ (not split per mixture): repeat them K times.
    # (For K = 1 the reshape is a view of ``value``, whose last dim may be strided: check it too.)
    v = _unit_stride_last(value.unsqueeze(2).expand(b, h, k, m, dv).reshape(b, h * k, m, dv))
    # The CPU flash kernel (and CUDA flash) also need d == dv. Zero-padding the narrower side is
    # exact: zeros add nothing to ⟨q, k⟩, and padded value channels are sliced off again.
    if d < dv:
        q, kk = F.pad(q, (0, dv - d)), F.pad(kk, (0, dv - d))
    elif dv < d:
        v = F.pad(v, (0, d - dv))
    z = F.scaled_dot_product_attention(q, kk, v, scale=scale)[..., :dv]  # B×(H·K)×N×dv
    # Mix the components with the prior: Σ_k π_k z_k.
    return torch.einsum("bhk,bhknv->bhnv", prior, z.reshape(b, h, k, n, dv))


def mixture_of_softmaxes_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    prior: Tensor,
    scale: float | None = None,
    impl: AttentionImpl = "sdpa",
) -> Tensor:
    """Mixture-of-softmaxes aggregation z_t = Σ_c [Σ_k π_k softmax_c(s·⟨q_tk, k_ck⟩)] v_c.

    Args:
        query: B×H×K×N×d target vectors v_{x_t}, chunked into K mixture components per head.
        key: B×H×K×M×d co-occurrent vectors u_{x_c}.
        value: B×H×M×dv co-occurrent contexts ψ_c, shared by all K components.
        prior: B×H×K mixture weights π (each row sums to one).
        scale: logit multiplier; default 1/sqrt(K·d), the authors' temperature.
        impl: ``"naive"`` (materialises p(c|t)) or ``"sdpa"`` (fused, O(N) memory). Same values and
            gradients up to float rounding.

    Returns:
        B×H×N×dv aggregated co-occurrent features z_t.
    """
    _check_shapes(query, key, value, prior)
    _, _, k, _, d = query.shape
    scale = default_scale(k, d) if scale is None else float(scale)
    if impl == "naive":
        return _naive(query, key, value, prior, scale)
    if impl == "sdpa":
        return _sdpa(query, key, value, prior, scale)
    raise ValueError(f"impl must be one of {ATTENTION_IMPLS}, got {impl!r}")


class CooccurrenceMaps(NamedTuple):
    """What one ACF module 'looks at', for visualisation (h×w query grid, h'×w' key grid)."""

    components: Tensor  # B×H×K×N×M  softmax_c of each mixture component
    prior: Tensor  # B×H×K       π
    probability: Tensor  # B×H×N×M     p(c|t) = Σ_k π_k components_k
    key_size: tuple[int, int]  # (h', w') of the pooled key grid, M = h'·w'
    query_size: tuple[int, int]  # (h, w) of the query grid (the feature map), N = h·w


class ACFModule(nn.Module):
    """Aggregated Co-occurrent Feature module: H heads × K mixtures over a C-channel map.

    Follows the authors' ``ACFModule``: per head d = d_v = C / H; Φ maps C → H·K·d (so each head has
    d_k = K·d query/key channels, chunked into K components), Ψ maps C → H·d_v; keys and values are
    read from a 3×3, stride-2 average pool of the input; heads are concatenated, projected back to C
    by a 1×1 conv without bias, batch-normed and added to the input (residual).

    Deliberate choices where paper and code differ:
    * Dropout (``acf_dropout``) acts on the aggregated co-occurrent features z, as the paper
      phrases it, not on the attention probabilities as the released code does: attention dropout
      would force SDPA off its fused kernel on CPU and would break the exact Σ_k π_k SDPA_k
      identity.
    * Φ is a 1×1 conv (``phi="conv"``, the released code's default). ``phi="dilated_ffn"`` is the
      paper's ablation setting "atrous rate 4 for Φ" (3×3 conv dilation 4 → BN → ReLU → 1×1 conv,
      the code's ``dffn``); it costs a 3×3 conv on the full map.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        k: int,
        phi: str,
        acf_dropout: float,
        attention_impl: AttentionImpl,
    ) -> None:
        """Args:
        channels: C, the input and output channels (the head's conv5 width).
        heads: H attention heads; each gets d = C / H query, key and value channels.
        k: K mixture components of the contextual prior π (1: a single softmax, no prior).
        phi: Φ: ``conv`` (1×1) or ``dilated_ffn`` (3×3 dilation 4 → BN → ReLU → 1×1).
        acf_dropout: Dropout on the aggregated co-occurrent features z.
        attention_impl: ``sdpa`` (fused scaled-dot-product attention, O(N) memory) or ``naive``
            (materialises p(c|t), the reference).

        The arguments are named as ``CFNet``'s (and the config's ``model.*`` keys), so an error
        names the key to change; the paper's values are ``CFNet``'s defaults, stated there once.
        """
        super().__init__()
        positive_int("channels", channels)
        positive_int("heads", heads)
        positive_int("k", k)
        if channels % heads:
            raise ValueError(
                f"heads={heads}: channels ({channels}) must be divisible by heads "
                f"(d = channels / heads per head); allowed: {allowed(divisors(channels))}"
            )
        one_of("phi", phi, PHI_TRANSFORMS)
        probability("acf_dropout", acf_dropout)
        one_of("attention_impl", attention_impl, ATTENTION_IMPLS)
        self.channels, self.heads, self.k, self.impl = channels, heads, k, attention_impl
        self.d = channels // heads  # per-component query/key width; also d_v per head
        qk_channels = heads * k * self.d  # H·d_k with d_k = K·d

        # Φ (shared by Φt and Φc) and Ψ; initialisation as in the authors' code.
        if phi == "conv":
            self.phi: nn.Module = nn.Conv2d(channels, qk_channels, 1)
            nn.init.normal_(self.phi.weight, std=math.sqrt(2.0 / (channels + k * self.d)))
        else:
            self.phi = nn.Sequential(
                nn.Conv2d(channels, qk_channels, 3, padding=4, dilation=4, bias=False),
                nn.BatchNorm2d(qk_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(qk_channels, qk_channels, 1),
            )
            nn.init.normal_(self.phi[-1].weight, std=math.sqrt(1.0 / (k * self.d)))
        self.psi = nn.Conv2d(channels, heads * self.d, 1)
        nn.init.normal_(self.psi.weight, std=math.sqrt(2.0 / (channels + self.d)))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        # Prior weights W ∈ R^{K×d_k}, shared by the heads (as in the code); none when K = 1.
        self.prior = nn.Linear(k * self.d, k, bias=False) if k > 1 else None
        if self.prior is not None:
            nn.init.uniform_(self.prior.weight, -(k**-0.5), k**-0.5)
        self.dropout = nn.Dropout(acf_dropout)
        self.proj = nn.Conv2d(heads * self.d, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[int, int]]:
        """x: B×C×h×w → query B×H×K×N×d, key B×H×K×M×d, value B×H×M×d, prior B×H×K."""
        b, _, h, w = x.shape
        heads, k, d = self.heads, self.k, self.d
        pooled = self.pool(x)  # B×C×h'×w', h' = ceil(h/2)
        key_size = (pooled.shape[-2], pooled.shape[-1])
        query = self.phi(x).view(b, heads, k, d, h * w).transpose(-1, -2)  # v_{x_t}
        key = self.phi(pooled).view(b, heads, k, d, -1).transpose(-1, -2)  # u_{x_c}
        value = self.psi(pooled).view(b, heads, d, -1).transpose(-1, -2)  # ψ_c
        if self.prior is None:
            prior = query.new_ones(b, heads, 1)
        else:
            mean_query = query.mean(dim=3).reshape(b, heads, k * d)  # v̄_x per head
            prior = self.prior(mean_query).softmax(dim=-1)  # π: B×H×K
        return query, key, value, prior, key_size

    def forward(self, x: Tensor) -> Tensor:
        """x: B×C×h×w → B×C×h×w (input + BN(proj(dropout(z))))."""
        b, _, h, w = x.shape
        query, key, value, prior, _ = self._project(x)
        z = mixture_of_softmaxes_attention(query, key, value, prior, impl=self.impl)  # B×H×N×d
        z = z.transpose(-1, -2).reshape(b, self.heads * self.d, h, w)
        return x + self.norm(self.proj(self.dropout(z)))

    @torch.no_grad()
    def cooccurrence(self, x: Tensor) -> CooccurrenceMaps:
        """The co-occurrence distributions this module computes for input x (eval helper)."""
        query, key, _, prior, key_size = self._project(x)
        scale = default_scale(self.k, self.d)
        components = cooccurrence_components(query, key, scale)
        probability = mix_components(prior, components)
        return CooccurrenceMaps(components, prior, probability, key_size, tuple(x.shape[-2:]))

    def extra_repr(self) -> str:
        c, h, k, d = self.channels, self.heads, self.k, self.d
        return f"channels={c}, heads={h}, k={k}, d={d}, impl={self.impl}"
