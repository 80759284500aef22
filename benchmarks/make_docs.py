"""Write docs/benchmarks.md and its plots from the saved results (benchmarks/results/*.json).

Run by ``make bench`` after the benchmark scripts; it measures nothing itself, so the page always
shows exactly what the scripts saved, with the machine and command that produced it. ``render()``
returns the page's text without writing anything: ``tests/project/test_docs.py`` compares it with
the committed docs/benchmarks.md, so a hand edit of the page fails the test suite.

    python benchmarks/make_docs.py               # docs/benchmarks.md and its plots
    python benchmarks/make_docs.py --out X.md    # the page elsewhere, no plots
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from results_files import RECORD_KEYS, describe
from results_files import markdown as table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
IMAGES = DOCS / "img"


def load(name: str) -> dict | None:
    """``benchmarks/results/<name>.json``, None when absent; a file without the record of its run
    (``results_files.recorded``: date, commit, machine, torch) is refused."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    if missing := [key for key in RECORD_KEYS if key not in report]:
        raise ValueError(f"{path} records no {', '.join(missing)}: rerun `{name}` to measure again")
    return report


def plot_acf(acf: dict) -> Path:
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 3.8))
    configs = sorted({(r["heads"], r["k"]) for r in acf["rows"]})
    for heads, k in configs:
        for impl, style in (("naive", "--"), ("sdpa", "-")):
            rows = sorted(
                (r for r in acf["rows"] if (r["heads"], r["k"], r["impl"]) == (heads, k, impl)),
                key=lambda r: r["size"],
            )
            sizes = [r["size"] for r in rows]
            label = f"{impl}, H={heads} K={k}"
            ax_time.plot(sizes, [r["seconds"] for r in rows], style, marker="o", label=label)
            ax_mem.plot(sizes, [r["peak_mib"] for r in rows], style, marker="o", label=label)
    ax_time.set(xlabel="input side (px, OS8)", ylabel="s / forward+backward", yscale="log")
    ax_mem.set(xlabel="input side (px, OS8)", ylabel="peak memory (MiB)", yscale="log")
    ax_time.set_title("ACF module time")
    ax_mem.set_title("ACF module peak memory")
    ax_mem.legend(fontsize=8)
    fig.tight_layout()
    path = IMAGES / "acf_impls.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_steps(speed: dict) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model in ("fcn", "cfnet"):
        for variant, style in (("fp32", "--"), ("bf16", "-."), ("channels_last+bf16", "-")):
            rows = sorted(
                (r for r in speed["train"] if (r["model"], r["variant"]) == (model, variant)),
                key=lambda r: r["size"],
            )
            label = f"{'CFNet' if model == 'cfnet' else 'FCN'}-R50 {variant}"
            sizes, seconds = [r["size"] for r in rows], [r["s_per_step"] for r in rows]
            ax.plot(sizes, seconds, style, marker="o", label=label)
    ax.set(xlabel="crop side (px)", ylabel="s / training step", title="Training step vs resolution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = IMAGES / "model_step.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def goals(acf: dict | None, speed: dict | None, explorer: dict | None = None) -> list[dict]:
    """The performance goals of the project, each computed from the saved measurements."""
    rows = []

    def goal(name: str, target: str, value: str, met: bool | None) -> None:
        verdict = "not measured" if met is None else ("met" if met else "not met")
        rows.append({"goal": name, "target": target, "measured": value, "verdict": verdict})

    if not acf:
        goal("fused ACF memory and speed, 1024²", "≥ 10× less memory, ≥ 2× faster than naive",
             "no results (python benchmarks/acf_impls.py)", None)  # fmt: skip
    if not speed:
        goal("CFNet-R50 / FCN-R50 train step, 512²", "≤ 1.15×",
             "no results (python benchmarks/model_speed.py)", None)  # fmt: skip
        goal("CFNet-R50 / DeepLabV3-R50 latency, 512²", "≤ 0.9×",
             "no results (python benchmarks/model_speed.py)", None)  # fmt: skip
    if acf:
        big = max(r["size"] for r in acf["rows"])
        for heads, k in sorted({(r["heads"], r["k"]) for r in acf["rows"]}):
            pick = {
                r["impl"]: r
                for r in acf["rows"]
                if (r["heads"], r["k"], r["size"]) == (heads, k, big)
            }
            memory = pick["naive"]["peak_mib"] / pick["sdpa"]["peak_mib"]
            speedup = pick["naive"]["seconds"] / pick["sdpa"]["seconds"]
            goal(f"fused ACF memory, H={heads} K={k}, {big}²", "≥ 10× less than naive",
                 f"{memory:.1f}× less", memory >= 10)  # fmt: skip
            goal(f"fused ACF speed, H={heads} K={k}, {big}²", "≥ 2× faster than naive",
                 f"{speedup:.1f}× faster", speedup >= 2)  # fmt: skip
    if speed:
        size = max(r["size"] for r in speed["train"])
        for r in speed["train"]:
            if r["model"] == "cfnet" and r["size"] == size:
                goal(f"CFNet-R50 / FCN-R50 train step, {size}², {r['variant']}", "≤ 1.15×",
                     f"{r['vs_fcn']:.2f}×", r["vs_fcn"] <= 1.15)  # fmt: skip
        for r in speed["inference"]:
            if r["model"] == "cfnet_r50":
                goal(f"CFNet-R50 / DeepLabV3-R50 latency, {r['size']}², {r['variant']}",
                     "≤ 0.9×", f"{r['vs_deeplabv3']:.2f}×", r["vs_deeplabv3"] <= 0.9)  # fmt: skip
        loader = speed["loader"][0]["images_per_s_per_worker"]
        # the loader makes 512² crops: compare with the fastest CFNet training at that size
        fastest = max(
            r["images_per_s"] for r in speed["train"] if r["model"] == "cfnet" and r["size"] == size
        )
        goal("data pipeline never the bottleneck",
             f"loader img/s per worker ≫ CFNet-R50 training img/s at {size}²",
             f"{loader} vs {fastest} img/s", loader > 10 * fastest)  # fmt: skip
    if explorer is None:
        goal("explorer click, 512², 2 cores", "≤ 250 ms (90th pct.): well under 1 s",
             "no results (python benchmarks/explorer_speed.py)", None)  # fmt: skip
    else:
        row = explorer["rows"][0]
        click, first = row["click (ms), 90th pct"], row["first pass (s), median"]
        goal(f"explorer click, {row['image']}, {row['threads']} threads",
             "≤ 250 ms (90th pct.): well under 1 s",
             f"{click} ms (90th pct.); first pass {first} s", click <= 250)  # fmt: skip
    return rows + gpu_goals()


def lightning_figure(batch: int, minimum: float) -> Callable[[list[dict]], tuple[str, bool] | None]:
    def figure(rows: list[dict]) -> tuple[str, bool] | None:
        row = next((r for r in rows if r["batch"] == batch), None)
        if row is None:
            return None
        return f"{row['images_per_s']} img/s ({row['run']})", row["images_per_s"] >= minimum

    return figure


def quickstart_figure(rows: list[dict]) -> tuple[str, bool]:
    return f"{rows[0]['wall_s']} s (test mIoU {rows[0]['test_mIoU']})", rows[0]["wall_s"] <= 45


def latency_figure(mode: str) -> Callable[[list[dict]], tuple[str, bool] | None]:
    def figure(rows: list[dict]) -> tuple[str, bool] | None:
        ms = {r["model"]: r["ms_per_image"] for r in rows if r["mode"] == mode}
        if not {"cfnet_r50", "deeplabv3_r50"} <= ms.keys():
            return None
        ratio = ms["cfnet_r50"] / ms["deeplabv3_r50"]
        text = f"{ratio:.2f}× ({ms['cfnet_r50']} ms vs {ms['deeplabv3_r50']} ms)"
        return text, ratio <= 0.8

    return figure


def ms_flip_figure(compiled: bool) -> Callable[[list[dict]], tuple[str, bool] | None]:
    def figure(rows: list[dict]) -> tuple[str, bool] | None:
        batched = [
            r for r in rows if r["inference.batch_size"] > 1 and r["inference.compile"] is compiled
        ]
        if not batched or not any(r["inference.batch_size"] == 1 for r in rows):
            return None
        best = max(batched, key=lambda r: r["speedup_vs_unbatched"])
        text = (
            f"{best['speedup_vs_unbatched']}× (inference.batch_size={best['inference.batch_size']})"
        )
        return text, best["speedup_vs_unbatched"] >= 5

    return figure


# The GPU goals of issue 29, each read from the results file of its gpu_check.sh section:
# (goal, target, file, figure from the file's rows: (text, met), None when the row is missing).
GPU_GOALS = [
    ("GPU: CFNet-R50 training through Lightning, 512², bf16, batch 16", "≥ 200 img/s",
     "speed_cuda_lightning", lightning_figure(16, 200)),
    ("GPU: the same, compiled (module.compile=true), batch 16", "≥ 200 img/s",
     "speed_cuda_lightning_compiled", lightning_figure(16, 200)),
    ("GPU: CFNet-R50 training through Lightning, 512², bf16, batch 2", "≥ 100 img/s",
     "speed_cuda_lightning", lightning_figure(2, 100)),
    ("GPU: the quickstart, python -m cfnet.train (make train)", "≤ 45 s",
     "speed_cuda_quickstart", quickstart_figure),
    ("GPU: predict latency, batch 1, 512², CFNet-R50 / DeepLabV3-R50, eager", "≤ 0.8×",
     "speed_cuda_latency", latency_figure("eager")),
    ("GPU: the same, both with CUDA graphs (reduce-overhead)", "≤ 0.8×",
     "speed_cuda_latency", latency_figure("reduce-overhead")),
    ("GPU: ms_flip batched vs window by window", "≥ 5× faster",
     "speed_cuda_ms_flip", ms_flip_figure(compiled=False)),
    ("GPU: the same, batched windows compiled (inference.compile=true)", "≥ 5× faster",
     "speed_cuda_ms_flip", ms_flip_figure(compiled=True)),
]  # fmt: skip


def gpu_goals() -> list[dict]:
    """The GPU goals, each from its ``speed_cuda_*.json`` (``benchmarks/gpu_check.sh``): the
    figure with the GPU's name, date and commit, and met or not. "not measured" where that file
    does not exist, or where the check was cut off before the row it needs."""
    rows = []
    for name, target, file, figure in GPU_GOALS:
        report = load(file)
        found = None if report is None else figure(report["rows"])
        if report is None:
            measured = f"no results (benchmarks/gpu_check.sh on a GPU writes {file}.json)"
        elif found is None:
            measured = f"{file}.json has no row for it (the check was cut off before it)"
        else:
            gpu = report["machine"]["gpu"]
            measured = f"{found[0]}; {gpu}, {report['date']}, commit {report['commit']}"
        verdict = "not measured" if found is None else ("met" if found[1] else "not met")
        rows.append({"goal": name, "target": target, "measured": measured, "verdict": verdict})
    return rows


def speed_files() -> list[str]:
    """The saved ``gpu_speed.py`` sections (``speed_<device>_<section>``), in its order."""
    order = ("lightning", "quickstart", "latency", "ms_flip", "raw")

    def key(name: str) -> tuple[str, int, str]:
        device, section = name.removeprefix("speed_").split("_", 1)
        first = next((i for i, s in enumerate(order) if section.startswith(s)), len(order))
        return device, first, section

    names = [p.stem for p in RESULTS.glob("speed_*_*.json") if not p.stem.endswith("_dry_run")]
    return sorted(names, key=key)


def render() -> str:
    """The text of docs/benchmarks.md from the committed results; writes nothing."""
    head = (ROOT / "benchmarks" / "benchmarks_head.md").read_text()
    parts = [head.rstrip() + "\n"]
    acf, speed, protocol = load("acf_impls"), load("model_speed"), load("eval_protocol")
    parts.append("## Goals\n\n" + table(goals(acf, speed, load("explorer_speed"))) + "\n")
    notes = ROOT / "benchmarks" / "benchmarks_notes.md"  # the analysis, written by hand
    if notes.is_file():
        parts.append(notes.read_text().rstrip() + "\n")
    if acf:
        rows = [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
            for r in acf["rows"]
        ]
        parts.append(
            "## Fused vs naive ACF attention\n\n"
            f"{describe(acf)}.\n\n{acf['config']}.\n\n"
            + table(rows)
            + "\n\n![ACF time and memory](img/acf_impls.png)\n"
        )
    if speed:
        sections = [
            ("train", "Training step: CFNet-R50 vs FCN-R50"),
            ("inference", "Inference latency: CFNet-R50 vs torchvision DeepLabV3-R50"),
            ("profile", "Profile: where CFNet's training step goes"),
            ("loader", "Data pipeline throughput"),
        ]
        text = f"{describe(speed)}.\n\n"
        for key, title in sections:
            text += f"### {title}\n\n{table(speed[key])}\n\n"
            if key == "profile":
                text += (
                    "The forward parts are timed one by one; `backward + SGD update` is not: it "
                    "is the whole step minus them.\n\n"
                )
        text += "![training step vs resolution](img/model_step.png)\n"
        parts.append("## Models, side by side\n\n" + text)
    compiled = load("compile_speed")
    if compiled:
        parts.append(
            f"## torch.compile\n\n{describe(compiled)}.\n\n" + table(compiled["rows"]) + "\n"
        )
    if protocol:
        ckpt = protocol.get("checkpoint")
        measured_on = (
            f"\nTimed on checkpoint `{ckpt['path']}` (sha256 {ckpt['sha256_16']}…):\n\n"
            + table(protocol["measured"])
            + "\n"
            if ckpt and "measured" in protocol
            else "\nNo checkpoint timed in the committed results "
            "(`python benchmarks/eval_protocol.py --ckpt <best.ckpt>` adds that table).\n"
        )
        parts.append(
            f"## Evaluation protocols\n\n{describe(protocol)}.\n\n"
            + table(protocol["counted"])
            + "\n"
            + measured_on
        )
    for name, title in (
        *((n, f"`{n}` (benchmarks/gpu_speed.py)") for n in speed_files()),
        ("loader_speed", "Your own data: the folder loader vs VOC's (benchmarks/loader_speed.py)"),
        ("explorer_speed", "The explorer: first pass and clicks (benchmarks/explorer_speed.py)"),
    ):
        if load(name) is not None:  # the tables as the script wrote them, under its record
            parts.append(f"## {title}\n\n" + (RESULTS / f"{name}.md").read_text().rstrip() + "\n")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the page here instead, without plots")
    args = parser.parse_args()
    if args.out:
        args.out.write_text(render())
        print(f"wrote {args.out}")
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    acf, speed = load("acf_impls"), load("model_speed")
    plots = ([plot_acf(acf)] if acf else []) + ([plot_steps(speed)] if speed else [])
    out = DOCS / "benchmarks.md"
    out.write_text(render())
    print(f"wrote {out} and {[p.name for p in plots]}")


if __name__ == "__main__":
    main()
