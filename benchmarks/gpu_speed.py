"""Benchmark on the device the models run on (a GPU when CUDA is available), side by side.

The sections, in the order ``benchmarks/gpu_check.sh`` runs them (most important first); each
saves its own results file ``speed_<device>_<section>.{json,md}`` after every row, so a run cut
short keeps what it measured:

1. ``lightning``: images/s of CFNet-R50 through the real ``python -m cfnet.train`` (the Lightning
   Trainer, the loader with its workers, the optimiser, logging), 512², the device's precision
   (bf16 on a GPU), batch 16 and 2, on the synthetic set at 512² (scenes drawn at 256² and
   upscaled by the pipeline, so that drawing them does not limit the GPU).
2. ``quickstart``: the wall time of ``python -m cfnet.train`` with no argument (``make train``),
   start to exit, with the run's summary line and its test mIoU.
3. ``latency``: predict's path at batch 1 (the ``whole`` protocol: forward + softmax, the
   device's precision, channels_last), 512², CFNet-R50 against torchvision's DeepLabV3-R50;
   ``--compile add`` adds both compiled with CUDA graphs (``mode="reduce-overhead"``), with
   their compile time.
4. ``ms_flip``: the paper's multi-scale + flip protocol (``inference=ms_flip``) with the quickstart
   model on images of its size, windows one at a time (``inference.batch_size=1``) and batched;
   ``--compile add`` adds the batched windows compiled (``inference.compile=true``), with the
   first image's time (the compile).
5. ``raw``: one SGD training step of CFNet-R50 and FCN-R50 outside Lightning (what Lightning
   costs on top); ``--compile`` adds CFNet compiled as ``module.compile=true`` does.

``--compile only`` measures only the compiled rows (``speed_<device>_<section>_compiled``;
``lightning``: a batch-16 run with ``module.compile=true``). Timings synchronise the device
before reading the clock; memory is ``max_memory_allocated``.

    python benchmarks/gpu_speed.py                         # every section, on CUDA if present
    python benchmarks/gpu_speed.py --sections ms_flip --compile add   # on this CPU
    python benchmarks/gpu_speed.py --dry-run               # tiny sizes: checks the script

Saves into benchmarks/results/ (``--results`` elsewhere). Not a test.
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
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.data.transforms import normalised_black
from cfnet.evaluation.inference import SegmentationInference
from cfnet.utils.hardware import autocast, device_precision
from model_speed import train_step
from results_files import markdown, save_results

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("lightning", "quickstart", "latency", "ms_flip", "raw")
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


def cli(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m <args>`` with benchmarks/ and src/ importable; (the result, its wall time)."""
    paths = [str(ROOT / "benchmarks"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
        raise RuntimeError(f"python -m {args[0]} failed ({result.returncode})")
    return result, wall


def run_line(stdout: str) -> str:
    return next((ln for ln in stdout.splitlines() if ln.startswith("cfnet: ")), "")


def lightning_rows(args: argparse.Namespace, device: torch.device, save: Callable) -> list[dict]:
    """``python -m cfnet.train`` in a subprocess, timed by benchmarks/step_timer.py."""
    rows = []
    runs = [(b, False) for b in args.batches] if args.eager else []
    runs += [(max(args.batches), True)] if args.compile != "none" else []
    trainer = "trainer=gpu" if device.type == "cuda" else "trainer=cpu"
    for batch, compiled in runs:
        steps = args.train_steps if batch >= 8 else 2 * args.train_steps
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "speed.json"
            result, wall = cli([
                "cfnet.train", trainer, *model_overrides(args),
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
            ])  # fmt: skip
            timing = json.loads(report.read_text())
        rows.append(
            {"run": f"cfnet.train {trainer}" + (" module.compile=true" if compiled else ""),
             "model": "cfnet_r50", "batch": batch, "size": args.size, "steps": steps,
             "wall_s": round(wall, 1), **{k: v for k, v in timing.items() if k != "device"},
             "run_line": run_line(result.stdout)}
        )  # fmt: skip
        save(rows)
    return rows


def quickstart_rows(args: argparse.Namespace, device: torch.device, save: Callable) -> list[dict]:
    """``make train``: ``python -m cfnet.train`` as a new user runs it, start to exit."""
    tiny = ["dataset.sizes={train:32,val:4,test:4}", "trainer.max_epochs=1"] if args.dry_run else []
    with tempfile.TemporaryDirectory() as tmp:
        command = ["cfnet.train", *tiny, "~callbacks.progress_bar", f"hydra.run.dir={tmp}"]
        result, wall = cli(command)
        test = json.loads((Path(tmp) / "metrics" / "test.json").read_text())
    rows = [{"command": "python -m cfnet.train" + (" (dry run: tiny)" if tiny else ""),
             "wall_s": round(wall, 1), "test_mIoU": round(test["mIoU"], 4),
             "run_line": run_line(result.stdout)}]  # fmt: skip
    save(rows)
    return rows


class LogitsOnly(torch.nn.Module):
    """torchvision's segmentation models return ``{"out": logits}``: the logits, as cfnet's."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def latency_rows(args: argparse.Namespace, device: torch.device, save: Callable) -> list[dict]:
    """Batch-1 ``whole`` protocol (what ``cfnet.predict`` runs per picture) in the device's
    precision, channels_last; each model eager and, with ``--compile``, with CUDA graphs."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    def deeplab() -> torch.nn.Module:
        net = deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=False
        )
        return LogitsOnly(net).to(device, memory_format=torch.channels_last)

    models = {"cfnet_r50": lambda: build("cfnet", args, device), "deeplabv3_r50": deeplab}
    modes = [("eager", None)] if args.eager else []
    modes += [("reduce-overhead", "reduce-overhead")] if args.compile != "none" else []
    precision = device_precision(device.type)
    whole = SegmentationInference(
        mode="whole", scales=None, flip=False, base_size=args.size, crop_size=args.size,
        stride_rate=2 / 3, name="whole",
    )  # fmt: skip
    image = torch.randn(1, 3, args.size, args.size, device=device)
    image = image.to(memory_format=torch.channels_last)
    pad = [0.0, 0.0, 0.0]
    rows = []
    for mode, compile_mode in modes:
        for name, make in models.items():
            net = make().eval()
            fn = torch.compile(net, mode=compile_mode) if compile_mode else net

            def run(fn=fn, graphs=bool(compile_mode) and device.type == "cuda"):
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                with torch.no_grad(), autocast(device, precision):
                    return whole(fn, image, pad)

            reset_peak(device)
            first = first_call(run, device)
            seconds = timed(run, device, args.warmup, args.latency_reps)
            rows.append(
                {"model": name, "mode": mode, "precision": precision, "size": args.size,
                 "first_call_s": round(first, 1), "ms_per_image": round(1000 * seconds, 2),
                 "max_memory_allocated_gib": peak_gib(device)}
            )  # fmt: skip
            peer = next((r for r in rows if r["model"].startswith("deeplab")
                         and r["mode"] == mode), None)  # fmt: skip
            for row in rows:
                if peer and row["mode"] == mode:
                    row["vs_deeplabv3_same_mode"] = round(
                        row["ms_per_image"] / peer["ms_per_image"], 2
                    )
            save(rows)
    return rows


def ms_flip_rows(args: argparse.Namespace, device: torch.device, save: Callable) -> list[dict]:
    """The quickstart model (synthetic recipe) on random images of its size, ms_flip protocol,
    in the device's precision with channels_last (as ``cfnet.evaluate`` runs it)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        train = compose("train", overrides=model_overrides(args) if args.dry_run else [])
        evaluate = compose("evaluate", overrides=["ckpt_path=x", "inference=ms_flip"])
    torch.manual_seed(0)
    net = instantiate(train.model).to(device, memory_format=torch.channels_last).eval()
    pad = normalised_black(train.dataset.mean, train.dataset.std)
    size = train.dataset.image_size
    images = torch.randn(args.eval_images, 3, size, size, device=device)
    precision = device_precision(device.type)
    variants = [(1, False)] + [(b, False) for b in args.eval_batches] if args.eager else []
    variants += [(max(args.eval_batches), True)] if args.compile != "none" else []
    rows = []
    for batch_size, compiled in variants:
        protocol = instantiate(evaluate.inference, batch_size=batch_size, compile=compiled)

        def run(protocol=protocol, count=images.shape[0]):
            with torch.no_grad(), autocast(device, precision):
                for i in range(count):
                    protocol(net, images[i : i + 1], pad)

        first = first_call(lambda run=run: run(count=1), device) if compiled else None
        seconds = timed(run, device, 0 if compiled else 1, args.reps) / images.shape[0]
        rows.append({"inference.batch_size": batch_size, "inference.compile": compiled,
                     "precision": precision, "image_size": size, "images": images.shape[0],
                     "first_image_s": None if first is None else round(first, 1),
                     "s_per_image": round(seconds, 4)})  # fmt: skip
        unbatched = next((r["s_per_image"] for r in rows if r["inference.batch_size"] == 1), None)
        for row in rows:
            if unbatched:
                row["speedup_vs_unbatched"] = round(unbatched / row["s_per_image"], 2)
        save(rows)
    return rows


def raw_rows(args: argparse.Namespace, device: torch.device, save: Callable) -> list[dict]:
    rows = []
    variants = [("fcn", False), ("cfnet", False)] if args.eager else []
    variants += [("cfnet", True)] if args.compile != "none" else []
    precision = device_precision(device.type)
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

            step = train_step(net, optimizer, images, masks, lambda: autocast(device, precision))
            reset_peak(device)
            first = first_call(step, device)
            seconds = timed(step, device, args.warmup, args.reps)
            rows.append(
                {"model": name + (" (compiled)" if compiled else ""), "batch": batch,
                 "size": args.size, "precision": precision, "first_step_s": round(first, 1),
                 "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 1),
                 "max_memory_allocated_gib": peak_gib(device)}
            )  # fmt: skip
            fcn = {r["batch"]: r["s_per_step"] for r in rows if r["model"] == "fcn"}
            for row in rows:
                if row["model"].startswith("cfnet") and row["batch"] in fcn:
                    row["cfnet_vs_fcn_step"] = round(row["s_per_step"] / fcn[row["batch"]], 3)
            save(rows)
        del net, optimizer
    return rows


TITLES = {
    "lightning": "Training through python -m cfnet.train (the Lightning Trainer, synthetic set)",
    "quickstart": "The quickstart: python -m cfnet.train (make train), start to exit",
    "latency": "Predict latency, batch 1 (the whole protocol: forward + softmax)",
    "ms_flip": "ms_flip evaluation: windows one at a time (batch_size 1) vs batched",
    "raw": "Raw training step outside Lightning (SGD)",
}
SECTION_ROWS = {"lightning": lightning_rows, "quickstart": quickstart_rows,
                "latency": latency_rows, "ms_flip": ms_flip_rows, "raw": raw_rows}  # fmt: skip


def results_name(section: str, device: torch.device, args: argparse.Namespace) -> str:
    """``speed_<device>_<section>[_compiled][_dry_run]``: one file per section, so that a check
    cut short keeps every section it finished (``make_docs.py`` reads the ``cuda`` ones)."""
    name = f"speed_{device.type}_{section}" + ("_compiled" if args.compile == "only" else "")
    return name + ("_dry_run" if args.dry_run else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--compile", choices=("none", "add", "only"), default="none",
                        help="compiled rows: none | add | only (its own files)")  # fmt: skip
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
    args.eager = args.compile != "only"
    if args.dry_run:
        args.size, args.batches, args.reps, args.warmup, args.latency_reps = 64, [4, 2], 1, 1, 2
        args.train_steps, args.skip_steps, args.eval_images, args.eval_batches = 3, 1, 1, [8]
    for section in args.sections:
        if section == "quickstart" and not args.eager:
            continue  # no compiled variant (module.compile=auto decides)
        name = results_name(section, device, args)

        def save(rows: list[dict], section: str = section, name: str = name) -> None:
            print(rows[-1], file=sys.stderr, flush=True)
            report = {"device": str(device), "section": section,
                      "load_average_1min": round(os.getloadavg()[0], 1), "rows": rows}  # fmt: skip
            save_results(name, report, f"### {TITLES[section]}\n\n{markdown(rows)}", args.results)

        SECTION_ROWS[section](args, device, save)


if __name__ == "__main__":
    main()
