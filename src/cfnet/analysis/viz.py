"""Pictures of segmentations: palettes, overlays, panels, co-occurrence maps, ablation plots.

One implementation, reused by ``cfnet.predict`` (masks, overlays), the W&B callbacks (images),
``cfnet.report`` (ablation plots) and the notebooks (the README pictures).

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``), never
through ``pyplot``: no global figure state and no backend switching, so the same functions work
in scripts, in worker processes and inline in Jupyter, where a returned ``Figure`` displays itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cfnet.analysis.attention import AttentionByClass
    from cfnet.models.acf import CooccurrenceMaps

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


def new_figure(width: float, height: float) -> Figure:
    """A Figure of ``width`` × ``height`` inches with constrained layout (no pyplot)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def legend_handles(
    class_names: Sequence[str], palette: Sequence[Sequence[int]], present: Sequence[int] = ()
) -> list:
    """Colour patches for a legend: every class, or only the ids in ``present``."""
    from matplotlib.patches import Patch

    ids = sorted(set(present)) if len(present) else range(len(class_names))
    return [
        Patch(color=np.asarray(palette[i]) / 255, label=class_names[i])
        for i in ids
        if i < len(class_names)
    ]


def segmentation_panels(
    rows: Sequence[tuple[np.ndarray, Mapping[str, np.ndarray]]],
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    row_titles: Sequence[str] | None = None,
    size: float = 2.2,
) -> Figure:
    """Side-by-side panels, one row per image: the image, then each named mask in colour.

    ``rows`` holds (H×W×3 uint8 image, {"ground truth": mask, "CFNet": mask, ...}); every row must
    name the same masks. Pixels outside the palette (ignore, 255) are white.
    """
    if not rows:
        raise ValueError("segmentation_panels needs at least one (image, masks) row")
    names = list(rows[0][1])
    fig = new_figure(size * (1 + len(names)), size * len(rows) + 0.6)
    axes = fig.subplots(len(rows), 1 + len(names), squeeze=False)
    present: set[int] = set()
    for r, (image, masks) in enumerate(rows):
        if list(masks) != names:
            raise ValueError(f"row {r} names masks {list(masks)}, row 0 names {names}")
        panels = [("image", image)] + [(n, colorize(m, palette)) for n, m in masks.items()]
        for m in masks.values():
            present.update(int(v) for v in np.unique(m))
        for c, (title, picture) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=10)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=9)
    fig.legend(
        handles=legend_handles(class_names, palette, sorted(present)),
        loc="outside lower center",
        ncols=min(len(class_names), 8),
        fontsize=8,
        frameon=False,
    )
    return fig


def query_index(point: tuple[int, int], image_size: tuple[int, int], grid: tuple[int, int]) -> int:
    """The query cell t (row-major on the h×w grid) that holds image pixel (y, x)."""
    (y, x), (height, width), (h, w) = point, image_size, grid
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"query point {point} lies outside the {height}×{width} image")
    return (y * h // height) * w + x * w // width


def _key_map(row: Tensor, key_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """One row of attention over the h'×w' key grid, bilinearly resized to the image (display)."""
    grid = row.float().reshape(1, 1, *key_size)
    return torch.nn.functional.interpolate(
        grid, size=image_size, mode="bilinear", align_corners=False
    )[0, 0].numpy()


def cooccurrence_figure(
    image: np.ndarray,
    maps: CooccurrenceMaps,
    point: tuple[int, int],
    *,
    index: int = 0,
    head: int | None = None,
    contours: np.ndarray | None = None,
    size: float = 2.4,
) -> Figure:
    """Where one pixel looks: p(c|t) of the query pixel ``point`` = (y, x) over the image.

    One row per head (or only ``head``): each mixture component softmax_c of component k with its
    prior π_k in the title, then the mixture p(c|t) = Σ_k π_k component_k. ``contours`` (an H×W
    bool mask, e.g. the cue objects) is outlined on every panel to show where the evidence lies.
    """
    height, width = image.shape[:2]
    t = query_index(point, (height, width), maps.query_size)
    heads = range(maps.prior.shape[1]) if head is None else [head]
    k = maps.prior.shape[2]
    columns = 1 + (k if k > 1 else 0) + 1
    fig = new_figure(size * columns, size * len(heads) + 0.2)
    axes = fig.subplots(len(heads), columns, squeeze=False)
    for r, h in enumerate(heads):
        panels = [("query pixel", None)]
        if k > 1:
            panels += [
                (f"head {h}, k={j}: π={float(maps.prior[index, h, j]):.2f}", j) for j in range(k)
            ]
        panels.append((f"head {h}: p(c|t)", "mixture"))
        for c, (title, which) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image)
            if which is not None:
                row = (
                    maps.probability[index, h, t]
                    if which == "mixture"
                    else maps.components[index, h, which, t]
                )
                heat = _key_map(row, maps.key_size, (height, width))
                ax.imshow(heat, cmap="magma", alpha=0.65, vmin=0, vmax=float(heat.max()))
            if contours is not None and contours.any():
                ax.contour(contours.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
            ax.plot(point[1], point[0], marker="+", color="lime", markersize=12, mew=2)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def attention_share_bars(
    result: AttentionByClass,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    title: str = "",
) -> Figure:
    """Per key class: the share of the query pixels' attention mass vs the share of the image.

    A class far above its image share is where the queries look for evidence (lift > 1).
    """
    mass = result.attention[..., -1, :].mean(0) / max(result.queries, 1)  # mixture, mean heads
    area = result.area / max(result.queries, 1)
    x = np.arange(len(class_names))
    fig = new_figure(1.0 * len(class_names) + 2, 3.2)
    ax = fig.subplots()
    colours = [np.asarray(palette[i]) / 255 for i in range(len(class_names))]
    ax.bar(x - 0.2, 100 * area.numpy(), 0.4, color="lightgrey", label="share of the image")
    bars = ax.bar(
        x + 0.2, 100 * mass.numpy(), 0.4, color=colours, edgecolor="black", label="attention mass"
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, class_names, rotation=20)
    ax.set_ylabel("% of key grid / attention")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def training_curves(runs: Mapping[str, str | Path], metrics: Sequence[str]) -> Figure:
    """Curves of ``metrics`` (e.g. train/loss, val/mIoU) from Lightning CSV logs, one line per run.

    ``runs`` maps a label to a ``metrics.csv`` (``<run dir>/csv/metrics.csv``); each metric is
    drawn against the optimiser step on its own axes.
    """
    import csv

    fig = new_figure(4.0 * len(metrics), 3.0)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for label, path in runs.items():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for ax, metric in zip(axes, metrics, strict=True):
            points = [(int(r["step"]), float(r[metric])) for r in rows if r.get(metric)]
            if not points:
                raise ValueError(f"{str(path)!r} has no {metric!r} column values")
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="." if len(points) < 30 else None, label=label)
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel("step")
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def class_iou_bars(runs: Mapping[str, Mapping[str, float | None]], title: str = "") -> Figure:
    """Grouped bars of per-class IoU (%), one group per class, one bar per run (e.g. FCN, CFNet).

    Classes absent from a run's split (IoU None) leave a gap.
    """
    classes = list(dict.fromkeys(c for ious in runs.values() for c in ious))
    width = 0.8 / max(len(runs), 1)
    fig = new_figure(0.9 * len(classes) + 2, 3.2)
    ax = fig.subplots()
    for i, (label, ious) in enumerate(runs.items()):
        values = [np.nan if ious.get(c) is None else 100 * ious[c] for c in classes]
        x = np.arange(len(classes)) + (i - (len(runs) - 1) / 2) * width
        ax.bar(x, values, width, label=label)
    ax.set_xticks(range(len(classes)), classes, rotation=20)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    fig.legend(loc="outside lower center", fontsize=8, ncols=min(len(runs), 5), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def ablation_bars(rows: Sequence[tuple[str, dict[str, float] | None]], metric: str) -> Figure:
    """Bar chart of one metric per row: Table 2's component sets, or a sweep's jobs."""
    labels = [label for label, _ in rows]
    values = [100 * m[metric] if m and metric in m else float("nan") for _, m in rows]
    fig = new_figure(1.6 * len(rows) + 1.5, 3.2)
    ax = fig.subplots()
    bars = ax.bar(range(len(rows)), values, color="#4C72B0")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_xticks(range(len(rows)), labels, rotation=15)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    return fig


def kxh_heatmap(grid: dict[tuple[int, int], float | None], metric: str) -> Figure:
    """Heat-map of one metric over heads H (rows) × mixtures K (columns) (Table 3)."""
    heads = sorted({h for h, _ in grid})
    ks = sorted({k for _, k in grid})
    values = np.array(
        [[np.nan if grid.get((h, k)) is None else 100 * grid[(h, k)] for k in ks] for h in heads]
    )
    fig = new_figure(1.2 * len(ks) + 2, 1.0 * len(heads) + 1.5)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis")
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j, i, "—" if np.isnan(value) else f"{value:.1f}", ha="center", va="center", color="w"
        )
    ax.set_xticks(range(len(ks)), [f"K={k}" for k in ks])
    ax.set_yticks(range(len(heads)), [f"H={h}" for h in heads])
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    return fig


def cooccurrence_matrices(
    lift: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str = ""
) -> Figure:
    """Two class × class heat maps side by side (``cfnet.cooccurrence``): the learned attention
    lift (rows: query class a, columns: key class b; log colour scale, 1× white, above red) and the
    labels' co-occurrence (the share of images with a that also hold b). NaN cells stay blank."""
    from matplotlib.colors import LogNorm, Normalize

    n = len(class_names)
    fig = new_figure(2 * (0.55 * n + 2.2), 0.5 * n + 1.8)
    left, right = fig.subplots(1, 2)
    finite = lift[np.isfinite(lift) & (lift > 0)]
    reach = float(max(np.abs(np.log2(finite)).max(), 1.0)) if finite.size else 1.0
    ticks = [2.0**e for e in range(-int(reach), int(reach) + 1)]
    panels = [
        (left, lift, LogNorm(2**-reach, 2**reach), "RdBu_r", "{:.2g}×", ticks,
         "learned: attention lift of a on b"),
        (right, labels, Normalize(0, 1), "Greens", "{:.0%}", [0, 0.25, 0.5, 0.75, 1],
         "labels: images with a that hold b"),
    ]  # fmt: skip
    for ax, values, norm, cmap, fmt, bar_ticks, name in panels:
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                dark = abs(norm(value) - (0.5 if cmap == "RdBu_r" else 0)) > 0.35
                colour = "white" if dark else "black"
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, c=colour)
        ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), class_names, fontsize=8)
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        ax.set_title(name, fontsize=10)
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.minorticks_off()
        bar.set_ticks(bar_ticks, labels=[fmt.format(t) for t in bar_ticks])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
