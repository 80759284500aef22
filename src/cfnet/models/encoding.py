"""EncNet's Context Encoding module (Zhang et al., CVPR 2018), the "+Enc" row of CFNet's Table 2.

It learns K codewords c_k and smoothing factors s_k, soft-assigns every feature x_i to them,
a_ik = softmax_k(-s_k‖x_i − c_k‖²) (the authors' scale s starts negative, so their softmax of
s_k‖·‖² is the same thing), aggregates the residuals e_k = Σ_i a_ik (x_i − c_k), and turns the mean
encoding into channel-wise attention γ (feature x ↦ relu(x + x·γ)) and into per-image class
presence logits for the Semantic Encoding (SE) loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Encoding(nn.Module):
    """Residual encoding layer: B×D×h×w → B×K×D."""

    def __init__(self, channels: int, codewords: int) -> None:
        super().__init__()
        self.codewords = nn.Parameter(torch.empty(codewords, channels))  # c_k: K×D
        self.scale = nn.Parameter(torch.empty(codewords))  # s_k: K
        bound = 1.0 / math.sqrt(codewords * channels)
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2).transpose(1, 2)  # B×N×D
        c = self.codewords
        # ‖x_i − c_k‖² = ‖x_i‖² − 2 x_i·c_k + ‖c_k‖², without a B×N×K×D intermediate.
        dist = x.pow(2).sum(-1, keepdim=True) - 2 * x @ c.t() + c.pow(2).sum(-1)  # B×N×K
        assign = (self.scale * dist).softmax(dim=-1)  # a_ik: B×N×K
        # e_k = Σ_i a_ik x_i − (Σ_i a_ik) c_k
        return assign.transpose(1, 2) @ x - assign.sum(1).unsqueeze(-1) * c  # B×K×D


class EncModule(nn.Module):
    """Context Encoding: features B×C×h×w → (re-weighted features, SE logits B×num_classes)."""

    def __init__(self, channels: int, num_classes: int, codewords: int) -> None:
        super().__init__()
        self.encoding = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            Encoding(channels, codewords),
            nn.BatchNorm1d(codewords),
            nn.ReLU(inplace=True),
        )
        self.attention = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())  # γ
        self.se_classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        encoded = self.encoding(x).mean(dim=1)  # B×C, mean over codewords
        gamma = self.attention(encoded)[:, :, None, None]
        return torch.relu(x + x * gamma), self.se_classifier(encoded)
