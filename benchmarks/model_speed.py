"""Benchmark: CFNet-R50 against its peers, measured side by side in one run on this machine.

1. ``train``: one SGD step (forward with the auxiliary head, losses, backward, update) of CFNet-R50
   and the FCN-R50 baseline (same backbone, output stride 8), fp32 and bf16 autocast.
2. ``inference``: CFNet-R50 against torchvision's DeepLabV3-R50 (``weights=None``, also OS8) at
   one 512² image: fp32, bf16 autocast, channels_last, channels_last + bf16.
3. ``profile``: where CFNet's fp32 training step goes (backbone / heads / loss forward, backward +
   update).
4. ``loader``: the Pascal-VOC data pipeline (JPEG + PNG decode, the paper's augmentation, 512
   crops) in one process = images/s per loader worker, next to the model's training images/s.

    python benchmarks/model_speed.py [--sizes 256 512] [--batch 2] [--reps 2]

Prints markdown tables and saves benchmarks/results/model_speed.{json,md}. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.lit.losses import segmentation_loss
from results_files import markdown, save_results

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 21


def build(model: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "dataset=pascal_voc", *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.model)


def timed(step: Callable[[], object], reps: int) -> float:
    step()  # warm-up (allocator, kernels, oneDNN primitives)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    precision: Callable[[], AbstractContextManager],
) -> Callable[[], None]:
    """One training step as ``SegmentationModule`` takes it: ``forward_train`` under
    ``precision()`` (autocast or nothing), the paper's loss with the auxiliary and SE terms, an
    SGD step. Shared by this benchmark and ``gpu_speed.py``."""

    def step() -> None:
        with precision():
            out = net.forward_train(images)
            loss = segmentation_loss(out, masks, aux_weight=0.2, se_weight=0.2, ignore_index=255)
        optimizer.zero_grad(set_to_none=True)
        loss["total"].backward()
        optimizer.step()

    return step


TRAIN_VARIANTS = ("fp32", "bf16", "channels_last+bf16")


def train_rows(sizes: list[int], batch: int, reps: int) -> list[dict]:
    rows = []
    for name in ("fcn", "cfnet"):
        net = build(name).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        for variant in TRAIN_VARIANTS:
            fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
            net.to(memory_format=fmt)
            for size in sizes:
                images = torch.randn(batch, 3, size, size).to(memory_format=fmt)
                masks = torch.randint(0, NUM_CLASSES, (batch, size, size))

                bf16 = "bf16" in variant
                step = train_step(net, optimizer, images, masks, lambda bf16=bf16: autocast(bf16))
                seconds = timed(step, reps)
                rows.append(
                    {"model": name, "size": size, "variant": variant, "batch": batch,
                     "s_per_step": round(seconds, 3), "images_per_s": round(batch / seconds, 2)}
                )  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        if row["model"] == "cfnet":
            fcn = next(
                r for r in rows
                if r["model"] == "fcn" and r["size"] == row["size"]
                and r["variant"] == row["variant"]
            )  # fmt: skip
            row["vs_fcn"] = round(row["s_per_step"] / fcn["s_per_step"], 2)
    return rows


def inference_rows(size: int, reps: int) -> list[dict]:
    from torchvision.models.segmentation import deeplabv3_resnet50

    models = {
        "cfnet_r50": build("cfnet").eval(),
        # the same stem as torchvision's ResNet-50: isolates the head from the backbone variant
        "cfnet_r50_tv_stem": build("cfnet", "model.backbone=resnet50").eval(),
        "deeplabv3_r50": deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=False
        ).eval(),
    }
    rows = []
    for variant in ("fp32", "bf16", "channels_last", "channels_last+bf16"):
        for name, net in models.items():
            fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
            net = net.to(memory_format=fmt)
            image = torch.randn(1, 3, size, size).to(memory_format=fmt)

            def run(net=net, image=image, bf16="bf16" in variant):
                with torch.no_grad(), autocast(bf16):
                    return net(image)

            seconds = timed(run, reps)
            rows.append({"variant": variant, "model": name, "size": size,
                         "s_per_image": round(seconds, 3)})  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        if row["model"].startswith("cfnet"):
            peer = next(
                r for r in rows if r["model"] == "deeplabv3_r50" and r["variant"] == row["variant"]
            )
            row["vs_deeplabv3"] = round(row["s_per_image"] / peer["s_per_image"], 2)
    return rows


def profile_rows(size: int, batch: int, reps: int) -> list[dict]:
    """Forward parts timed one by one (same inputs), backward + update = step − forward."""
    net = build("cfnet").train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(batch, 3, size, size)
    masks = torch.randint(0, NUM_CLASSES, (batch, size, size))
    res4, res5 = net.backbone(images)
    out = net.forward_train(images)
    parts = {
        "backbone forward": lambda: net.backbone(images),
        "CFNet head forward (ACF + GP + classifier)": lambda: net.head(res5),
        "auxiliary FCN head forward": lambda: net.aux_head(res4),
        "losses (on the upsampled logits)": lambda: segmentation_loss(
            out._replace(
                logits=out.logits.detach().requires_grad_(),
                aux_logits=out.aux_logits.detach().requires_grad_(),
            ),
            masks, aux_weight=0.2, se_weight=0.2, ignore_index=255,
        ),
    }  # fmt: skip

    def step():
        loss = segmentation_loss(
            net.forward_train(images), masks, aux_weight=0.2, se_weight=0.2, ignore_index=255
        )["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        seconds = {name: timed(fn, reps) for name, fn in parts.items()}
    total = timed(step, reps)
    # not timed on its own: what the timed forward parts leave of the whole step
    seconds["backward + SGD update (derived: whole step − the parts above)"] = max(
        total - sum(seconds.values()), 0.0
    )
    return [
        {"part": name, "seconds": round(s, 3), "share_pct": round(100 * s / total, 1)}
        for name, s in seconds.items()
    ] + [{"part": "whole training step", "seconds": round(total, 3), "share_pct": 100.0}]


def loader_rows(crop: int, images: int) -> list[dict]:
    """A VOC-format tree of 500×375 JPEGs, read through the real pascal_voc DataModule."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "VOCdevkit" / "VOC2012"
        for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (base / folder).mkdir(parents=True)
        names = [f"2007_{i:06d}" for i in range(images)]
        for name in names:
            smooth = rng.integers(0, 255, (24, 32, 3), np.uint8)
            photo = Image.fromarray(smooth).resize((500, 375), Image.BILINEAR)
            photo.save(base / "JPEGImages" / f"{name}.jpg", quality=90)
            mask = np.kron(rng.integers(0, 21, (15, 20)), np.ones((25, 25))).astype(np.uint8)
            Image.fromarray(mask, mode="L").save(base / "SegmentationClass" / f"{name}.png")
        for split in ("train", "val"):
            (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names))
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=["dataset=pascal_voc", f"dataset.root={tmp}", f"dataset.crop_size={crop}",
                           "dataset.num_workers=0", "dataset.batch_size=1"],
            )  # fmt: skip
        datamodule = instantiate(cfg.dataset)
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        next(iter(loader))
        start = time.perf_counter()
        count = sum(batch["image"].shape[0] for batch in loader)
        seconds = time.perf_counter() - start
    return [{"pipeline": f"pascal_voc train, 500×375 JPEG → {crop}² crop", "images": count,
             "images_per_s_per_worker": round(count / seconds, 1)}]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--loader-images", type=int, default=48)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    report = {"threads": threads}
    size = max(args.sizes)
    report["train"] = train_rows(args.sizes, args.batch, args.reps)
    report["inference"] = inference_rows(size, args.reps + 1)
    report["profile"] = profile_rows(size, args.batch, args.reps)
    report["loader"] = loader_rows(size, args.loader_images)
    titles = {
        "train": f"Training step, batch {args.batch}, 21 classes (median of {args.reps})",
        "inference": f"Inference latency, one {size}² image",
        "profile": f"Where CFNet-R50's fp32 training step goes ({size}², batch {args.batch})",
        "loader": "Data pipeline, one process (= per loader worker)",
    }
    text = "\n\n".join(f"### {titles[k]}\n\n{markdown(report[k])}" for k in titles) + "\n"
    print(text)
    save_results("model_speed", report, text)


if __name__ == "__main__":
    main()
