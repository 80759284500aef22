"""A sweep's jobs → the paper's tables and a plot (what ``python -m cfnet.report`` prints).

Reads each job's ``.hydra/overrides.yaml`` and ``metrics/<split>.json`` (written by the report
callback). A sweep over ``+experiment/table2`` becomes the paper's Table 2 (one row per component
set, with a bar chart); a sweep over ``model.k`` × ``model.heads`` becomes Table 3 (a K × H grid
with a heat-map); any other sweep is listed one row per job, by the overrides that vary between
jobs (those every job shares are named once above the table), with a bar chart of the metric per
job. ``report`` writes ``report.md`` and ``report.png`` into the sweep dir (replacing only those
two files) and returns the markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cfnet.evaluation.metrics import read_scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE2_ROWS = {  # +experiment/table2 option → (order, the paper's row label)
    "fcn": (0, "FCN"),
    "gp": (1, "+GP"),
    "acf": (2, "+ACF"),
    "acf_gp": (3, "+ACF +GP (CFNet)"),
    "acf_gp_enc": (4, "+ACF +GP +Enc"),
}


@dataclass
class Job:
    """One job of a sweep: its dir, its command-line overrides and what it scored."""

    directory: Path
    overrides: dict[str, str | None]  # key → value; None: the key was removed (~key)
    metrics: dict[str, float] | None  # None: the job has no metrics file (failed / running)
    class_iou: dict[str, float | None] | None = None  # per-class IoU of the same file


def _overrides(job_dir: Path) -> dict[str, str | None]:
    """The job's ``.hydra/overrides.yaml`` as {key: value}: ``+key=v`` as ``key``, a removed key
    (``~key``, ``~key=v``) with the value None."""
    path = job_dir / ".hydra" / "overrides.yaml"
    overrides: dict[str, str | None] = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, has_value, value = str(item).partition("=")
        if key.startswith("~"):
            overrides[key[1:]] = None
        elif has_value:
            overrides[key.lstrip("+")] = value
    return overrides


def setting(job: Job, key: str) -> str:
    """One override of ``job`` as the command line says it: ``key=value``, ``~key`` when the job
    removed the key, ``key=—`` when the job does not set it."""
    if key not in job.overrides:
        return f"{key}=—"
    value = job.overrides[key]
    return f"~{key}" if value is None else f"{key}={value}"


def load_jobs(sweep_dir: Path, split: str) -> list[Job]:
    """The job dirs of ``sweep_dir`` (``<n>/.hydra/overrides.yaml``) in job order, each with its
    ``metrics/<split>.json`` when it has one (a failed or unfinished job has none)."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep dir {str(sweep_dir)!r} does not exist")
    job_dirs = sorted(
        (p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()),
        key=lambda p: int(p.name) if p.name.isdigit() else math.inf,
    )
    if not job_dirs:
        raise FileNotFoundError(
            f"{str(sweep_dir)!r} holds no Hydra job dirs (<n>/.hydra/overrides.yaml): "
            f"pass the multirun/<experiment>/<time> folder of a sweep"
        )
    jobs = []
    for job_dir in job_dirs:
        metrics_file = job_dir / "metrics" / f"{split}.json"
        metrics, class_iou = None, None
        if metrics_file.is_file():
            data = read_scores(metrics_file)
            metrics = {k: v for k, v in data.items() if isinstance(v, int | float)}
            class_iou = data.get("class_iou")
        jobs.append(Job(job_dir, _overrides(job_dir), metrics, class_iou))
    return jobs


def _pct(value: float | None) -> str:
    """A fraction as the tables show it: a percentage with one decimal, ``—`` when missing."""
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _columns(jobs: list[Job]) -> list[str]:
    """The tables' metric columns: pixAcc, mIoU and mIoU_<group>, as the jobs' files have them."""
    keys = [k for j in jobs if j.metrics for k in j.metrics if k.startswith(("pixAcc", "mIoU"))]
    return list(dict.fromkeys(keys))


def table2(jobs: list[Job]) -> tuple[str, list[tuple[str, dict[str, float] | None]]]:
    """The paper's Table 2: one row per component set (``+experiment/table2``), in the paper's
    order and words; → (markdown, [(row label, metrics)])."""
    rows = sorted(
        (
            (
                TABLE2_ROWS.get(
                    j.overrides["experiment/table2"], (99, j.overrides["experiment/table2"])
                ),
                j,
            )
            for j in jobs
        ),
        key=lambda r: r[0][0],
    )
    named = [(label, job.metrics) for (_, label), job in rows]
    columns = _columns(jobs)
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, metrics in named:
        cells = [_pct(metrics.get(c) if metrics else None) for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines), named


def table3(jobs: list[Job], metric: str) -> tuple[str, dict[tuple[int, int], float | None]]:
    """The paper's Table 3: heads H (rows) × mixtures K (columns), each cell the jobs' metric
    columns; → (markdown, {(H, K): ``metric``} for the heat-map)."""
    grid = {
        (int(j.overrides["model.heads"]), int(j.overrides["model.k"])): (j.metrics or {}).get(
            metric
        )
        for j in jobs
    }
    heads = sorted({h for h, _ in grid})
    ks = sorted({k for _, k in grid})
    columns = _columns(jobs)
    cells = {
        (h, k): "/".join(_pct((j.metrics or {}).get(c)) for c in columns)
        for j in jobs
        for h, k in [(int(j.overrides["model.heads"]), int(j.overrides["model.k"]))]
    }
    lines = [f"{' / '.join(columns)}", "", "| | " + " | ".join(f"K={k}" for k in ks) + " |"]
    lines.append("|---|" + "---|" * len(ks))
    for h in heads:
        lines.append(f"| H={h} | " + " | ".join(cells.get((h, k), "—") for k in ks) + " |")
    return "\n".join(lines), grid


def varying(jobs: list[Job]) -> list[str]:
    """The override keys not set alike in every job (in first-seen order)."""
    keys = dict.fromkeys(k for j in jobs for k in j.overrides)
    return [k for k in keys if len({setting(j, k) for j in jobs}) > 1]


def job_label(job: Job, keys: list[str]) -> str:
    """A job by the overrides that tell it from the others (its dir name if none do)."""
    return ", ".join(setting(job, k) for k in keys) or job.directory.name


def generic(jobs: list[Job]) -> tuple[str, list[tuple[str, dict[str, float] | None]]]:
    """One row per job, by the overrides that vary; → (markdown, [(job label, metrics)])."""
    columns, keys = _columns(jobs), varying(jobs)
    shared = [setting(jobs[0], k) for k in jobs[0].overrides if k not in keys]
    lines = [f"Every job: {', '.join(shared)}", ""] if shared else []
    lines += ["| job | overrides | " + " | ".join(columns) + " |"]
    lines += ["|---|---|" + "---|" * len(columns)]
    rows = []
    for j in jobs:
        cells = [_pct(j.metrics.get(c) if j.metrics else None) for c in columns]
        lines.append(f"| {j.directory.name} | {job_label(j, keys)} | " + " | ".join(cells) + " |")
        rows.append((job_label(j, keys), j.metrics))
    return "\n".join(lines), rows


@dataclass
class Summary:
    """A sweep as the paper shows it: a markdown table and its plot."""

    kind: str  # "table2" | "table3" | "generic"
    table: str
    figure: Figure | None  # None when no job has metrics
    missing: list[str]  # jobs without metrics (failed or unfinished)


def summarise(jobs: list[Job], metric: str) -> Summary:
    """Table 2 (component rows + bar chart), Table 3 (K × H grid + heat-map) or one row per job
    (+ bar chart)."""
    from cfnet.analysis import viz

    keys = set().union(*(j.overrides for j in jobs))
    missing = [j.directory.name for j in jobs if j.metrics is None]
    if "experiment/table2" in keys:
        table, rows = table2(jobs)
        return Summary("table2", table, viz.ablation_bars(rows, metric), missing)
    if {"model.k", "model.heads"} <= keys:
        table, grid = table3(jobs, metric)
        return Summary("table3", table, viz.kxh_heatmap(grid, metric), missing)
    table, rows = generic(jobs)
    figure = viz.ablation_bars(rows, metric) if any(m for _, m in rows) else None
    return Summary("generic", table, figure, missing)


def report(sweep_dir: Path, split: str, metric: str) -> str:
    """Write the sweep's ``report.md`` and its plot ``report.png`` (a plot of an earlier report
    is removed when this one has none: no job has metrics yet); → the markdown and where the
    plot is, to print."""
    from cfnet.analysis import viz

    jobs = load_jobs(sweep_dir, split)
    summary = summarise(jobs, metric)
    plot = sweep_dir / "report.png"
    if summary.figure is not None:
        viz.save_figure(summary.figure, plot)
    else:
        plot.unlink(missing_ok=True)
    note = (
        f"\n\nJobs without {split} metrics (failed or unfinished): {', '.join(summary.missing)}"
        if summary.missing
        else ""
    )
    text = f"# {sweep_dir}\n\n{split} metrics (%), {len(jobs)} jobs\n\n{summary.table}{note}\n"
    (sweep_dir / "report.md").write_text(text)
    if summary.figure is None:
        return text + f"\nno plot: no job has {split} metrics\n"
    return text + f"\nplot: {plot}\n"
