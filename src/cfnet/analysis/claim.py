"""The claim results file (``benchmarks/claim_sweep.py``) → Table 2 / Table 3 and a plot.

``python -m cfnet.report benchmarks/results/claim_synthetic.json`` prints what ``render_tables``
returns and saves ``claim_figure`` beside the file. The results hold one entry per trained job
(``table``, ``row`` or ``k``/``heads``, ``seed``, ``scores`` per scene family, ``pairing``); a
cell is the mean ± sample standard deviation over the seeds of its row (the sd only with two or
more seeds). The scene families: ``mixed``, the split the model was trained and tested on;
``single``, scenes of one type, where a global average of the features decides; ``paired``, where
only the pairing of features can (``cfnet.data.synthetic``).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfnet.analysis.sweeps import TABLE2_ROWS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def read_results(path: Path) -> dict[str, Any]:
    """A claim results file, checked for what the tables need; one line when it is not one."""
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(results, dict) or not isinstance(results.get("jobs"), list):
        raise ValueError(
            f"{str(path)!r} is not a claim results file (no 'jobs' list; "
            f"python benchmarks/claim_sweep.py writes one)"
        )
    return results


def mean_sd(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``values`` as ``mean ± sd`` (× ``scale``), or the mean alone for a single value."""
    if not values:
        return "—"
    mean = scale * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def _column(jobs: list[dict], family: str, metric: str) -> list[float]:
    return [j["scores"][family][metric] for j in jobs if family in j["scores"]]


def _ratios(jobs: list[dict], state: str) -> list[float]:
    return [j["pairing"][state]["ratio"] for j in jobs if j.get("pairing")]


def _table2_jobs(results: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """The Table 2 jobs, and their rows in the paper's order (unknown rows last)."""
    jobs = [j for j in results["jobs"] if j["table"] == "table2"]
    rows = sorted({j["row"] for j in jobs}, key=lambda r: TABLE2_ROWS.get(r, (99, r))[0])
    return jobs, rows


def table2(results: dict[str, Any]) -> str:
    """One row per Table 2 component set, in the paper's order: mIoU on the mixed test split, the
    ambiguous classes' mIoU on each family alone, and the own / other cue attention ratio."""
    jobs, rows = _table2_jobs(results)
    lines = [
        "| method | seeds | mIoU, mixed | ambiguous mIoU, single scenes | "
        "ambiguous mIoU, paired scenes | attention own / other cue, paired |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        mine = [j for j in jobs if j["row"] == row]
        ratios = _ratios(mine, "trained")
        cells = [
            TABLE2_ROWS.get(row, (99, row))[1],
            str(len(mine)),
            mean_sd(_column(mine, "mixed", "mIoU")),
            mean_sd(_column(mine, "single", "mIoU_ambiguous")),
            mean_sd(_column(mine, "paired", "mIoU_ambiguous")),
            mean_sd(ratios, scale=1.0, digits=2) if ratios else "— (no ACF)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    untrained = _ratios(jobs, "untrained")
    if untrained:
        lines += ["", f"Attention own / other cue at initialisation: {mean_sd(untrained, 1.0, 2)}."]
    return "\n".join(lines)


def table3(results: dict[str, Any]) -> str:
    """Heads H (rows) × mixtures K (columns); each cell the ambiguous mIoU on single / paired
    scenes (the mean over its seeds)."""
    jobs = [j for j in results["jobs"] if j["table"] == "table3"]
    if not jobs:
        return ""
    heads, ks = sorted({j["heads"] for j in jobs}), sorted({j["k"] for j in jobs})
    lines = ["| | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for h in heads:
        cells = []
        for k in ks:
            cell = [j for j in jobs if (j["heads"], j["k"]) == (h, k)]
            single = _column(cell, "single", "mIoU_ambiguous")
            paired = _column(cell, "paired", "mIoU_ambiguous")
            cells.append(f"{mean_sd(single)} / {mean_sd(paired)}" if cell else "—")
        lines.append(f"| H={h} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_tables(results: dict[str, Any]) -> str:
    """Table 2, then Table 3 when the results have it, as markdown."""
    text = "### Table 2 on the synthetic scenes (%)\n\n" + table2(results) + "\n"
    if grid := table3(results):
        text += (
            "\n### Table 3 on the synthetic scenes: ambiguous mIoU, single / paired scenes (%)\n\n"
            + grid
            + "\n"
        )
    return text


def claim_figure(results: dict[str, Any]) -> Figure:
    """Table 2's ambiguous mIoU per row on single and on paired scenes (mean, sd as error bars)."""
    from cfnet.analysis.viz import new_figure

    jobs, rows = _table2_jobs(results)
    fig = new_figure(1.7 * len(rows) + 1.5, 3.4)
    ax = fig.subplots()
    width = 0.38
    for offset, family, colour in (
        (-width / 2, "single", "#4C72B0"),
        (width / 2, "paired", "#DD8452"),
    ):
        means, sds = [], []
        for row in rows:
            values = [100 * v for v in _column([j for j in jobs if j["row"] == row], family,
                                                 "mIoU_ambiguous")]  # fmt: skip
            means.append(statistics.fmean(values) if values else math.nan)
            sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        bars = ax.bar([i + offset for i in range(len(rows))], means, width, yerr=sds,
                      color=colour, label=f"{family} scenes", capsize=3)  # fmt: skip
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(rows)), [TABLE2_ROWS.get(r, (99, r))[1] for r in rows], rotation=12)
    ax.set_ylabel("ambiguous mIoU (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", fontsize=8)
    return fig
