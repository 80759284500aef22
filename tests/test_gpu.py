"""The GPU path, on a real GPU: fused attention kernels, ``trainer=gpu`` / the default trainer
through the CLI, a compiled training step, evaluate and predict on CUDA, exact resume with the
CUDA RNG, DDP with SyncBN (bf16 evaluation's scores against fp32: tests/test_precision.py).
``make test-gpu`` (``pytest -m gpu tests``) runs them; without CUDA every test here is skipped
with the reason. The CPU side of the same rules: test_hardware.py."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel

from cfnet.data.synthetic import render_scene
from cfnet.evaluation.inference import SegmentationInference
from cfnet.lit import SegmentationModule
from cfnet.models.acf import mixture_of_softmaxes_attention
from support.cli import read_json, run_cli
from support.configs import FP32, TINY_BATCHES, TINY_CFNET, TINY_DATA, TINY_RUN, TINY_SCHEDULE
from support.training import (
    SimulatedKill,
    assert_resumed_equals_straight,
    make_checkpoint,
    train_in_process,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs CUDA (run `make test-gpu` on a GPU machine)"
    ),
]

TESTS = Path(__file__).resolve().parent
# The tiny run at the GPU preset's own precision (TINY_RUN adds FP32 for the CPU).
TINY_GPU = [*TINY_CFNET, *TINY_DATA, *TINY_BATCHES, *TINY_SCHEDULE]


def run_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("cfnet: ")]
    assert len(lines) == 1, lines
    return lines[0]


# ---- fused attention ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype, backend, tol",
    [
        (torch.bfloat16, SDPBackend.FLASH_ATTENTION, 2e-2),
        (torch.bfloat16, SDPBackend.EFFICIENT_ATTENTION, 2e-2),
        (torch.float32, SDPBackend.EFFICIENT_ATTENTION, 1e-5),
    ],
    ids=["bf16-flash", "bf16-mem_efficient", "fp32-mem_efficient"],
)
def test_fused_attention_on_one_kernel_matches_float64(dtype, backend, tol):
    """Only one SDPA kernel allowed: a silent fallback to the math kernel would raise. Forward
    and gradients against the materialised float64 formula on the CPU."""
    torch.manual_seed(0)
    b, h, k, n, m, d, dv = 2, 2, 2, 96, 48, 16, 32
    inputs = [
        torch.randn(b, h, k, n, d, dtype=torch.float64),
        torch.randn(b, h, k, m, d, dtype=torch.float64),
        torch.randn(b, h, m, dv, dtype=torch.float64),
        torch.softmax(torch.randn(b, h, k, dtype=torch.float64), -1),
    ]
    ref_in = [t.clone().requires_grad_() for t in inputs]
    reference = mixture_of_softmaxes_attention(*ref_in, impl="naive")
    weights = torch.randn_like(reference)
    (reference * weights).sum().backward()
    cuda_in = [t.to("cuda", dtype).requires_grad_() for t in inputs]
    with sdpa_kernel([backend]):
        out = mixture_of_softmaxes_attention(*cuda_in, impl="sdpa")
        (out * weights.to("cuda", dtype)).sum().backward()
    pairs = [(out, reference)] + [
        (f.grad, e.grad) for f, e in zip(cuda_in[:3], ref_in[:3], strict=True)
    ]
    for fused, exact in pairs:  # relative error of the whole tensor (bf16: eps 7.8e-3)
        error = (fused.double().cpu() - exact.detach()).norm() / exact.detach().norm()
        assert error < tol, (dtype, backend, float(error))


# ---- the CLI on the GPU -------------------------------------------------------------------
def test_the_default_trainer_resolves_to_the_gpu(tmp_path):
    """Issue 17: plain ``python -m cfnet.train`` uses the GPU, with the GPU preset's precision
    and loader settings, and says so in one line."""
    result = run_cli(
        "cfnet.train", *TINY_GPU, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}"
    )
    line = run_line(result.stdout)
    assert line.startswith("cfnet: training on gpu (") and "precision bf16-mixed" in line
    assert line.endswith("workers/process, pinned memory")


@pytest.mark.parametrize("device, run", [("gpu", TINY_GPU), ("cpu", TINY_RUN)])
def test_trainer_preset_runs_on_its_device_through_the_cli(device, run, tmp_path):
    """``trainer=gpu`` trains on the GPU; ``trainer=cpu`` still forces the CPU where one is."""
    result = run_cli(
        "cfnet.train", *run, f"trainer={device}", "trainer.fast_dev_run=true",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert run_line(result.stdout).startswith(f"cfnet: training on {device} (")
    assert "mIoU_ambiguous" in result.stdout
    assert (tmp_path / "metrics" / "val.json").is_file()


def test_a_compiled_training_step_keeps_plain_names_in_its_checkpoint(tmp_path):
    """``module.compile=true`` on the GPU: trains, validates, and the checkpoint loads into an
    eager model (no ``_orig_mod.`` names)."""
    metrics = train_in_process(
        [*TINY_GPU, "trainer=gpu", "module.compile=true", "test=false"], tmp_path
    )
    assert np.isfinite(metrics["val/mIoU"])
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"] and not any("_orig_mod." in k for k in ckpt["state_dict"])
    SegmentationModule.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")


# ---- evaluation and prediction on CUDA ----------------------------------------------------
def test_batched_ms_flip_on_cuda_equals_the_cpu(tmp_path):
    """The protocol on CUDA (fp32, TF32 off), windows batched, against the CPU's probabilities."""
    module = SegmentationModule.from_checkpoint(make_checkpoint(tmp_path, "synthetic")).eval()
    image = torch.randn(1, 3, 45, 70)
    settings = dict(mode="slide", scales=[0.5, 1.0, 1.75], flip=True, base_size=48, crop_size=32)
    cpu = SegmentationInference(**settings, stride_rate=2 / 3, batch_size=1)
    cuda = SegmentationInference(**settings, stride_rate=2 / 3, batch_size=16)
    expected = cpu(module.net, image, module.pad_value())
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        probs = cuda(module.net.cuda(), image.cuda(), module.pad_value())
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.testing.assert_close(probs.cpu(), expected, rtol=1e-4, atol=1e-5)


def test_evaluate_on_the_gpu_through_the_cli(tmp_path):
    ckpt = make_checkpoint(tmp_path, "synthetic")
    common = [f"ckpt_path={ckpt}", *TINY_DATA, "split=val", "inference=ms_flip"]
    run_cli("cfnet.evaluate", *common, "trainer=cpu", *FP32, f"hydra.run.dir={tmp_path / 'cpu'}")
    result = run_cli(
        "cfnet.evaluate", *common, "trainer=gpu", *FP32,
        f"hydra.run.dir={tmp_path / 'gpu'}",
    )  # fmt: skip
    assert run_line(result.stdout).startswith("cfnet: evaluating on gpu (")
    cpu, gpu = (read_json(tmp_path / d / "metrics" / "val.json") for d in ("cpu", "gpu"))
    assert gpu["labelled_pixels"] == cpu["labelled_pixels"] == 5 * 64 * 64
    assert gpu["mIoU"] == pytest.approx(cpu["mIoU"], abs=0.02)  # TF32 convolutions on the GPU


def test_predict_on_cuda_matches_the_cpu(tmp_path):
    """``device=auto`` (the default) predicts on the GPU in bf16 and says so; the masks match
    the CPU's in fp32."""
    ckpt = make_checkpoint(tmp_path, "synthetic", varied=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        image, _, _ = render_scene(0, "test", i, 64 + 16 * i, 0.3, 2)
        Image.fromarray(image).save(inputs / f"scene{i}.png")
    lines = {}
    for device, hardware in (("cpu", ["device=cpu", "precision=32-true"]), ("cuda", [])):
        result = run_cli(
            "cfnet.predict", f"ckpt_path={ckpt}", f"input={inputs}", f"output={tmp_path / device}",
            *hardware, "inference=slide", f"hydra.run.dir={tmp_path / ('run' + device)}",
        )  # fmt: skip
        lines[device] = run_line(result.stderr)
    assert lines["cuda"].startswith("cfnet: predicting on gpu (")
    assert "precision bf16-mixed" in lines["cuda"] and "precision 32-true" in lines["cpu"]
    for i in range(2):
        cpu, cuda = (
            np.asarray(Image.open(tmp_path / d / f"scene{i}.png")) for d in ("cpu", "cuda")
        )
        assert cuda.shape == cpu.shape == (64 + 16 * i, 64 + 16 * i)
        assert (cuda == cpu).mean() > 0.98  # bf16 rounding may flip near-ties


# ---- exact resume with the CUDA RNG -------------------------------------------------------
class CudaRNGProbe(L.Callback):
    """Records the CUDA RNG state at the start of each training epoch."""

    states: dict[tuple[str, int], torch.Tensor] = {}  # noqa: RUF012 (shared across runs)

    def __init__(self, run: str) -> None:
        self.run = run

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        CudaRNGProbe.states[(self.run, trainer.current_epoch)] = torch.cuda.get_rng_state()


def test_interrupted_and_resumed_gpu_run_equals_the_uninterrupted_run(tmp_path):
    """Dropout draws from the CUDA RNG: the resumed run continues its stream (the state at the
    start of epoch 1 equals the straight run's) and ends with the straight run's weights, up to
    the GPU's non-deterministic reductions."""
    base = [
        *TINY_GPU, "trainer=gpu", *FP32, "trainer.max_epochs=3",
        "dataset.flip=false", "test=false", "+callbacks.probe._target_=test_gpu.CudaRNGProbe",
    ]  # fmt: skip
    train_in_process([*base, "+callbacks.probe.run=straight"], tmp_path / "straight")
    with pytest.raises(SimulatedKill):
        train_in_process(
            [*base, "+callbacks.probe.run=killed", "+callbacks.kill.epoch=0",
             "+callbacks.kill._target_=support.training.InterruptAfterEpoch"],
            tmp_path / "killed",
        )  # fmt: skip
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["cfnet_rng_states"]["cuda"]
    assert len(saved) == torch.cuda.device_count() and saved[0].dtype == torch.uint8
    torch.cuda.manual_seed_all(12345)  # the resumed process must not depend on this
    train_in_process(
        [*base, "+callbacks.probe.run=resumed", f"ckpt_path={last}"], tmp_path / "resumed"
    )
    states = CudaRNGProbe.states
    assert torch.equal(states[("resumed", 1)], states[("straight", 1)])
    assert_resumed_equals_straight(
        tmp_path / "straight", tmp_path / "resumed", steps=6, rtol=1e-4, atol=1e-5
    )


# ---- DDP with SyncBN ----------------------------------------------------------------------
class RequireSyncBN(L.Callback):
    """Fails the run unless the model's batch norms are SyncBatchNorm (trainer=ddp)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        norms = [
            m for m in pl_module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        if not norms or not all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms):
            raise AssertionError("trainer=ddp did not convert the batch norms to SyncBatchNorm")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="trainer=ddp needs >= 2 GPUs")
def test_ddp_with_syncbn_on_two_gpus(tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = run_cli(
        "cfnet.train", *TINY_GPU, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=1",
        "+callbacks.syncbn._target_=test_gpu.RequireSyncBN", f"hydra.run.dir={tmp_path}",
        env=env,
    )  # fmt: skip
    assert " ×2, " in run_line(result.stdout)
    assert (tmp_path / "metrics" / "test.json").is_file()
