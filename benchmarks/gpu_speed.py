"""Benchmark on the device the models run on (a GPU when CUDA is available), side by side.

1. ``raw``: one SGD training step of CFNet-R50 and FCN-R50 (512², bf16 autocast on a GPU,
   channels_last), batch 16 and batch 2 (the per-GPU batch of a paper-style 8-GPU DDP run);
   ``--compile`` adds CFNet compiled as ``module.compile=true`` does (with its compile time).
2. ``lightning``: images/s of the same model through the real ``python -m cfnet.train`` (the
   Lightning Trainer, the loader with its workers, the optimiser, logging), batch 16 and 2, on the
   synthetic set at 512² (scenes drawn at 256² and upscaled by the pipeline, so that drawing them
   does not limit the GPU); compiled adds a batch-16 run with ``module.compile=true``.
3. ``latency``: batch-1 inference at 512²: CFNet-R50, FCN-R50, torchvision DeepLabV3-R50 (eager;
   ``--compile`` adds ``torch.compile(mode="reduce-overhead")``, CUDA graphs, with compile time).
4. ``ms_flip``: the paper's multi-scale + flip protocol (``inference=ms_flip``) on 160² synthetic
   images with the quickstart model, windows one at a time (``inference.batch_size=1``, the old
   path) and batched.

Timings synchronise the device before reading the clock; memory is ``max_memory_allocated``.
Every section is saved as soon as it is done (a run cut short keeps what it measured).

    python benchmarks/gpu_speed.py                         # every section, on CUDA if present
    python benchmarks/gpu_speed.py --sections ms_flip      # on this CPU: batched vs unbatched
    python benchmarks/gpu_speed.py --dry-run               # tiny sizes: checks the script

Saves benchmarks/results/speed_<device>.{json,md} (``--results`` elsewhere). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.data.transforms import normalised_black
from model_speed import train_step
from results_files import markdown, save_results

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("raw", "lightning", "latency", "ms_flip")
NUM_CLASSES = 21


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> float:
    """Median seconds per call over ``reps`` calls, the device synchronised around each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_call(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def autocast(device: torch.device):
    """bf16 autocast on a GPU (the GPU preset); fp32 on the CPU of a dry run."""
    return torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else nullcontext()


def peak_gib(device: torch.device) -> float | None:
    return (
        round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
    )


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def model_overrides(args: argparse.Namespace) -> list[str]:
    """CFNet-R50 as in the paper (the defaults on real datasets), or a tiny one for a dry run."""
    if args.dry_run:
        return ["model.backbone=resnet10t", "model.channels=16", "model.aux_channels=8"]
    return ["model.backbone=resnet50d", "model.channels=512", "model.aux_channels=256"]


def build(name: str, args: argparse.Namespace, device: torch.device):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"model={name}", "dataset=pascal_voc", *model_overrides(args)]
        )
    torch.manual_seed(0)
    return instantiate(cfg.model).to(device, memory_format=torch.channels_last)


def raw_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    rows = []
    variants = [("fcn", False), ("cfnet", False)] if args.eager else []
    variants += [("cfnet", True)] if args.compile != "none" else []
    for name, compiled in variants:
        net = build(name, args, device).train()
        if compiled:  # as SegmentationModule.configure_model does
            net.forward_train = torch.compile(net.forward_train)
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        for batch in args.batches:
            if compiled and batch != max(args.batches):
                continue
            images = torch.randn(batch, 3, args.size, args.size, device=device)
            images = images.to(memory_format=torch.channels_last)
            masks = torch.randint(0, NUM_CLASSES, (batch, args.size, args.size), device=device)

            step = train_step(net, optimizer, images, masks, lambda: autocast(device))
            reset_peak(device)
            first = first_call(step, device)
            seconds = timed(step, device, args.warmup, args.reps)
            rows.append(
                {"model": name + (" (compiled)" if compiled else ""), "batch": batch,
                 "size": args.size, "first_step_s": round(first, 1),
                 "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 1),
                 "max_memory_allocated_gib": peak_gib(device)}
            )  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
        del net, optimizer
    for row in rows:
        fcn = [r for r in rows if r["model"] == "fcn" and r["batch"] == row["batch"]]
        if row["model"].startswith("cfnet") and fcn:
            row["cfnet_vs_fcn_step"] = round(row["s_per_step"] / fcn[0]["s_per_step"], 3)
    return rows


def lightning_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """``python -m cfnet.train`` in a subprocess, timed by benchmarks/step_timer.py."""
    rows = []
    runs = [(b, False) for b in args.batches] if args.eager else []
    runs += [(max(args.batches), True)] if args.compile != "none" else []
    trainer = "trainer=gpu" if device.type == "cuda" else "trainer=cpu"
    for batch, compiled in runs:
        steps = args.train_steps if batch >= 8 else 2 * args.train_steps
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "speed.json"
            command = [
                sys.executable, "-m", "cfnet.train", trainer, *model_overrides(args),
                # scenes drawn at half the side and upscaled by the training pipeline (long side
                # → base_size): a quarter of the drawing work, so 8 workers keep a GPU fed
                f"dataset.image_size={args.size // 2}", f"dataset.base_size={args.size}",
                f"dataset.crop_size={args.size}", f"dataset.batch_size={batch}",
                f"dataset.sizes={{train:{batch * steps},val:2,test:2}}",
                f"trainer.max_steps={steps}", "+trainer.limit_val_batches=0",
                "trainer.num_sanity_val_steps=0", "test=false",
                f"module.compile={str(compiled).lower()}",
                "~callbacks.progress_bar", "~callbacks.model_checkpoint",
                "~callbacks.last_checkpoint", "~callbacks.report",
                "+callbacks.speed._target_=step_timer.StepTimer", f"+callbacks.speed.path={report}",
                f"+callbacks.speed.skip={args.skip_steps}", f"hydra.run.dir={tmp}/run",
            ]  # fmt: skip
            if device.type == "cpu":
                command.append("trainer.precision=32-true")
            paths = [str(ROOT / "benchmarks"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            if result.returncode != 0 or not report.is_file():
                print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
                raise RuntimeError(f"python -m cfnet.train failed ({result.returncode})")
            timing = json.loads(report.read_text())
            line = next((ln for ln in result.stdout.splitlines() if ln.startswith("cfnet: ")), "")
        rows.append(
            {"run": f"cfnet.train {trainer}" + (" module.compile=true" if compiled else ""),
             "batch": batch, "size": args.size, "steps": steps, "wall_s": round(wall, 1),
             **{k: v for k, v in timing.items() if k != "device"}, "run_line": line}
        )  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def latency_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    from torchvision.models.segmentation import deeplabv3_resnet50

    models = {
        "cfnet_r50": lambda: build("cfnet", args, device),
        "fcn_r50": lambda: build("fcn", args, device),
        "deeplabv3_r50 (torchvision)": lambda: deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=False
        ).to(device, memory_format=torch.channels_last),
    }
    modes = [("eager", None)] if args.eager else []
    modes += [("reduce-overhead", "reduce-overhead")] if args.compile != "none" else []
    image = torch.randn(1, 3, args.size, args.size, device=device)
    image = image.to(memory_format=torch.channels_last)
    rows = []
    for mode, compile_mode in modes:
        for name, make in models.items():
            if compile_mode and name.startswith("fcn"):
                continue  # (its compile time is better spent elsewhere in an 8-minute check)
            net = make().eval()
            fn = torch.compile(net, mode=compile_mode) if compile_mode else net

            def run(fn=fn):
                with torch.no_grad(), autocast(device):
                    return fn(image)

            reset_peak(device)
            first = first_call(run, device)
            seconds = timed(run, device, args.warmup, args.latency_reps)
            rows.append(
                {"model": name, "mode": mode, "size": args.size, "first_call_s": round(first, 1),
                 "ms_per_image": round(1000 * seconds, 2),
                 "max_memory_allocated_gib": peak_gib(device)}
            )  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        peer = next(r for r in rows if r["model"].startswith("deeplabv3") and r["mode"] == "eager")
        row["vs_deeplabv3_eager"] = round(row["ms_per_image"] / peer["ms_per_image"], 2)
    return rows


def ms_flip_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """The quickstart model (synthetic recipe) on synthetic 160² images, ms_flip protocol."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        train = compose("train", overrides=model_overrides(args) if args.dry_run else [])
        evaluate = compose("evaluate", overrides=["ckpt_path=x", "inference=ms_flip"])
    torch.manual_seed(0)
    net = instantiate(train.model).to(device).eval()
    pad = normalised_black(train.dataset.mean, train.dataset.std)
    images = torch.randn(args.eval_images, 3, 160, 160, device=device)
    rows = []
    for batch_size in (1, *args.eval_batches):
        protocol = instantiate(evaluate.inference, batch_size=batch_size)

        def run(protocol=protocol):
            with autocast(device):
                for i in range(images.shape[0]):
                    protocol(net, images[i : i + 1], pad)

        seconds = timed(run, device, 1, args.reps) / images.shape[0]
        rows.append({"inference.batch_size": batch_size, "images": images.shape[0],
                     "s_per_image": round(seconds, 4)})  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        row["speedup_vs_unbatched"] = round(rows[0]["s_per_image"] / row["s_per_image"], 2)
    return rows


TITLES = {
    "raw": "Raw training step (bf16 autocast on a GPU, channels_last, SGD)",
    "lightning": "Training through python -m cfnet.train (the Lightning Trainer, synthetic set)",
    "latency": "Batch-1 inference latency",
    "ms_flip": "ms_flip evaluation, windows one at a time (batch_size 1) vs batched",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--compile", choices=("none", "add", "only"), default=None,
                        help="compiled rows: none | add (default on CUDA) | only")  # fmt: skip
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 2])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--latency-reps", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--skip-steps", type=int, default=10)
    parser.add_argument("--eval-images", type=int, default=10)
    parser.add_argument("--eval-batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.compile is None:
        args.compile = "add" if device.type == "cuda" else "none"
    args.eager = args.compile != "only"
    if args.dry_run:
        args.size, args.batches, args.reps, args.warmup, args.latency_reps = 64, [4, 2], 1, 1, 2
        args.train_steps, args.skip_steps, args.eval_images, args.eval_batches = 3, 1, 1, [8]
    name = f"speed_{device.type}" + ("_compiled" if args.compile == "only" else "")
    name += "_dry_run" if args.dry_run else ""
    report = {"device": str(device), "load_average_1min": round(os.getloadavg()[0], 1)}
    sections = {"raw": raw_rows, "lightning": lightning_rows, "latency": latency_rows,
                "ms_flip": ms_flip_rows}  # fmt: skip
    for key in args.sections:
        if key == "ms_flip" and not args.eager:
            continue  # no compiled variant
        report[key] = sections[key](args, device)
        text = "\n\n".join(
            f"### {TITLES[k]}\n\n{markdown(report[k])}" for k in SECTIONS if k in report
        )
        save_results(name, report, text, args.results)  # after each section: partial results kept
    print(text)


if __name__ == "__main__":
    main()
