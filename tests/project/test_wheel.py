"""The package as users install it: a wheel built from this checkout, installed into a directory
outside it, runs ``python -m cfnet.train`` (``--cfg job`` and a ``fast_dev_run``) with the configs
it carries (``cfnet/conf``, mapped from the repository's ``conf/`` by setup.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from support.configs import TINY_RUN

ROOT = Path(__file__).resolve().parents[2]


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the directory it is installed into): built from a copy of the checkout, so the
    build's scratch files (build/, *.egg-info) never land in the working tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for top in ("src", "conf"):
        shutil.copytree(ROOT / top, source / top, ignore=skip)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # The environment's setuptools when it has one new enough (no network); else pip's isolated
    # build fetches pyproject.toml's build requirements, as `pip install .` would.
    setuptools = importlib.util.find_spec("setuptools") is not None
    isolation = ["--no-build-isolation"] if setuptools else []
    _pip("wheel", "--no-deps", *isolation, "-q", "-w", str(work / "dist"), str(source), cwd=work)
    (wheel,) = (work / "dist").glob("cfnet-*.whl")
    target = work / "site-packages"
    _pip("install", "--no-deps", "-q", "--target", str(target), str(wheel), cwd=work)
    return wheel, target


def _run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m cfnet.train <args>`` from ``cwd`` with only the installed copy importable as
    cfnet (PYTHONPATH replaced: not this checkout's src/)."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "cfnet.train", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_wheel_holds_every_module_config_and_page(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        f"cfnet/{p.relative_to(ROOT / 'src' / 'cfnet')}" for p in ROOT.glob("src/cfnet/**/*.py")
    }
    configs = {f"cfnet/conf/{p.relative_to(ROOT / 'conf')}" for p in ROOT.glob("conf/**/*.yaml")}
    pages = {
        f"cfnet/{p.relative_to(ROOT / 'src' / 'cfnet')}"
        for p in ROOT.glob("src/cfnet/explorer/static/*")
    }
    assert pages, "the explorer's page is missing from the checkout"
    missing = sorted((modules | configs | pages) - names)
    assert not missing, f"not in the wheel: {missing} (setup.py finds the packages)"


@pytest.mark.slow  # 20-40 s of subprocess training: `make test-slow` (CI) keeps the 15-min budget
def test_installed_wheel_composes_and_trains_outside_the_checkout(installed, tmp_path):
    _, target = installed
    elsewhere = tmp_path / "elsewhere"  # no conf/ here or above: only the wheel's configs exist
    shown = _run_installed(
        target, elsewhere, "experiment=synthetic_large", "dataset.batch_size=3", "--cfg", "all"
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    cfg = yaml.safe_load(shown.stdout)
    # the configs came from the installed package, not from this checkout
    sources = {s["provider"]: s["path"] for s in cfg["hydra"]["runtime"]["config_sources"]}
    assert sources["main"] == str(target / "cfnet" / "conf"), sources
    assert cfg["model"]["backbone"] == "resnet18d"  # experiment/synthetic_large.yaml
    assert cfg["dataset"]["batch_size"] == 3
    assert cfg["optim"]["optimizer"]["lr"] == 0.01

    run = _run_installed(
        target, elsewhere, *TINY_RUN, "trainer.fast_dev_run=true", "hydra.run.dir=run"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (elsewhere / "run" / ".hydra" / "config.yaml").is_file()
    assert not (ROOT / "src" / "cfnet" / "conf").exists()  # the checkout keeps conf/ at its root
