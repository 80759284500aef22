"""What the machine offers, decided in one place: the default trainer's device and precision (and
those of ``cfnet.predict`` / ``cfnet.evaluate``: ``device=`` / ``precision=``), the loader's
worker count, and whether compiling the training step pays.

``trainer=auto`` (the default of ``cfnet.train``) runs on one GPU when CUDA is available, with the
GPU preset's precision (bf16 autocast), and on the CPU otherwise (``cpu_precision``);
``trainer=cpu`` / ``trainer=gpu`` still force either. The loader and compile rules below follow
the device the trainer actually uses, so they hold for every preset alike.

The break-even of ``torch.compile`` comes from the one measurement we have (issue 13, one H200,
torch 2.11, CFNet-R50 512², batch 16, bf16): 150 img/s eager, 169 img/s compiled, after a 68 s
compile. Compiling saves 1/150 − 1/169 s ≈ 0.75 ms per image, so it pays back its 68 s after about
91,000 training images (≈ 5,700 steps of 16); the quickstart (6,000 images) stays eager, the
paper's Pascal VOC run (50 epochs × 10,582 images) is compiled.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext

import torch
from lightning.pytorch.accelerators import CPUAccelerator

from cfnet.utils.checks import one_of

# Loader workers per training process on an accelerator: the H200 quickstart went from
# 6.3 it/s (no workers) to 37.6 it/s with 8; more only compete with the main process.
MAX_WORKERS = 8
# Training images after which compiling pays back its compile time (see the module doc).
COMPILE_PAYS_AFTER_IMAGES = 91_000
# The precisions predict / evaluate accept (``precision=``; Lightning's names for the same modes).
PRECISIONS = ("bf16-mixed", "16-mixed", "32-true")


def cpu_precision() -> str:
    """bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16 / AMX), else fp32.

    On such CPUs bf16-mixed training steps of the R50 models took 1.5–1.8× less time than fp32
    (weights and optimiser state stay fp32; docs/performance.md); elsewhere bf16 is emulated and
    slower than fp32.
    """
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    native = native or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16-mixed" if native else "32-true"


def best_accelerator() -> str:
    """``gpu`` when CUDA is available, else ``cpu`` (the ``${best_accelerator:}`` resolver)."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def device_precision(device_type: str) -> str:
    """The precision ``auto`` picks on a device of ``device_type``: bf16 autocast on a GPU that
    computes bf16 (Ampere and newer; the GPU preset), fp16 autocast on older GPUs,
    ``cpu_precision`` on the CPU, fp32 on anything else (MPS)."""
    if device_type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return cpu_precision() if device_type == "cpu" else "32-true"


def best_precision() -> str:
    """``device_precision`` of the best device (``${best_precision:}``, ``trainer=auto``)."""
    return device_precision("cuda" if torch.cuda.is_available() else "cpu")


def inference_device(setting: str) -> torch.device:
    """The device of ``cfnet.predict`` / ``cfnet.evaluate`` for ``device=``: ``auto`` is CUDA
    when it is available (as ``trainer=auto``), else the CPU; ``cpu``, ``cuda``, ``cuda:<index>``
    force one, and a GPU that is not there is refused in one line."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(setting, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", setting):
        raise ValueError(f"device={setting!r}: allowed: auto, cpu, cuda, cuda:<index>")
    device = torch.device(setting)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ValueError(
            f"device={setting}: this machine has {count} CUDA device(s); use device=auto or cpu"
        )
    return device


def inference_precision(setting: str, device_type: str) -> str:
    """The precision for ``precision=`` on a device of ``device_type``: ``auto`` is
    ``device_precision`` (bf16 on CUDA and on a CPU with native bf16, else fp32); one of
    ``PRECISIONS`` forces it."""
    if one_of("precision", setting, ("auto", *PRECISIONS)) == "auto":
        return device_precision(device_type)
    return setting


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The autocast of ``precision`` on ``device``, as Lightning's precision plugin enters it
    around evaluation steps (``32-true``: none); weights stay fp32."""
    if precision == "32-true":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def cpus_available() -> int:
    """CPUs this process may run on (its affinity mask: what a job scheduler granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def loader_workers(setting: int | str, on_cpu: bool, processes: int, cpus: int) -> int:
    """DataLoader workers per process for ``dataset.num_workers`` (a count, or ``auto``).

    ``auto``: 0 when the model runs on the CPU, whose cores are all busy with the forward and
    backward passes (workers would only compete with them; loading in the main process costs
    little next to a CPU step); on an accelerator, the CPUs per process on this node minus one
    for the process itself, at most ``MAX_WORKERS``.

    Args:
        setting: ``dataset.num_workers``: a count >= 0 is used as given; ``auto`` as above.
        on_cpu: the trainer's accelerator is the CPU.
        processes: training processes on this node (DDP: one per device).
        cpus: CPUs available to this node's processes (``cpus_available()``).
    """
    if setting != "auto":
        return int(setting)
    if on_cpu:
        return 0
    return max(0, min(MAX_WORKERS, cpus // max(processes, 1) - 1))


def trainer_on_cpu(trainer: object | None) -> bool:
    """True without a trainer (a DataModule used on its own) or on Lightning's CPU accelerator."""
    return trainer is None or isinstance(trainer.accelerator, CPUAccelerator)


def planned_images(max_steps: int, max_epochs: int | None, batch: int, train_images: int) -> int:
    """Training images a run will see: ``max_steps`` × batch when set (> 0), else epochs × set."""
    if max_steps > 0:
        return max_steps * batch
    return max(max_epochs or 0, 0) * train_images


def compile_training(setting: bool | str, on_cpu: bool, images: int, fast_dev_run: bool) -> bool:
    """Whether to ``torch.compile`` the training step (``module.compile``: true | false | auto).

    ``auto`` compiles on an accelerator for runs of at least ``COMPILE_PAYS_AFTER_IMAGES``
    training images, and never for a ``fast_dev_run`` or on the CPU (docs/performance.md: a CPU
    training step 0.737 s compiled vs 0.722 s eager, after a 75 s compile).
    """
    if setting != "auto":
        return bool(setting)
    return not on_cpu and not fast_dev_run and images >= COMPILE_PAYS_AFTER_IMAGES


def device_name(device: torch.device) -> str:
    """A device as the run's one summary line names it: ``cpu (2 cores)``, ``gpu (NVIDIA H200)``
    (as ``trainer=cpu`` / ``trainer=gpu`` name them), ``mps``."""
    if device.type == "cpu":
        return f"cpu ({cpus_available()} cores)"
    if device.type == "cuda":
        return f"gpu ({torch.cuda.get_device_name(device)})"
    return device.type


def describe_device(trainer: object) -> str:
    """The device part of the run's one summary line: ``cpu (2 cores) ×1``, ``gpu (NVIDIA H200)
    ×1`` (``device_name`` × the trainer's devices)."""
    if trainer_on_cpu(trainer):
        return f"{device_name(torch.device('cpu'))} ×{trainer.num_devices}"
    root = getattr(trainer.strategy, "root_device", None)
    if root is not None and root.type == "cuda":
        return f"{device_name(root)} ×{trainer.num_devices}"
    kind = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()  # mps, tpu
    return f"{kind} ×{trainer.num_devices}"
