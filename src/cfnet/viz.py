"""Pictures of segmentations: palette colouring, overlays, de-normalisation.

One implementation, reused by ``cfnet.predict``, the W&B callback and the notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch import Tensor

IGNORE_COLOUR = (255, 255, 255)


def palette_array(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A 256×3 uint8 lookup: class ids → RGB; ids outside the palette (e.g. ignore) are white."""
    lut = np.tile(np.asarray(IGNORE_COLOUR, np.uint8), (256, 1))
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """H×W class ids → H×W×3 RGB."""
    return palette_array(palette)[np.asarray(mask, np.uint8)]


def overlay(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5
) -> np.ndarray:
    """Blend the coloured mask over the RGB image (uint8 H×W×3)."""
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colorize(mask, palette)
    return blended.round().clip(0, 255).astype(np.uint8)


def palette_png(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """An indexed ('P' mode) PNG: pixel values are the class ids, the palette shows them."""
    image = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    image.putpalette(palette_array(palette).flatten().tolist())
    return image


def denormalize(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised 3×H×W tensor back to uint8 H×W×3 RGB."""
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    array = array * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return (array * 255).round().clip(0, 255).astype(np.uint8)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def ablation_bars(rows: Sequence[tuple[str, dict[str, float] | None]], metric: str, path) -> None:
    """Bar chart of one metric per ablation row (Table 2), saved as PNG."""
    plt = _pyplot()
    labels = [label for label, _ in rows]
    values = [100 * m[metric] if m and metric in m else float("nan") for _, m in rows]
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 1.5, 3.2))
    bars = ax.bar(range(len(rows)), values, color="#4C72B0")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_xticks(range(len(rows)), labels, rotation=15)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def kxh_heatmap(grid: dict[tuple[int, int], float | None], metric: str, path) -> None:
    """Heat-map of one metric over heads H (rows) × mixtures K (columns) (Table 3), as PNG."""
    plt = _pyplot()
    heads = sorted({h for h, _ in grid})
    ks = sorted({k for _, k in grid})
    values = np.array(
        [[np.nan if grid.get((h, k)) is None else 100 * grid[(h, k)] for k in ks] for h in heads]
    )
    fig, ax = plt.subplots(figsize=(1.2 * len(ks) + 2, 1.0 * len(heads) + 1.5))
    image = ax.imshow(values, cmap="viridis")
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j, i, "—" if np.isnan(value) else f"{value:.1f}", ha="center", va="center", color="w"
        )
    ax.set_xticks(range(len(ks)), [f"K={k}" for k in ks])
    ax.set_yticks(range(len(heads)), [f"H={h}" for h in heads])
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
