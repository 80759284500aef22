"""W&B, offline, through ``python -m cfnet.train -m``: each job of a sweep is its own run in one
group (the experiment name) with its co-occurrence pictures, and after the sweep one more run of
that group holds the summary table (``cfnet.lit.wandb_logging.WandbSweepSummary``)."""

from __future__ import annotations

import json

import pytest
from wandb.proto import wandb_internal_pb2 as pb

from cfnet.lit.wandb_logging import WandbCooccurrence
from support.cli import run_cli
from support.configs import TINY_RUN

OFFLINE = {"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"}


def _recorded(run_file, **fields: str) -> bool:
    """The offline run's event log holds these RunRecord fields (as W&B encodes them)."""
    return pb.RunRecord(**fields).SerializeToString() in run_file.read_bytes()


def test_sweep_is_one_wandb_group_with_pictures_and_a_summary_table(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "cfnet.train",
        "-m",
        *TINY_RUN,
        "logger=wandb",
        "test=false",
        "experiment_name=kxh_probe",
        "model.heads=2",
        "model.k=1,2",  # a K × H sweep: the summary is Table 3's grid
        f"hydra.sweep.dir={sweep}",
        env=OFFLINE,
    )
    for job in ("0", "1"):
        (run,) = (sweep / job / "wandb").glob("offline-run-*")
        (events,) = run.glob("run-*.wandb")
        assert _recorded(events, run_group="kxh_probe"), job
        # the last (only) epoch draws p(c|t): conf/callbacks/default.yaml's 2 images × 3 pixels
        pictures = list((run / "files" / "media" / "images" / "val").glob("cooccurrence_*.png"))
        assert len(pictures) == 6, job
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)

    (summary,) = (sweep / "wandb").glob("offline-run-*")
    (events,) = summary.glob("run-*.wandb")
    assert _recorded(events, run_group="kxh_probe")
    assert _recorded(events, job_type="sweep-summary")
    media = summary / "files" / "media"
    (table_file,) = (media / "table" / "sweep").glob("val_jobs_*.table.json")
    table = json.loads(table_file.read_text())
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["data"]}
    for job, k in (("0", 1), ("1", 2)):  # each job's own metrics file, as the report reads it
        written = json.loads((sweep / job / "metrics" / "val.json").read_text())
        assert rows[job]["overrides"] == f"model.k={k}"
        assert rows[job]["mIoU"] == pytest.approx(written["mIoU"])
        assert rows[job]["pixAcc"] == pytest.approx(written["pixAcc"])
    assert any((media / "images" / "sweep").glob("plot_*.png"))  # the K × H heat-map
    assert any((media / "html" / "sweep").glob("summary_*.html"))  # the markdown table


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_images": 0, "every_n_epochs": 1, "points": [[0.5, 0.5]]}, "num_images"),
        ({"num_images": 1, "every_n_epochs": 0, "points": [[0.5, 0.5]]}, "every_n_epochs"),
        ({"num_images": 1, "every_n_epochs": 1, "points": [[0.5, 1.0]]}, "fractions"),
        ({"num_images": 1, "every_n_epochs": 1, "points": []}, "fractions"),
    ],
)
def test_bad_cooccurrence_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WandbCooccurrence(**kwargs)
