"""Refuse impossible configurations at start, before any data, weights or checkpoint is read.

The entry points call these on the composed config first thing. Each problem is one
``ValueError`` line that names the key, its value and what is allowed, e.g.
``model.heads=3: channels (512) must be divisible by heads (...); allowed: 1, 2, 4, ...``
(``cfnet.cli.errors.user_errors`` prints it as ``error: ...`` and exits with status 2). Unknown
config-group options (``dataset=nope``) are caught even earlier, before Hydra composes anything
(``cfnet.cli.command_line``).

Each rule is stated once, where it belongs. A rule about one argument lives in the constructor
that takes it (``cfnet.models``, the DataModules, ``cfnet.data.transforms``), so plain-Python use
gets it too; this module runs those constructors early and cheaply and names the config key:

* ``model``: built on the meta device (no memory, no weights); ``model.pretrained`` is resolved
  (a local file read with ``weights_only=True``, ``imagenet`` or a timm tag) but not loaded, and
  the tensors of ``model.init_from`` are matched against the model's (``plan_init``).
* ``dataset``: the DataModule is made (it reads nothing before ``setup``); for training, its
  augmentation is built too, which refuses a crop larger than the largest rescaled image.

What no single constructor can see is checked here:

* ``dataset.batch_size`` (the global batch) divisible by the number of processes
  (``trainer.devices × trainer.num_nodes``, the DataModule's ``per_process_batch``), and, when
  the head has the global-pooling branch (``model.use_gp``), at least 2 images per process: that
  branch batch-normalises one value per image, which PyTorch refuses for a batch of one.
* ``trainer.devices`` a positive count, -1 (all), ``auto`` or a device list;
  ``trainer.num_nodes`` positive (Lightning's own errors for these are tracebacks).
  ``trainer.precision`` is left to Lightning, whose one-line error lists the allowed values.
* ``loss.class_weight``: one weight per class of the dataset (``check_class_weight``, which the
  LightningModule also applies).
* ``trainer.max_epochs=-1`` (Lightning: no end) with no ``trainer.max_steps``: the poly
  learning-rate schedule (``optim.scheduler``) needs the run's length.
* ``cfnet.predict``'s own options (``export``, ``overlay_alpha``, ``overwrite``,
  ``on_bad_input``), and those of ``cfnet.explore`` (``port``, ``host``, the sizes and limits)
  and ``cfnet.cooccurrence`` (``images``, the sizes), which no constructor takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from cfnet.cli.errors import constructor_error, resolver_error
from cfnet.data.datamodule import per_process_batch
from cfnet.lit.class_weight import check_class_weight
from cfnet.models.backbone import check_hub_cache, resolve_pretrained
from cfnet.models.init_from import plan_init, read_source
from cfnet.utils.checkpoint_files import read_weights
from cfnet.utils.checks import allowed, is_int, is_number, keyed, one_of, positive_int
from cfnet.utils.hardware import inference_device, inference_precision


@contextmanager
def config_group(group: str) -> Iterator[None]:
    """Name the config key in a constructor's error: ``heads=3: ...`` becomes
    ``model.heads=3: ...`` (``cfnet.utils.checks.keyed``; Hydra's wrapper is taken off)."""
    try:
        yield
    except InterpolationResolutionError as err:  # a resolver's own message names its key
        cause = resolver_error(err)
        raise cause if isinstance(cause, ValueError | FileNotFoundError) else err from None
    except InstantiationException as err:
        cause = constructor_error(err)
        if not isinstance(cause, ValueError | FileNotFoundError):
            raise
        raise type(cause)(keyed(group, str(cause))) from cause
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(keyed(group, str(err))) from err


def check_model(model: DictConfig) -> None:
    """The ``model`` group (CFNet or FCN), built on the meta device: its constructors check
    every argument, with no memory for weights (0.06-0.6 s for ResNet-10-T to -101 on a 2-core
    CPU). The weights ``model.pretrained`` names are looked at on their own (found, and for a
    file readable as tensors only), never loaded here."""
    pretrained, init_from = model.get("pretrained"), model.get("init_from")
    with config_group("model"), torch.device("meta"):
        net = instantiate(model, pretrained=None, init_from=None)
        source = resolve_pretrained(str(pretrained), model.backbone) if pretrained else None
        if init_from:  # its tensors against the meta model's names and shapes (mmap: no copy)
            plan_init(net, read_source(init_from), OmegaConf.to_container(model, resolve=True))
    try:  # a file: tensors only (a pickle with code is refused); offline, a tag must be cached
        if isinstance(source, Path):
            read_weights(source)
        elif source is not None:
            check_hub_cache(source)
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"model.pretrained: {err}") from err


def check_dataset(dataset: DictConfig, training: bool) -> None:
    """The ``dataset`` group: its DataModule checks its own fields as it is made (nothing is read
    before ``setup``), and for training the augmentation checks the crop geometry."""
    with config_group("dataset"):
        datamodule = instantiate(dataset)
        if training:
            datamodule.train_transform()


def processes(trainer: DictConfig) -> int | None:
    """How many training processes the trainer config asks for, where the config says it."""
    devices, nodes = trainer.devices, trainer.get("num_nodes", 1)
    if is_int(devices) and devices >= 1:
        return devices * nodes
    if isinstance(devices, Iterable) and not isinstance(devices, str):
        return len(list(devices)) * nodes
    return None  # "auto", -1, "0,1": Lightning decides


def check_trainer(trainer: DictConfig) -> None:
    """The two Trainer options Lightning itself refuses only with a traceback (a ``TypeError``
    for ``devices=-2``), and that ``processes`` reads."""
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
    with config_group("dataset"):
        per_process = per_process_batch(dataset.batch_size, count)
    if model.get("use_gp", False) and per_process < 2:
        raise ValueError(
            f"dataset.batch_size={dataset.batch_size}: the global-pooling branch (model.use_gp) "
            f"needs at least 2 images per process ({count} process{'es' if count > 1 else ''}); "
            f"allowed: {allowed(m * count for m in range(2, 5))}, ..."
        )


def check_schedule(trainer: DictConfig) -> None:
    """The learning-rate schedule (``optim.scheduler``, the paper's poly decay over every step)
    needs the run's length: Lightning's ``max_epochs=-1`` with no ``max_steps`` has none."""
    if trainer.get("max_epochs") == -1 and trainer.get("max_steps", -1) == -1:
        raise ValueError(
            "trainer.max_epochs=-1: with trainer.max_steps=-1 the run has no end, and the "
            "learning rate (optim.scheduler: poly) decays over the whole run; allowed: "
            "trainer.max_epochs=1, 2, ... or trainer.max_steps=1, 2, ..."
        )


def check_train_config(cfg: DictConfig) -> None:
    """Everything ``cfnet.train`` is about to build, checked from the config alone."""
    check_model(cfg.model)
    check_dataset(cfg.dataset, training=True)
    if "loss" in cfg:  # one weight per class of the dataset
        check_class_weight(cfg.loss.class_weight, cfg.dataset.num_classes)
    check_trainer(cfg.trainer)
    check_batch(cfg.dataset, cfg.trainer, cfg.model)
    check_schedule(cfg.trainer)


def check_device_and_precision(cfg: DictConfig) -> None:
    """``cfnet.predict`` / ``cfnet.evaluate``'s ``device=`` (one that is not there included) and
    ``precision=``, before the checkpoint is read."""
    inference_device(cfg.device)
    inference_precision(cfg.precision, "cpu")


def check_eval_config(cfg: DictConfig) -> None:
    """``cfnet.evaluate``: the model comes from the checkpoint; dataset and trainer are checked."""
    check_dataset(cfg.dataset, training=False)
    check_trainer(cfg.trainer)
    check_device_and_precision(cfg)


PREDICT_EXPORTS = ("voc", "cityscapes")  # cfnet.predict export=...; null: masks + overlays


def check_predict_config(cfg: DictConfig) -> None:
    """``cfnet.predict``: the model comes from the checkpoint; its own options are checked."""
    check_dataset(cfg.dataset, training=False)
    check_device_and_precision(cfg)
    if cfg.export is not None and cfg.export not in PREDICT_EXPORTS:
        raise ValueError(f"export={cfg.export!r}: allowed: null, {allowed(PREDICT_EXPORTS)}")
    alpha = cfg.overlay_alpha
    if not is_number(alpha) or not 0 <= alpha <= 1:
        raise ValueError(f"overlay_alpha={alpha!r}: must be a number in [0, 1]")
    if not isinstance(cfg.overwrite, bool):
        raise ValueError(f"overwrite={cfg.overwrite!r}: allowed: true, false")
    one_of("on_bad_input", cfg.on_bad_input, ("error", "skip"))


def _positive_or_null(key: str, value: object) -> None:
    if value is not None:
        positive_int(key, value)


def _inspection_sizes(cfg: DictConfig) -> None:
    """``max_size`` and ``max_map_mb`` of ``cfnet.explore`` and ``cfnet.cooccurrence``."""
    positive_int("max_size", cfg.max_size)
    if not is_number(cfg.max_map_mb) or cfg.max_map_mb <= 0:
        raise ValueError(f"max_map_mb={cfg.max_map_mb!r}: must be a number > 0 (MiB)")


def check_explore_config(cfg: DictConfig) -> None:
    """``cfnet.explore``: the model comes from the checkpoint; the server's own options."""
    check_dataset(cfg.dataset, training=False)
    port = cfg.port
    if not is_int(port) or not 0 <= port <= 65535:
        raise ValueError(f"port={port!r}: allowed: 0 (a free port), 1 .. 65535")
    if not isinstance(cfg.host, str) or not cfg.host:
        raise ValueError(f"host={cfg.host!r}: an address such as 127.0.0.1 (the default)")
    _inspection_sizes(cfg)
    if not is_number(cfg.max_upload_mb) or cfg.max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb={cfg.max_upload_mb!r}: must be a number > 0 (MiB)")
    positive_int("keep_images", cfg.keep_images)
    _positive_or_null("matrix_images", cfg.matrix_images)
    _positive_or_null("threads", cfg.threads)


def check_cooccurrence_config(cfg: DictConfig) -> None:
    """``cfnet.cooccurrence``: the model comes from the checkpoint; its own options."""
    check_dataset(cfg.dataset, training=False)
    _inspection_sizes(cfg)
    _positive_or_null("images", cfg.images)
    _positive_or_null("threads", cfg.threads)
