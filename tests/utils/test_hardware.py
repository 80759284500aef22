"""The run sized to the machine (cfnet.utils.hardware), checked on the CPU: the default trainer's
device, loader workers per preset, the compile switch, and plain parameter names under compile.
The same on a real GPU: tests/test_gpu.py (marked ``gpu``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from cfnet.cli.validate import check_dataset
from cfnet.lit.trainer import on_device
from cfnet.utils import hardware
from cfnet.utils.hardware import compile_training, cpu_precision, loader_workers, planned_images
from support.configs import TINY_NET, TINY_RUN, compose_config
from support.training import train_in_process

PRESETS = ("auto", "cpu", "gpu", "ddp", "ddp_cpu")


def test_auto_workers_none_on_the_cpu_and_cpus_per_process_on_a_gpu():
    assert loader_workers("auto", on_cpu=True, processes=1, cpus=64) == 0
    assert loader_workers("auto", on_cpu=False, processes=1, cpus=16) == 8  # capped
    assert loader_workers("auto", on_cpu=False, processes=1, cpus=6) == 5  # one CPU for the model
    assert loader_workers("auto", on_cpu=False, processes=4, cpus=16) == 3  # 4 CPUs per process
    assert loader_workers("auto", on_cpu=False, processes=8, cpus=8) == 0  # no CPU to spare
    assert loader_workers(3, on_cpu=True, processes=1, cpus=2) == 3  # a count is used as given


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 8 workers on a 2-core CI
@pytest.mark.parametrize("preset", PRESETS)
def test_loader_settings_compose_for_every_trainer_preset(preset, monkeypatch):
    """Compose ``trainer=<preset>`` as the CLI does and build the real loaders, with a stand-in
    for the Trainer of that preset's device (no GPU here): a GPU preset gets workers, pinned
    memory and persistent workers; a CPU one loads in the main process."""
    monkeypatch.setattr(hardware, "cpus_available", lambda: 16)
    monkeypatch.setattr("cfnet.data.datamodule.cpus_available", lambda: 16)
    cfg = compose_config("train", [*TINY_RUN, f"trainer={preset}", "dataset.batch_size=8"])
    assert cfg.dataset.num_workers == "auto"
    on_gpu = cfg.trainer.accelerator == "gpu"
    processes = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) else 4  # ddp: auto
    datamodule = instantiate(cfg.dataset)
    datamodule.trainer = SimpleNamespace(
        accelerator=CUDAAccelerator() if on_gpu else CPUAccelerator(),
        num_devices=processes,
        world_size=processes,
        global_rank=0,
    )
    datamodule.setup("fit")
    expected = min(8, 16 // processes - 1) if on_gpu else 0
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        assert loader.num_workers == expected
        assert loader.pin_memory is on_gpu
        assert loader.persistent_workers is (expected > 0)
        assert loader.timeout == (cfg.dataset.loader_timeout if expected else 0)
    assert (expected > 0) is (preset in ("gpu", "ddp"))


def test_default_trainer_resolves_to_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_config("train", [])
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("cpu", cpu_precision())


def test_default_trainer_resolves_to_the_gpu_preset_with_cuda(monkeypatch):
    """The resolvers alone (the real thing on a GPU: tests/test_gpu.py)."""
    gpu = compose_config("train", ["trainer=gpu"]).trainer
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    auto = compose_config("train", []).trainer
    assert (auto.accelerator, auto.devices, auto.precision) == (
        gpu.accelerator,
        gpu.devices,
        gpu.precision,
    )
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert compose_config("train", []).trainer.precision == "16-mixed"


def test_explicit_presets_still_force_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compose_config("train", ["trainer=cpu"]).trainer.accelerator == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compose_config("train", ["trainer=gpu"]).trainer.accelerator == "gpu"


@pytest.mark.parametrize("preset", PRESETS)
def test_compile_switch_composes_for_every_trainer_preset(preset):
    """``module.compile=auto``: compiled on a GPU for a run as long as the paper's Pascal VOC
    recipe (50 epochs of 10,582 images), eager for the quickstart and on the CPU."""
    cfg = compose_config("train", [f"trainer={preset}"])
    voc = compose_config("train", [f"trainer={preset}", "dataset=pascal_voc"])
    assert cfg.module.compile == voc.module.compile == "auto"
    on_cpu = cfg.trainer.accelerator == "cpu"
    paper = planned_images(-1, voc.trainer.max_epochs, voc.dataset.batch_size, 10_582)
    quick = planned_images(-1, cfg.trainer.max_epochs, cfg.dataset.batch_size, 3_000)
    assert paper == 529_100 and quick <= 9_000
    assert compile_training("auto", on_cpu, paper, fast_dev_run=False) is not on_cpu
    assert compile_training("auto", on_cpu, quick, fast_dev_run=False) is False
    assert compile_training("auto", on_cpu, paper, fast_dev_run=True) is False
    assert compile_training(True, on_cpu, quick, fast_dev_run=True) is True  # forced
    assert planned_images(100, cfg.trainer.max_epochs, 16, 3_000) == 1_600  # max_steps wins


def test_the_default_run_says_in_one_line_that_it_uses_the_cpu(tmp_path, capsys):
    train_in_process([*TINY_RUN, "trainer.fast_dev_run=true"], tmp_path)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("cfnet: ")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("cfnet: training on cpu (")
    assert "eager (module.compile=auto: eager on the CPU)" in lines[0]
    assert lines[0].endswith("loader 0 workers/process")


def test_compiled_module_keeps_plain_parameter_names_in_its_checkpoint():
    """``module.compile`` compiles in place: the state dict, hence every checkpoint, has the
    eager names. (``torch.compile(net)`` would wrap it and prefix each name with ``_orig_mod.``:
    the contrast shows the check can fail.)"""
    cfg = compose_config("train", TINY_NET)
    eager = instantiate(cfg.module, compile=False)
    compiled = instantiate(cfg.module, compile=True)
    compiled.configure_model()
    assert compiled.net._compiled_call_impl is not None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod." in key for key in compiled.state_dict())
    wrapped = torch.compile(eager.net)
    assert all(key.startswith("_orig_mod.") for key in wrapped.state_dict())


def test_a_bad_compile_setting_is_named():
    cfg = compose_config("train", TINY_NET)
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg.module, compile="sometimes")
    assert str(err.value.__cause__) == "module.compile='sometimes': allowed: true, false, auto"


@pytest.mark.parametrize("bad", ["atuo", -1, 1.5])
def test_a_bad_worker_count_is_named(bad):
    cfg = compose_config("train", [f"dataset.num_workers={bad}"])
    with pytest.raises(ValueError) as err:
        check_dataset(cfg.dataset, training=True)
    assert str(err.value) == f"dataset.num_workers={bad!r}: allowed: auto, 0, 1, 2, ..."


def test_the_run_line_names_the_gpu_as_trainer_gpu_does(monkeypatch):
    """(A stand-in for a DDP trainer on two GPUs; the real one: tests/test_gpu.py.)"""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    trainer = SimpleNamespace(
        accelerator=CUDAAccelerator(),
        num_devices=2,
        strategy=SimpleNamespace(root_device=torch.device("cuda", 0)),
    )
    assert hardware.describe_device(trainer) == "gpu (NVIDIA H200) ×2"


# ---- predict's and evaluate's device= / precision= ------------------------------------------
def test_inference_device_is_cuda_when_there_and_a_missing_one_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.inference_device("auto") == torch.device("cpu")
    assert hardware.inference_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError) as err:
        hardware.inference_device("cuda")
    assert (
        str(err.value) == "device=cuda: this machine has 0 CUDA device(s); use device=auto or cpu"
    )
    with pytest.raises(ValueError, match=r"^device='gpu': allowed: auto, cpu, cuda, cuda:<index>$"):
        hardware.inference_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert hardware.inference_device("auto") == torch.device("cuda")
    assert hardware.inference_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"^device=cuda:2: this machine has 2 CUDA device"):
        hardware.inference_device("cuda:2")


def test_inference_precision_is_the_devices_unless_named(monkeypatch):
    """``auto``: bf16 autocast on a GPU with bf16 (fp16 on older ones) and on a CPU with native
    bf16, else fp32; a named precision is used as given; anything else is refused."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert hardware.inference_precision("auto", "cuda") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert hardware.inference_precision("auto", "cuda") == "16-mixed"
    for native in ("bf16-mixed", "32-true"):
        monkeypatch.setattr(hardware, "cpu_precision", lambda native=native: native)
        assert hardware.inference_precision("auto", "cpu") == native
    assert hardware.inference_precision("32-true", "cuda") == "32-true"
    with pytest.raises(ValueError) as err:
        hardware.inference_precision("bf16", "cpu")
    assert str(err.value) == "precision='bf16': allowed: auto, bf16-mixed, 16-mixed, 32-true"


@pytest.mark.parametrize("preset", PRESETS)
def test_evaluate_runs_in_its_devices_precision_unless_told(preset, monkeypatch):
    """conf/evaluate.yaml: every trainer preset evaluates in its accelerator's precision
    (``${precision_on:}``), ``precision=`` names another, and ``trainer.precision=`` on the
    command line still wins (the tests' FP32)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    trainer = compose_config("evaluate", ["ckpt_path=x", f"trainer={preset}"]).trainer
    on_gpu = trainer.accelerator == "gpu"
    assert trainer.precision == ("bf16-mixed" if on_gpu else cpu_precision())
    named = compose_config("evaluate", ["ckpt_path=x", f"trainer={preset}", "precision=32-true"])
    assert named.trainer.precision == "32-true"
    forced = compose_config(
        "evaluate", ["ckpt_path=x", f"trainer={preset}", "trainer.precision=16-mixed"]
    )
    assert forced.trainer.precision == "16-mixed"


def test_evaluate_device_moves_the_trainer_and_its_precision_follows(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    auto = compose_config("evaluate", ["ckpt_path=x"]).trainer
    assert (auto.accelerator, auto.devices, auto.precision) == ("gpu", 1, "bf16-mixed")
    assert on_device(auto, "auto") is auto
    cpu = on_device(auto, "cpu")
    assert (cpu.accelerator, cpu.devices, cpu.precision) == ("cpu", 1, cpu_precision())
    second = on_device(auto, "cuda:1")
    assert (second.accelerator, second.devices, second.precision) == ("gpu", [1], "bf16-mixed")
    ddp = compose_config("evaluate", ["ckpt_path=x", "trainer=ddp"]).trainer
    with pytest.raises(ValueError, match=r"^device=cuda:1: one device, but trainer.strategy=ddp"):
        on_device(ddp, "cuda:1")
