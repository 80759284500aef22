"""Issue 24's claim, measured: what ACF does beyond global pooling on the embedded data.

The Table 2 rows (and Table 3's K × H grid) are trained by two Hydra sweeps at ``make train``'s
budget on the default ``mixed`` scenes; this script scores every job on each scene family alone
and measures its attention's pairing, and saves ``benchmarks/results/claim_synthetic.{json,md}``.
``python -m cfnet.report benchmarks/results/claim_synthetic.json`` renders the tables (mean ± sd
over seeds) and the plot from that file; the README's synthetic Table 2 is that rendering (a docs
test keeps them equal). Run it like a benchmark, once, on a quiet machine; it is not a test::

    python -m cfnet.train experiment=table2_components seed=0,1,2 dataset.scenes=mixed \\
        '~callbacks.progress_bar' hydra.sweep.dir=multirun/claim/table2
    python -m cfnet.train experiment=table3_kxh dataset.scenes=mixed '~callbacks.progress_bar' \\
        hydra.sweep.dir=multirun/claim/table3
    python benchmarks/claim_sweep.py multirun/claim/table2 multirun/claim/table3 \\
        --trained-at <the commit the sweeps ran at>

Per job it records:

* ``scores.mixed``: the job's own ``metrics/test.json`` (``cfnet.train``'s test pass);
* ``scores.single`` / ``scores.paired``: the test split of one scene family, scored here the way
  ``python -m cfnet.evaluate ckpt_path=<best> dataset.scenes=<family> split=test`` scores it (the
  ``whole`` protocol; 96² images are one window) in the same precision. The script first checks
  that its score of the mixed split equals the job's ``metrics/test.json`` (so the in-process
  scoring is the evaluation's), and once, for the first job, that the CLI gives the same paired
  scores;
* ``pairing`` (models with ACF): ``cfnet.analysis.attention.measure_pairing`` on the paired test
  scenes, an ambiguous query's mass on its own cue over the other cue, for the trained model and
  for the same architecture at its random initialisation (seed 0);
* ``train_s``: the job's wall time, from its config file to its test metrics.

Each job's entry is also kept in its dir (``claim_scores.json``), so a second run (say, once the
Table 3 sweep has finished) scores only the jobs it has not scored; ``--rescore`` scores all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cfnet.analysis.attention import SYNTHETIC_PAIRINGS, measure_pairing
from cfnet.analysis.sweeps import load_jobs
from cfnet.data.synthetic import render
from cfnet.data.transforms import eval_transform
from cfnet.evaluation.metrics import SegmentationScores, confusion_matrix, read_scores
from cfnet.lit import SegmentationModule
from cfnet.utils.hardware import autocast, cpu_precision
from results_files import save_results

FAMILIES = ("single", "paired")
HEADLINE = ("pixAcc", "mIoU", "mIoU_ambiguous")
SCORED = "claim_scores.json"  # a job's entry, kept in its dir: a second run reuses it


def test_batches(
    data, family: str, mean, std, batch: int = 50
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The test split of ``data`` (a synthetic dataset config) drawn as ``family``, normalised as
    the model's evaluation normalises it: [(images B×3×H×W, masks B×H×W)]."""
    transform = eval_transform(mean=mean, std=std)
    samples = [
        render(family, data.seed, "test", i, data.image_size, data.min_distance, data.max_ambiguous)
        for i in range(data.sizes.test)
    ]
    images = torch.stack([transform(image=image)["image"] for image, _ in samples])
    masks = torch.stack([torch.from_numpy(mask).long() for _, mask in samples])
    return [(images[i : i + batch], masks[i : i + batch]) for i in range(0, len(samples), batch)]


@torch.no_grad()
def score(module: SegmentationModule, batches, precision: str) -> dict[str, float]:
    """pixAcc, mIoU and mIoU_ambiguous of ``module`` on ``batches`` (whole images)."""
    hp = module.hparams
    confusion = confusion_matrix(hp.num_classes, hp.ignore_index)  # evaluation's accumulator
    for images, masks in batches:
        with autocast(torch.device("cpu"), precision):
            logits = module.net(images.contiguous(memory_format=torch.channels_last))
        confusion.update(logits.float().argmax(1), masks)
    scores = SegmentationScores.from_confusion(
        confusion.compute(), list(hp.class_names), dict(hp.class_groups)
    )
    return {k: round(v, 5) for k, v in scores.summary().items() if k in HEADLINE}


def cli_paired_scores(ckpt: Path) -> dict[str, float]:
    """``python -m cfnet.evaluate ckpt_path=<ckpt> dataset.scenes=paired split=test``."""
    with tempfile.TemporaryDirectory() as run:
        subprocess.run(
            [sys.executable, "-m", "cfnet.evaluate", f"ckpt_path={ckpt}", "dataset.scenes=paired",
             "split=test", "~callbacks.progress_bar", f"hydra.run.dir={run}"],
            check=True, capture_output=True,
        )  # fmt: skip
        data = read_scores(Path(run) / "metrics" / "test.json")
    return {k: data[k] for k in HEADLINE}


def pairing(module: SegmentationModule, batches) -> dict[str, dict[str, float]] | None:
    """The own / other cue attention ratio on paired scenes, trained and at initialisation."""
    if getattr(module.net.head, "acf", None) is None:  # FCN, +GP: no attention to measure
        return None
    hp = module.hparams
    torch.manual_seed(0)
    untrained = instantiate({**hp.model, "pretrained": None, "init_from": None}).eval()
    out = {}
    for name, net in (("trained", module.net), ("untrained", untrained)):
        summary = measure_pairing(net, batches, SYNTHETIC_PAIRINGS, hp.num_classes, hp.ignore_index)
        out[name] = {k: round(v, 4) for k, v in summary.summary().items()}
    return out


def collect(
    sweep_dir: Path, table: str, precision: str, check_cli: bool, rescore: bool, partial: bool
) -> list[dict]:
    """Every job of ``sweep_dir`` scored (its ``claim_scores.json``, reused unless ``rescore``)."""
    jobs = []
    for job in load_jobs(sweep_dir, "test"):
        if job.metrics is None and partial:
            continue
        if job.metrics is None:
            raise ValueError(f"{job.directory}: no metrics/test.json (failed or unfinished job)")
        scored = job.directory / SCORED
        if scored.is_file() and not rescore:
            jobs.append(json.loads(scored.read_text()))
            continue
        ckpt = sorted((job.directory / "checkpoints").glob("best-*.ckpt"))[-1]
        module = SegmentationModule.from_checkpoint(ckpt).eval()
        module.net.to(memory_format=torch.channels_last)
        data = OmegaConf.load(job.directory / ".hydra" / "config.yaml").dataset
        norm = list(module.hparams.mean), list(module.hparams.std)
        own = {k: round(job.metrics[k], 5) for k in HEADLINE}
        mixed = score(module, test_batches(data, "mixed", *norm), precision)
        if any(abs(mixed[k] - own[k]) > 2e-3 for k in HEADLINE):
            raise AssertionError(f"{job.directory}: scored here {mixed}, by cfnet.train {own}")
        scores = {"mixed": own}
        batches = {family: test_batches(data, family, *norm) for family in FAMILIES}
        for family in FAMILIES:
            scores[family] = score(module, batches[family], precision)
        if check_cli:
            cli = cli_paired_scores(ckpt)
            if any(abs(cli[k] - scores["paired"][k]) > 2e-3 for k in HEADLINE):
                raise AssertionError(
                    f"{ckpt}: cfnet.evaluate {cli}, scored here {scores['paired']}"
                )
            check_cli = False
        overrides = job.overrides
        config = {"seed": int(overrides.get("seed") or 0)}
        if table == "table2":
            config["row"] = overrides["experiment/table2"]
        else:
            config |= {"k": int(overrides["model.k"]), "heads": int(overrides["model.heads"])}
        started = (job.directory / ".hydra" / "config.yaml").stat().st_mtime
        ended = (job.directory / "metrics" / "test.json").stat().st_mtime
        jobs.append({
            "table": table, **config, "train_s": round(ended - started),
            "scores": scores, "pairing": pairing(module, batches["paired"][:2]),
        })  # fmt: skip
        scored.write_text(json.dumps(jobs[-1]) + "\n")
        print(json.dumps(jobs[-1]), flush=True)
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table2", type=Path, help="the sweep dir of experiment=table2_components")
    parser.add_argument("table3", type=Path, nargs="?", help="the sweep dir of table3_kxh")
    parser.add_argument("--trained-at", required=True, help="the commit the sweeps ran at")
    parser.add_argument("--name", default="claim_synthetic")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="score the finished jobs of running sweeps, save nothing",
    )
    parser.add_argument("--rescore", action="store_true", help="ignore the jobs' claim_scores.json")
    args = parser.parse_args()
    precision = cpu_precision()  # what cfnet.train / cfnet.evaluate chose on this CPU
    jobs = collect(args.table2, "table2", precision, True, args.rescore, args.partial)
    if args.table3:
        jobs += collect(args.table3, "table3", precision, False, args.rescore, args.partial)
    if args.partial:
        return
    report = {
        "trained_at": args.trained_at,
        "budget": "make train's: 3 epochs of 125 steps × 16 images, 96², mixed scenes",
        "precision": precision,
        "families": ["mixed", *FAMILIES],
        "jobs": jobs,
    }
    from cfnet.analysis.claim import render_tables

    save_results(args.name, report, render_tables(report))


if __name__ == "__main__":
    main()
