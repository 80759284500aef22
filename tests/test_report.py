"""``python -m cfnet.report`` on an ordinary sweep (neither Table 2 nor K × H): a plot of the
metric per job, and the table shows only the overrides that differ between jobs.

The sweep dir is laid out as Hydra and the report callback leave it (``<n>/.hydra/overrides.yaml``,
``<n>/metrics/test.json``), with metrics chosen here, so the expected table is known by hand.
"""

from __future__ import annotations

import json

import yaml
from PIL import Image

from cfnet.report import main


def job(sweep, n, overrides, miou=None):
    (sweep / str(n) / ".hydra").mkdir(parents=True)
    (sweep / str(n) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if miou is not None:
        (sweep / str(n) / "metrics").mkdir()
        metrics = {"pixAcc": 0.9, "mIoU": miou, "mIoU_ambiguous": 0.1, "class_iou": {"a": miou}}
        (sweep / str(n) / "metrics" / "test.json").write_text(json.dumps(metrics))


def test_a_one_dimensional_sweep_gets_a_plot_and_only_the_varying_overrides(tmp_path, capsys):
    sweep = tmp_path / "multirun" / "default" / "time"
    shared = ["trainer.max_epochs=2", "dataset.image_size=64"]
    job(sweep, 0, ["model.k=1", *shared], miou=0.25)
    job(sweep, 1, ["model.k=2", *shared], miou=0.375)
    job(sweep, 2, ["model.k=4", *shared])  # failed: no metrics

    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    table = (sweep / "report.md").read_text()
    assert "Every job: trainer.max_epochs=2, dataset.image_size=64" in table
    assert "| 0 | model.k=1 | 90.0 | 25.0 | 10.0 |" in table
    assert "| 1 | model.k=2 | 90.0 | 37.5 | 10.0 |" in table
    assert "| 2 | model.k=4 | — | — | — |" in table
    assert table.count("trainer.max_epochs") == 1  # named once, not per row
    assert "Jobs without test metrics (failed or unfinished): 2" in table
    assert f"plot: {sweep / 'report.png'}" in printed
    with Image.open(sweep / "report.png") as plot:
        assert plot.format == "PNG" and plot.width > 100 and plot.height > 100


def test_a_removed_key_is_shown_removed(tmp_path):
    """``~callbacks.progress_bar`` is an override too: named as typed, not left out."""
    sweep = tmp_path / "sweep"
    job(sweep, 0, ["model.k=1", "~callbacks.progress_bar"], miou=0.25)
    job(sweep, 1, ["model.k=2", "~callbacks.progress_bar"], miou=0.5)
    job(sweep, 2, ["model.k=4"], miou=0.5)  # (kept the bar)
    assert main([str(sweep)]) == 0
    table = (sweep / "report.md").read_text()
    assert "| 0 | model.k=1, ~callbacks.progress_bar | 90.0 | 25.0 | 10.0 |" in table
    assert "| 2 | model.k=4, callbacks.progress_bar=— | 90.0 | 50.0 | 10.0 |" in table


def test_a_sweep_without_metrics_says_why_it_has_no_plot_and_keeps_no_old_one(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    job(sweep, 0, ["seed=0"])
    job(sweep, 1, ["seed=1"])
    (sweep / "report.png").write_bytes(b"a plot of an earlier report")
    assert main([str(sweep)]) == 0
    assert "no plot: no job has test metrics" in capsys.readouterr().out
    assert not (sweep / "report.png").exists()
