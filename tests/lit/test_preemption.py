"""Pre-emption: SIGTERM (and SLURM's requeue) saves a resumable checkpoint where training stopped,
and resuming from it ends with the weights, optimiser state, LR and step of the uninterrupted run.

The runs are real processes receiving real signals from the test: ``WaitForSignal`` only marks
the step (a file appears) and holds the run there until the signal has arrived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support.cli import run_cli
from support.configs import ROOT, TINY_RUN, compose_config
from support.training import train_in_process

# 12 images in batches of 4: 3 steps per epoch, 6 in all; random scale, crop and flip on.
RUN = [
    *TINY_RUN,
    "dataset.sizes={train:12,val:4,test:2}",
    "dataset.crop_size=48",
    "dataset.scale_range=[0.75,1.25]",
    "trainer.max_epochs=2",
    "test=false",
]
WAIT = "+callbacks.wait._target_=support.training.WaitForSignal"
# support.training.WaitForSignal importable; this checkout's cfnet first (also in a git worktree)
TESTS_ON_PATH = {
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
    "PYTHONWARNINGS": "ignore",
}
# What Lightning's SLURMEnvironment reads to detect a (batch) SLURM job.
SLURM_ENV = {
    "SLURM_NTASKS": "1",
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "cfnet-train",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    """The uninterrupted run's dir."""
    run_dir = tmp_path_factory.mktemp("straight")
    train_in_process(RUN, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def straight(straight_run) -> dict:
    """The uninterrupted run's final checkpoint."""
    return torch.load(straight_run / "checkpoints" / "last.ckpt", weights_only=True)


def start(run_dir: Path, *wait: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cfnet.train", *RUN, f"hydra.run.dir={run_dir}", WAIT, *wait],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **TESTS_ON_PATH, **(env or {})},
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} never appeared:\n{process.communicate()[1][-3000:]}")
        time.sleep(0.05)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for the stopped job; its stderr. A job that does not end is killed, not left behind."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def assert_same_training_state(resumed: dict, straight: dict) -> None:
    assert resumed["global_step"] == straight["global_step"] == 6
    for name, tensor in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], tensor, rtol=1e-5, atol=1e-6)
    assert resumed["lr_schedulers"][0]["_last_lr"] == straight["lr_schedulers"][0]["_last_lr"]
    assert resumed["lr_schedulers"][0]["last_epoch"] == straight["lr_schedulers"][0]["last_epoch"]
    for key, state in straight["optimizer_states"][0]["state"].items():
        torch.testing.assert_close(
            resumed["optimizer_states"][0]["state"][key]["momentum_buffer"],
            state["momentum_buffer"],
            rtol=1e-5,
            atol=1e-6,
        )


def stop_at_step_4(run_dir: Path, sig: signal.Signals, exit_status: int) -> tuple[str, Path]:
    """Start a run, send it ``sig`` once it has taken step 4 (epoch 1, after the first of its
    three batches), and check that it stopped with ``exit_status`` after saving a resumable
    checkpoint of that point mid-epoch. Returns its stderr and the checkpoint's path."""
    marker = run_dir.parent / f"{run_dir.name}-at-step-4"
    job = start(run_dir, f"+callbacks.wait.marker={marker}", "+callbacks.wait.step=4")
    wait_for(marker, job)
    job.send_signal(sig)
    stderr = finish(job)
    assert job.returncode == exit_status, stderr[-3000:]
    saved = run_dir / "hpc_ckpt_1.ckpt"
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["global_step"] == 4
    assert checkpoint["SyntheticDataModule"] == {"epoch": 1, "batches": 1}
    return stderr, saved


@pytest.mark.slow  # 20-40 s of subprocess training: `make test-slow` (CI) keeps the 15-min budget
def test_sigterm_mid_epoch_saves_a_checkpoint_that_resumes_exactly(straight, tmp_path):
    stderr, saved = stop_at_step_4(tmp_path / "killed", signal.SIGTERM, 143)
    assert f"SIGTERM: saved a resumable checkpoint at step 4: {saved}" in stderr

    resumed = tmp_path / "resumed"
    # (the run's config, kept in the checkpoint, names the test's WaitForSignal: support.training)
    run_cli(
        "cfnet.train", *RUN, f"ckpt_path={saved}", f"hydra.run.dir={resumed}", env=TESTS_ON_PATH
    )
    last = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert_same_training_state(last, straight)


def best_model_score(checkpoint: dict) -> float:
    """What the best-checkpoint callback (monitor val/mIoU) recorded as the best score."""
    states = checkpoint["callbacks"]
    return next(float(v["best_model_score"]) for k, v in states.items() if "val/mIoU" in k)


def test_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_exactly_from_it_alone(straight, tmp_path):
    """The first SIGINT (Ctrl-C) stops at the step, as SIGTERM does, and prints the one command
    to resume; that command, with nothing else, ends with the uninterrupted run's state."""
    run_dir = tmp_path / "run"
    stderr, saved = stop_at_step_4(run_dir, signal.SIGINT, 130)
    assert "Ctrl-C: stopping after this training step to save a resumable checkpoint" in stderr
    command = f"python -m cfnet.train ckpt_path={saved}"
    assert f"Ctrl-C: saved a resumable checkpoint at step 4: {saved} (resume: {command})" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr

    resumed = run_cli("cfnet.train", f"ckpt_path={saved}", env=TESTS_ON_PATH)
    assert f"in {run_dir}" in resumed.stdout  # the same run dir, no new one
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert_same_training_state(last, straight)


def test_a_second_ctrl_c_aborts_at_once_without_saving(tmp_path):
    marker = tmp_path / "at-step-4"
    job = start(
        tmp_path,
        f"+callbacks.wait.marker={marker}",
        "+callbacks.wait.step=4",
        "+callbacks.wait.hold=60",
    )
    wait_for(marker, job)
    job.send_signal(signal.SIGINT)
    wait_for(Path(f"{marker}.signalled"), job)  # the first Ctrl-C arrived; the run still holds
    job.send_signal(signal.SIGINT)
    stderr = finish(job)  # within the hold, else it would stop at the step and save
    assert job.returncode == 1, stderr[-3000:]
    assert "Ctrl-C again: aborting without saving" in stderr
    assert not list(tmp_path.glob("hpc_ckpt_*.ckpt"))


def test_resume_from_last_ckpt_alone_continues_the_same_run_dir_to_the_same_weights(
    straight_run, straight, tmp_path
):
    """A job killed outright (SIGKILL) after epoch 0: ``ckpt_path=<run>/checkpoints/last.ckpt``
    and no other argument resumes it with the run's own config, in its own dir, with its best
    checkpoint tracked on (one best-*.ckpt, its score reloaded), to the uninterrupted state."""
    run_dir, marker = tmp_path / "run", tmp_path / "at-step-4"
    job = start(run_dir, f"+callbacks.wait.marker={marker}", "+callbacks.wait.step=4")
    wait_for(marker, job)
    job.kill()
    job.communicate()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3
    before = sorted(p.name for p in run_dir.iterdir())

    resumed = run_cli("cfnet.train", f"ckpt_path={last}", env=TESTS_ON_PATH)
    assert f"resuming {last} with its run's config (the checkpoint) in {run_dir}" in resumed.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing new beside the run
    final = torch.load(last, weights_only=True)
    assert_same_training_state(final, straight)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (straight_run / "checkpoints").iterdir())
    assert best_model_score(final) == pytest.approx(best_model_score(straight), abs=1e-6)


def test_sigterm_during_validation_lets_it_finish_first(tmp_path):
    marker = tmp_path / "in-validation"
    job = start(tmp_path, f"+callbacks.wait.marker={marker}", "+callbacks.wait.in_validation=true")
    wait_for(marker, job)  # epoch 0's validation, after its first of two batches
    job.send_signal(signal.SIGTERM)
    stderr = finish(job)
    assert job.returncode == 143, stderr[-3000:]
    # the validation ran to its end: its metrics and the checkpoints written after it exist
    assert (tmp_path / "metrics" / "val.json").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]
    checkpoint = torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1


@pytest.mark.slow  # 20-40 s of subprocess training: `make test-slow` (CI) keeps the 15-min budget
def test_slurm_requeue_then_sigterm_and_the_requeued_job_resumes_by_itself(straight, tmp_path):
    """SLURM's warning signal (SIGUSR1): Lightning's SLURM plugin saves hpc_ckpt_1 at once and
    requeues the job (``scontrol requeue``; here a stand-in that records its arguments); SLURM
    then stops the job with SIGTERM: cfnet saves hpc_ckpt_2 at the batch boundary. The requeued
    job, same command and run dir, ``ckpt_path=null``, resumes from the newest by itself."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    slurm = {**SLURM_ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run_dir, marker = tmp_path / "job", tmp_path / "at-step-4"

    job = start(run_dir, f"+callbacks.wait.marker={marker}", "+callbacks.wait.step=4", env=slurm)
    wait_for(marker, job)
    job.send_signal(signal.SIGUSR1)
    wait_for(calls, job)
    job.send_signal(signal.SIGTERM)
    stderr = finish(job)
    assert job.returncode == 143, stderr[-3000:]
    assert calls.read_text() == "requeue 4242\n"
    assert torch.load(run_dir / "hpc_ckpt_1.ckpt", weights_only=True)["global_step"] == 4
    assert torch.load(run_dir / "hpc_ckpt_2.ckpt", weights_only=True)["global_step"] == 4

    requeued = run_cli("cfnet.train", *RUN, f"hydra.run.dir={run_dir}", env=slurm)
    assert f"Restoring states from the checkpoint path at {run_dir / 'hpc_ckpt_2.ckpt'}" in (
        requeued.stdout + requeued.stderr
    )
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert_same_training_state(last, straight)


def test_on_slurm_the_trainer_requeues_on_sigusr1(monkeypatch, tmp_path):
    """What ``sbatch --signal=USR1@<seconds>`` relies on: Lightning's SLURM environment, with
    auto-requeue on SIGUSR1, is what the trainer config builds inside a SLURM job."""
    from hydra.utils import instantiate
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    for key, value in SLURM_ENV.items():
        monkeypatch.setenv(key, value)
    cfg = compose_config("train", [f"trainer.default_root_dir={tmp_path}"])
    trainer = instantiate(cfg.trainer, logger=False)
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1
    assert environment.job_id() == 4242
