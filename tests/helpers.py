"""Test helpers: the tiny-run config, subprocess entry points (one at a time or a batch), callbacks
that interrupt a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

from cli_server import forked_run

# A run that exercises the whole application in seconds, in named parts (a test takes the parts
# it needs). The values are the tiny run's; TINY_RUN is all of them.
# A tiny network: timm's resnet10t, a narrow head. Heads are left to the config (a K×H sweep sets
# them; 16 channels divide by 1, 2, 4).
TINY_NET = ["model.backbone=resnet10t", "model.channels=16", "model.aux_channels=8"]
TINY_CFNET = [*TINY_NET, "model.heads=2"]
# 8 / 5 / 4 synthetic images of 64², already at base and crop size (evaluate / predict use it).
TINY_DATA = [
    "dataset.sizes={train:8,val:5,test:4}",
    "dataset.image_size=64",
    "dataset.base_size=64",
    "dataset.crop_size=64",
]
TINY_BATCHES = ["dataset.batch_size=4", "dataset.eval_batch_size=2"]
# One epoch, no sanity pass, every step logged, no progress bar in captured output.
TINY_SCHEDULE = [
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "~callbacks.progress_bar",
]
# fp32 whatever the host: the CPU presets pick bf16 where the CPU computes it natively, and tests
# compare numbers across runs.
FP32 = ["trainer.precision=32-true"]
TINY_RUN = [*TINY_CFNET, *TINY_DATA, *TINY_BATCHES, *TINY_SCHEDULE, *FP32]


# The same for the file datasets' tiny trees (12×16-pixel images): small crops, a tiny model.
TINY_FILE_RUN = [
    "dataset.base_size=16",
    "dataset.crop_size=12",
    "dataset.num_workers=0",
    "dataset.batch_size=2",
    *TINY_CFNET,
    *FP32,
    "~callbacks.progress_bar",
]


def run_cli(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` as a user would; returns the CompletedProcess.

    The process is a fork of a server that has imported the libraries already
    (``cli_server``), unless the call needs a fresh interpreter."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    result = forked_run(module, list(args), full_env, cwd) or subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python -m {module} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def train_in_process(cfg_overrides: list[str], output_dir: Path) -> dict[str, float]:
    """``cfnet.train`` without a subprocess (the same compose + ``train(cfg)``), run dir given."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cfnet.train import train
    from conftest import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=cfg_overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir)
        del cfg.hydra
    return train(cfg)


def make_checkpoint(tmp_path: Path, dataset: str, varied: bool = False) -> Path:
    """A randomly initialised tiny model with the classes of ``dataset``, saved as a checkpoint
    (the two keys ``SegmentationModule.from_checkpoint`` reads).

    Such a model gives every pixel the same class: its classifier's random bias outweighs the
    features. ``varied=True`` zeroes that bias, so the classes follow the image (several classes
    per image, many pixels that change class when the image is mirrored or rescaled) and a
    protocol that handled images wrongly would change the scores; and it multiplies the
    classifier's weights by 1000, so that the logits spread over tens, as a trained model's do,
    not hundredths (few pixels are then near ties between two classes).
    """
    import torch
    from hydra.utils import instantiate

    from conftest import compose_config

    cfg = compose_config(
        "train",
        [f"dataset={dataset}", "model.backbone=resnet10t", "model.channels=16", "model.aux=false"],
    )
    torch.manual_seed(0)
    module = instantiate(cfg.module)
    if varied:
        classifier = module.net.head.classifier[-1]
        torch.nn.init.zeros_(classifier.bias)
        classifier.weight.data *= 1000
    path = tmp_path / f"{dataset}{'-varied' if varied else ''}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


# ---- independent reference scores ----------------------------------------------------------
# What a checkpoint scores on the synthetic split, computed without cfnet.metrics, cfnet.inference,
# the data pipeline or Lightning: the checkpoint's weights in the plain model (cfnet.models, built
# from the checkpoint's own model config), images rendered and normalised by hand, float64, and
# a NumPy confusion matrix. Tests compare what ``cfnet.evaluate`` writes with it.


def plain_model(ckpt_path: Path):
    """(the checkpoint's segmentor as a plain nn.Module in eval mode, its hparams)."""
    import torch
    from hydra.utils import instantiate

    ckpt = torch.load(ckpt_path, weights_only=True)
    hparams = ckpt["hyper_parameters"]
    model = instantiate({**hparams["model"], "pretrained": None, "init_from": None})
    model.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()})
    return model.eval(), hparams


def synthetic_split(split: str, count: int, size: int, mean, std):
    """(float64 1×3×H×W images, H×W masks): the first ``count`` samples of ``split`` of the
    synthetic dataset (default seed and layout), normalised as documented: (x/255 − mean)/std."""
    import numpy as np
    import torch

    from cfnet.data.synthetic import render_scene

    images, masks = [], []
    for i in range(count):
        image, mask, _ = render_scene(0, split, i, size, 0.3, 3)
        x = (image.astype(np.float64) / 255 - np.asarray(mean)) / np.asarray(std)
        images.append(torch.from_numpy(x).permute(2, 0, 1)[None])
        masks.append(mask)
    return images, masks


def reference_probs(ckpt_path: Path, count: int, size: int, probs_of, tie: float = 1e-3):
    """(C×H×W float64 class probabilities, masks, hparams) of the checkpoint's model on the first
    ``count`` synthetic val images of ``size``², ``probs_of(model, image, pad_value)`` computing
    them in float64. Those of the first image in float32 must lie within ``tie / 10`` of them
    (``reference_scores`` allows a run ``tie / 2``: 5× room for the order of another float32
    run's sums), so a float32 run picks the same class wherever the two best float64
    probabilities are ``tie`` apart. (One image: float64 convolutions are slow on the CPU.)"""
    import numpy as np
    import torch

    model, hparams = plain_model(ckpt_path)
    images, masks = synthetic_split("val", count, size, hparams["mean"], hparams["std"])
    black = torch.tensor([-m / s for m, s in zip(hparams["mean"], hparams["std"], strict=True)])
    with torch.no_grad():  # one batch: the model sees each image on its own (eval mode)
        p64 = list(probs_of(model.double(), torch.cat(images), black.double()).numpy())
        p32 = probs_of(model.float(), images[0].float(), black.float())[0].numpy()
    drift = float(np.abs(p64[0] - p32).max())
    assert drift < tie / 10, f"float32 probabilities {drift:.2g} from float64: raise tie"
    return p64, masks, hparams


def reference_scores(
    probs: list, masks: list, num_classes: int, tie: float = 1e-3, ignore_index: int = 255
) -> dict:
    """pixAcc, per-class IoU and mIoU of the argmax of ``probs`` (C×H×W float64 arrays) against
    ``masks``, from a ``np.bincount`` confusion matrix; with how far a run that computes the same
    probabilities to within ``tie / 2`` (fp32) may be from them.

    A pixel whose top two probabilities are ``tie`` or more apart has the same argmax in such a
    run; one that is not (a near tie) may go to any class within ``tie`` of its maximum. ``k_c``
    near-tie pixels that have class c among those candidates move c's intersection and union by
    at most ``k_c`` each, hence its IoU I/U by at most 2·k_c / (U − k_c); ``k`` near ties move
    pixAcc by at most k / labelled. A class with an empty union has no IoU (left out of the mean).
    """
    import numpy as np

    confusion = np.zeros((num_classes, num_classes), np.int64)
    near = np.zeros(num_classes, np.int64)
    ties = 0
    for p, mask in zip(probs, masks, strict=True):
        keep = mask != ignore_index
        pred = p.argmax(0)
        confusion += np.bincount(
            mask[keep].astype(np.int64) * num_classes + pred[keep], minlength=num_classes**2
        ).reshape(num_classes, num_classes)
        candidates = (p >= p.max(0, keepdims=True) - tie) & keep
        tied = candidates.sum(0) > 1
        ties += int(tied.sum())
        near += (candidates & tied).sum((1, 2))
    labelled = int(confusion.sum())
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = [float(i / u) if u else None for i, u in zip(inter, union, strict=True)]
    slack = [2 * k / (u - k) if u > k else 1.0 for k, u in zip(near, union, strict=True)]
    present = [c for c in range(num_classes) if iou[c] is not None]
    return {
        "pixAcc": float(inter.sum() / labelled),
        "class_iou": iou,
        "mIoU": float(np.mean([iou[c] for c in present])),
        "labelled_pixels": labelled,
        "pixAcc_slack": ties / labelled,
        "class_iou_slack": slack,
        "mIoU_slack": float(np.mean([slack[c] for c in present])),
    }


def assert_scores_match(written: dict, reference: dict, class_names: list[str]) -> None:
    """A ``metrics/<split>.json`` equals the reference, to its near-tie slack plus float rounding
    (1e-9: both divide the same integer counts)."""
    import pytest

    assert written["labelled_pixels"] == reference["labelled_pixels"]
    assert written["pixAcc"] == pytest.approx(
        reference["pixAcc"], abs=reference["pixAcc_slack"] + 1e-9
    )
    assert written["mIoU"] == pytest.approx(reference["mIoU"], abs=reference["mIoU_slack"] + 1e-9)
    for name, iou, slack in zip(
        class_names, reference["class_iou"], reference["class_iou_slack"], strict=True
    ):
        if iou is None:
            assert written["class_iou"][name] is None, name
        else:
            assert written["class_iou"][name] == pytest.approx(iou, abs=slack + 1e-9), name


def assert_resumed_equals_straight(
    straight_dir: Path, resumed_dir: Path, steps: int, rtol: float, atol: float
) -> tuple[dict, dict]:
    """The ``last.ckpt`` of a resumed run against the uninterrupted run's: the same step count
    and the same weights (tolerance: the caller's, by device). Returns both checkpoints."""
    import torch

    straight, resumed = (
        torch.load(Path(d) / "checkpoints" / "last.ckpt", weights_only=True)
        for d in (straight_dir, resumed_dir)
    )
    assert resumed["global_step"] == straight["global_step"] == steps
    for name, tensor in straight["state_dict"].items():
        torch.testing.assert_close(
            resumed["state_dict"][name], tensor, rtol=rtol, atol=atol, msg=name
        )
    return straight, resumed


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class SimulatedKill(Exception):
    """Stands for a job killed mid-run (Lightning would turn KeyboardInterrupt into sys.exit)."""


class InterruptAfterEpoch(L.Callback):
    """Simulates a killed job: raises as the epoch after ``epoch`` starts, i.e. once ``epoch``
    has been validated and every end-of-epoch checkpoint has been written. With ``marker``, once
    per run: it writes ``marker`` when it raises and does nothing once it exists (a resumed run
    keeps its callbacks, this one too)."""

    def __init__(self, epoch: int, marker: str | None = None) -> None:
        self.epoch, self.marker = epoch, Path(marker) if marker else None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch + 1:
            if self.marker is not None:
                if self.marker.exists():
                    return
                self.marker.write_text("")
            raise SimulatedKill(f"killed after epoch {self.epoch}")


class WaitForSignal(L.Callback):
    """Stands for the moment a scheduler stops a job: at the end of optimiser step ``step`` -- or
    of the first validation batch of fitting, with ``in_validation`` -- write ``marker`` (the
    test's cue to send signals from outside) and wait, up to a minute, until SIGTERM has arrived.
    The run then stops where Lightning and cfnet stop it, as it would in production. With
    ``hold``, it then writes ``<marker>.signalled`` and stays ``hold`` s longer (the cue for a
    second signal)."""

    def __init__(
        self, marker: str, step: int = -1, in_validation: bool = False, hold: float = 0
    ) -> None:
        self.marker, self.step, self.in_validation = Path(marker), step, in_validation
        self.hold = hold

    def _wait(self, trainer: L.Trainer) -> None:
        if self.marker.exists():  # once per run
            return
        self.marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.hold:
            Path(f"{self.marker}.signalled").write_text("")
            deadline = time.monotonic() + self.hold
            while time.monotonic() < deadline:
                time.sleep(0.01)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.in_validation and trainer.global_step == self.step:
            self._wait(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if self.in_validation and not trainer.sanity_checking:
            self._wait(trainer)


def run_cli_batch(
    calls: list[tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]],
    cwd: Path | None = None,
) -> list[subprocess.CompletedProcess]:
    """``run_cli(module, *args, env=env, check=False)`` for each call, in ``cwd`` (default: this
    process's); returns one CompletedProcess per call."""
    return [
        run_cli(call[0], *call[1], env=call[2] if len(call) > 2 else None, check=False, cwd=cwd)
        for call in calls
    ]
