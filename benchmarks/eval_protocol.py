"""Cost of the evaluation protocols (cfnet.evaluation.inference): forward passes, seconds an image.

1. Counted, no model needed: how many crop-sized forward passes ``whole`` / ``slide`` / ``ms_flip``
   run for typical images of each dataset (VOC 500×375, ADE20K 683×512, Cityscapes 2048×1024),
   with the datasets' own base / crop size and scales from conf/.
2. Measured on this machine: seconds per image of each protocol for a checkpoint on images of a
   given size, with a dataset's protocol settings (default: 520², the long side at which the paper
   evaluates VOC, Context and ADE20K, with VOC's base 520 / crop 480 windows).

    python benchmarks/eval_protocol.py [--ckpt outputs/default/<time>/checkpoints/best-*.ckpt]

Prints markdown tables and saves benchmarks/results/eval_protocol.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.evaluation.inference import SegmentationInference, window_starts
from results_files import markdown, save_results

ROOT = Path(__file__).resolve().parents[1]
TYPICAL = {"pascal_voc": (375, 500), "ade20k": (512, 683), "cityscapes": (1024, 2048)}
PROTOCOLS = ("whole", "slide", "ms_flip")


def protocol(dataset: str, preset: str) -> SegmentationInference:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "evaluate", overrides=["ckpt_path=x", f"dataset={dataset}", f"inference={preset}"]
        )
    return instantiate(cfg.inference)


def crop_passes(p: SegmentationInference, height: int, width: int) -> tuple[int, float]:
    """(forward passes, pixels processed relative to one crop_size² pass) for one image."""
    passes, pixels = 0, 0.0
    for scale in p.scales or [None]:
        h, w = p.scaled_size(height, width, scale)
        if p.mode == "whole":
            n, area = 1, h * w
        elif max(h, w) <= p.crop_size:
            n, area = 1, p.crop_size**2
        else:
            n = len(window_starts(h, p.crop_size, p.stride)) * len(
                window_starts(w, p.crop_size, p.stride)
            )
            area = n * p.crop_size**2
        flips = 2 if p.flip else 1
        passes += n * flips
        pixels += area * flips
    return passes, pixels / p.crop_size**2


def counted() -> list[dict]:
    rows = []
    for dataset, (h, w) in TYPICAL.items():
        for preset in PROTOCOLS:
            passes, work = crop_passes(protocol(dataset, preset), h, w)
            rows.append(
                {"dataset": dataset, "image": f"{w}×{h}", "protocol": preset, "passes": passes,
                 "work_vs_one_crop": round(work, 2)}
            )  # fmt: skip
    return rows


def measured(ckpt: Path, size: int, images: int, dataset: str) -> list[dict]:
    from cfnet.lit import SegmentationModule

    module = SegmentationModule.from_checkpoint(ckpt).eval()
    torch.manual_seed(0)
    batch = torch.randn(images, 3, size, size)
    rows = []
    for preset in PROTOCOLS:
        p = protocol(dataset, preset)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            p(module.net, batch[:1], module.pad_value())  # warm-up
            start = time.perf_counter()
            for i in range(images):
                p(module.net, batch[i : i + 1], module.pad_value())
        seconds = (time.perf_counter() - start) / images
        rows.append({"protocol": preset, "passes": crop_passes(p, size, size)[0],
                     "s_per_image": round(seconds, 4)})  # fmt: skip
    base = rows[0]["s_per_image"]
    for row in rows:
        row["vs_whole"] = round(row["s_per_image"] / base, 1)
    return rows


# Single passes of the ms_flip protocol, taken apart (mode, scales, flip); crop = 160 (synthetic).
BREAKDOWN = {
    "whole": ("whole", None, False),
    "whole + flip": ("whole", None, True),
    "scale 0.75, whole image": ("whole", [0.75], False),
    "scale 0.75, padded to the crop": ("slide", [0.75], False),
    "scale 1.25, whole image": ("whole", [1.25], False),
    "scale 1.25, crop windows": ("slide", [1.25], False),
    "6 scales + flip, whole images": ("whole", [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], True),
    "6 scales + flip, windows (ms_flip)": ("slide", [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], True),
}


def breakdown(ckpt: Path, images: int) -> list[dict]:
    """mIoU of each kind of pass on the first ``images`` synthetic test images."""
    from torchmetrics.classification import MulticlassJaccardIndex

    from cfnet.lit import SegmentationModule

    module = SegmentationModule.from_checkpoint(ckpt).eval()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "evaluate", overrides=["ckpt_path=x", "split=test", f"dataset.sizes.test={images}"]
        )
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("test")
    ambiguous = cfg.dataset.class_groups.ambiguous
    rows = []
    for name, (mode, scales, flip) in BREAKDOWN.items():
        p = SegmentationInference(
            mode=mode, scales=scales, flip=flip, base_size=cfg.dataset.base_size,
            crop_size=cfg.dataset.crop_size, stride_rate=2 / 3,
        )  # fmt: skip
        iou = MulticlassJaccardIndex(cfg.dataset.num_classes, average=None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for sample in datamodule.datasets["test"]:
                probs = p(module.net, sample["image"][None], module.pad_value())
                iou.update(probs.argmax(1), sample["mask"][None])
        per_class = 100 * iou.compute()
        rows.append(
            {
                "passes": name,
                "mIoU": round(per_class.mean().item(), 1),
                "ambiguous mIoU": round(per_class[ambiguous].mean().item(), 1),
            }
        )
    return rows


def checkpoint_record(ckpt: Path) -> dict:
    """Which checkpoint the timings and mIoUs belong to: its path and the first 16 hex digits of
    its sha256 (to tell two files of the same name apart); the code's commit is in the record."""
    digest = hashlib.sha256()
    with ckpt.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(ckpt), "sha256_16": digest.hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", type=Path, help="checkpoint to time (default: skip timing)")
    parser.add_argument(
        "--dataset", default="pascal_voc", help="the protocols' settings (base / crop, scales)"
    )
    parser.add_argument(
        "--size", type=int, default=520, help="square image side to time (the paper's base size)"
    )
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument(
        "--breakdown", type=int, default=0, help="mIoU of each kind of pass on N synthetic images"
    )
    args = parser.parse_args()

    report = {"threads": torch.get_num_threads(), "counted": counted()}
    text = "### Forward passes per image (counted)\n\n" + markdown(report["counted"]) + "\n"
    if args.ckpt:
        report["checkpoint"] = checkpoint_record(args.ckpt)
        text += f"\nCheckpoint: `{args.ckpt}` (sha256 {report['checkpoint']['sha256_16']}…).\n"
        report["measured"] = measured(args.ckpt, args.size, args.images, args.dataset)
        text += (
            f"\n### Seconds per image, {args.size}² images, {args.ckpt.name} "
            f"({args.dataset} sizes, bf16 autocast, {torch.get_num_threads()} threads)\n\n"
            + markdown(report["measured"])
            + "\n"
        )
    if args.ckpt and args.breakdown:
        report["breakdown"] = breakdown(args.ckpt, args.breakdown)
        text += (
            f"\n### The ms_flip passes taken apart, {args.breakdown} synthetic test images\n\n"
            + markdown(report["breakdown"])
            + "\n"
        )
    print(text)
    save_results("eval_protocol", report, text)


if __name__ == "__main__":
    main()
