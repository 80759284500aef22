"""The notebooks' helpers: paths from the environment, publishing figures, finding runs."""

from __future__ import annotations

import pytest
import torch

from cfnet.analysis import notebook, viz


def test_given_paths_are_taken_from_the_repo_root_and_split_on_colons(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no cfnet checkout"):
        notebook.repo_root()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where nbmake runs a notebook
    monkeypatch.setenv("CFNET_SWEEP_DIRS", "multirun/a:/abs/b")
    assert notebook.given_paths("CFNET_SWEEP_DIRS") == [
        tmp_path / "multirun/a",
        tmp_path / "/abs/b",
    ]
    monkeypatch.setenv("CFNET_CKPT", "")  # `make figures` without CKPT= passes it empty
    assert notebook.given_paths("CFNET_CKPT") == []


def test_publish_saves_only_when_asked(monkeypatch, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text("{}")
    monkeypatch.chdir(tmp_path)
    fig = viz.ablation_bars([("FCN", {"mIoU": 0.5})], "mIoU")
    monkeypatch.delenv("CFNET_FIGURES_DIR", raising=False)
    assert notebook.publish(fig, "bars") is fig
    assert not list(tmp_path.rglob("*.png"))
    monkeypatch.setenv("CFNET_FIGURES_DIR", "docs/img")
    notebook.publish(fig, "bars")
    assert (tmp_path / "docs" / "img" / "bars.png").is_file()


def test_runs_are_found_or_refused_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoints/best-"):
        notebook.best_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for name in ("best-epoch001.ckpt", "best-epoch003.ckpt", "last.ckpt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    assert notebook.best_checkpoint(tmp_path).name == "best-epoch003.ckpt"


def test_a_checkpoints_run_is_the_one_it_stores(tmp_path):
    """The run dir it lies in, with the config the checkpoint stores (not a .hydra/config.yaml
    that says otherwise); a checkpoint away from its run dir is refused, naming it."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("dataset: {image_size: 96}\n")
    stored = {"config": "dataset: {image_size: 64}\n", "overrides": [], "run_dir": str(run)}
    best = run / "checkpoints" / "best-epoch003.ckpt"
    best.parent.mkdir()
    torch.save({"cfnet_run": stored}, best)
    found = notebook.trained_run(best)
    assert found.run_dir == run and found.config.dataset.image_size == 64
    moved = tmp_path / "elsewhere" / "best.ckpt"
    moved.parent.mkdir()
    moved.write_bytes(best.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"best\.ckpt' is not in the run dir"):
        notebook.trained_run(moved)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        notebook.trained_run(tmp_path / "nope.ckpt")


def test_budget_is_full_by_default_smoke_on_request_and_nothing_else(monkeypatch):
    monkeypatch.delenv("CFNET_NOTEBOOK_BUDGET", raising=False)
    assert notebook.budget() == "full" and notebook.budget_overrides() == ()
    monkeypatch.setenv("CFNET_NOTEBOOK_BUDGET", "smoke")
    assert "trainer.max_epochs=1" in notebook.budget_overrides()
    monkeypatch.setenv("CFNET_NOTEBOOK_BUDGET", "tiny")
    with pytest.raises(
        ValueError, match=r"CFNET_NOTEBOOK_BUDGET='tiny': expected one of full, smoke"
    ):
        notebook.budget()
