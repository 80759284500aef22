"""Refuse impossible configurations at start, before anything is built or any data is read.

The entry points call these on the composed config first thing. Each problem is one
``ValueError`` line that names the key, its value and what is allowed, e.g.
``model.heads=3: model.channels (512) must be divisible by model.heads; allowed: 1, 2, 4, ...``
(``cfnet.cli.user_errors`` prints it as ``error: ...`` and exits with status 2). The constructors
check their own arguments too, for plain-Python use; this module's job is to say it in the
config's words, early. Unknown config-group options (``dataset=nope``) are caught even earlier,
before Hydra composes anything (``cfnet.cli.checked_groups``).

The rules, and why each combination cannot work:

* ``model.k``, ``model.heads``, ``model.channels``, ``model.aux_channels``, ``model.enc_codewords``,
  ``model.num_classes``: positive integers; with the ACF module on, ``channels`` divisible by
  ``heads`` (each head gets d = channels / heads query, key and value channels).
* ``model.output_stride`` in {8, 16} (timm dilates Res-4/Res-5 for those only); ``model.phi``,
  ``model.attention_impl``, ``model.backbone`` (a timm ResNet) from their lists; dropouts in
  [0, 1); ``model.pretrained`` a readable local weights file (read with ``weights_only=True``),
  ``imagenet`` or a timm pretrained tag of ``model.backbone``.
* ``dataset.base_size`` and ``dataset.crop_size`` positive; ``dataset.scale_range`` = [low, high]
  with 0 < low <= high. The training pipeline pads every rescaled image up to the crop, so padding
  never forbids a crop; what cannot work is a crop larger than the *largest* rescaled image
  (``crop_size > round(scale_range[1] * base_size)``): every crop of every image would then be
  partly padding on both sides, which is always a mistake (usually a crop meant for another
  ``base_size``). Refused, naming the largest allowed crop.
* ``dataset.batch_size`` (the global batch) divisible by the number of processes
  (``trainer.devices × trainer.num_nodes``), and, when the head has the global-pooling branch
  (CFNet, ``use_gp``), at least 2 images per process: that branch batch-normalises one value per
  image, which PyTorch refuses for a batch of one.
* ``trainer.devices`` a positive count, -1 (all), ``auto`` or a device list;
  ``trainer.num_nodes`` positive. ``trainer.precision`` is left to Lightning, whose one-line error
  lists the allowed values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.checkpoints import read_weights
from cfnet.checks import allowed, is_int, is_number, one_of, positive_int
from cfnet.data.dataset import ON_BAD_SAMPLE
from cfnet.models.backbone import check_hub_cache, resolve_pretrained


@contextmanager
def config_group(group: str) -> Iterator[None]:
    """Put the config group in front of a constructor's error: ``heads=3: ...`` becomes
    ``model.heads=3: ...``. The constructors' arguments are named as their config keys
    (``cfnet.checks``), so the message names the key to change."""
    try:
        yield
    except InstantiationException as err:  # Hydra wraps what the constructor raised
        cause = err.__cause__
        if not isinstance(cause, ValueError | FileNotFoundError):
            raise
        raise type(cause)(f"{group}.{cause}") from cause
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"{group}.{err}") from err


def check_model(model: DictConfig) -> None:
    """The ``model`` group (CFNet or FCN): built on the meta device, so that its constructors
    (``cfnet.models``) check every argument, with no memory and no weights spent. The weights
    named by ``model.pretrained`` are looked at on their own, without being loaded."""
    with config_group("model"), torch.device("meta"):
        instantiate(model, pretrained=None)
    if model.get("pretrained"):
        with config_group("model"):
            source = resolve_pretrained(str(model.pretrained), model.backbone)
        try:  # a file: tensors only (weights_only=True / safetensors), a pickle with code is
            # refused; a hub tag: offline, it must be in the cache (timm fetches it later)
            if isinstance(source, Path):
                read_weights(source)
            else:
                check_hub_cache(source)
        except (ValueError, FileNotFoundError) as err:
            raise type(err)(f"model.pretrained: {err}") from err


def check_dataset(dataset: DictConfig, training: bool) -> None:
    """The ``dataset`` group's sizes and options (``training``: also the crop rule)."""
    for key in ("batch_size", "eval_batch_size", "base_size", "crop_size", "num_classes"):
        positive_int(f"dataset.{key}", dataset[key])
    workers = dataset.num_workers
    if workers != "auto" and (not is_int(workers) or workers < 0):
        raise ValueError(f"dataset.num_workers={workers!r}: allowed: auto, 0, 1, 2, ...")
    timeout = dataset.loader_timeout
    if not is_number(timeout) or timeout < 0:
        raise ValueError(
            f"dataset.loader_timeout={timeout!r}: seconds per batch, a number >= 0 (0: no limit)"
        )
    one_of("dataset.on_bad_sample", dataset.on_bad_sample, ON_BAD_SAMPLE)
    scales = list(dataset.scale_range)
    if len(scales) != 2 or not all(isinstance(s, int | float) for s in scales):
        raise ValueError(f"dataset.scale_range={scales}: must be [low, high]")
    low, high = scales
    if not 0 < low <= high:
        raise ValueError(f"dataset.scale_range={scales}: must be [low, high] with 0 < low <= high")
    if any(not isinstance(s, int | float) or s <= 0 for s in dataset.eval_scales):
        raise ValueError(f"dataset.eval_scales={list(dataset.eval_scales)}: must all be > 0")
    largest = round(high * dataset.base_size)
    if training and dataset.crop_size > largest:
        raise ValueError(
            f"dataset.crop_size={dataset.crop_size}: larger than the largest rescaled image "
            f"(dataset.scale_range[1] × dataset.base_size = {high} × {dataset.base_size} = "
            f"{largest}), so every crop would hold padding on two sides; allowed: 1 .. {largest}"
        )


def processes(trainer: DictConfig) -> int | None:
    """How many training processes the trainer config asks for, where the config says it."""
    devices, nodes = trainer.devices, trainer.get("num_nodes", 1)
    if is_int(devices) and devices >= 1:
        return devices * nodes
    if isinstance(devices, Iterable) and not isinstance(devices, str):
        return len(list(devices)) * nodes
    return None  # "auto", -1, "0,1": Lightning decides


def check_trainer(trainer: DictConfig) -> None:
    devices = trainer.devices
    if is_int(devices) and devices < 1 and devices != -1:
        raise ValueError(
            f"trainer.devices={devices}: allowed: a count 1, 2, ..., -1 (all), auto, "
            "or a list of device ids"
        )
    positive_int("trainer.num_nodes", trainer.get("num_nodes", 1))


def check_batch(dataset: DictConfig, trainer: DictConfig, model: DictConfig) -> None:
    """The global batch against the process count and the model's batch-norm needs."""
    count = processes(trainer)
    if count is None:
        return
    batch = dataset.batch_size
    if batch % count:
        allowed = [m * count for m in range(1, 5)]
        raise ValueError(
            f"dataset.batch_size={batch}: the global batch must be divisible by the number of "
            f"processes (trainer.devices × trainer.num_nodes = {count}); allowed: "
            f"{allowed(allowed)}, ..."
        )
    if model.get("use_gp", False) and batch // count < 2:
        allowed = [m * count for m in range(2, 5)]
        raise ValueError(
            f"dataset.batch_size={batch}: the global-pooling branch (model.use_gp) needs at least "
            f"2 images per process ({count} process{'es' if count > 1 else ''}); allowed: "
            f"{allowed(allowed)}, ..."
        )


def check_train_config(cfg: DictConfig) -> None:
    """Everything ``cfnet.train`` is about to build, checked from the config alone."""
    check_model(cfg.model)
    check_dataset(cfg.dataset, training=True)
    check_trainer(cfg.trainer)
    check_batch(cfg.dataset, cfg.trainer, cfg.model)


def check_eval_config(cfg: DictConfig) -> None:
    """``cfnet.evaluate``: the model comes from the checkpoint; dataset and trainer are checked."""
    check_dataset(cfg.dataset, training=False)
    check_trainer(cfg.trainer)


PREDICT_EXPORTS = ("voc", "cityscapes")  # cfnet.predict export=...; null: masks + overlays


def check_predict_config(cfg: DictConfig) -> None:
    """``cfnet.predict``: the model comes from the checkpoint; its own options are checked."""
    check_dataset(cfg.dataset, training=False)
    if cfg.export is not None and cfg.export not in PREDICT_EXPORTS:
        raise ValueError(f"export={cfg.export!r}: allowed: null, {allowed(PREDICT_EXPORTS)}")
    alpha = cfg.overlay_alpha
    if not is_number(alpha) or not 0 <= alpha <= 1:
        raise ValueError(f"overlay_alpha={alpha!r}: must be a number in [0, 1]")
    if not isinstance(cfg.overwrite, bool):
        raise ValueError(f"overwrite={cfg.overwrite!r}: allowed: true, false")
    one_of("on_bad_input", cfg.on_bad_input, ("error", "skip"))
