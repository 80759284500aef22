"""Impossible configurations stop at start, through the entry points: exit status 2, one line on
stderr naming the key and what is allowed, no traceback (unless HYDRA_FULL_ERROR=1), nothing read.

Each case is a ``python -m <module>`` process of its own (``run_cli_batch``).
The file dataset's root does not exist: had any data been read, the error would name the root.
"""

from __future__ import annotations

import pytest

from cfnet.cli.command_line import check_group_choices
from support.cli import run_cli, run_cli_batch

HEADS_LINE = (
    "error: model.heads=3: channels (512) must be divisible by heads "
    "(d = channels / heads per head); allowed: 1, 2, 4, 8, 16, 32, 64, 128, 256, 512"
)
DATASETS = (
    "ade20k, cityscapes, coco_voc, folder, pascal_context, pascal_context60, pascal_voc, "
    "pascal_voc_aug, synthetic"
)


@pytest.fixture
def voc_missing_root(tmp_path) -> list[str]:
    """A file dataset whose root does not exist: reading anything would fail naming the root."""
    return ["dataset=pascal_voc", f"dataset.root={tmp_path / 'no-such-root'}"]


def test_refused_in_one_line_before_data_or_checkpoints(voc_missing_root, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "cfnet.train", *voc_missing_root, "model.heads=3", f"hydra.run.dir={run_dir}", check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [HEADS_LINE]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "csv").exists()


TRAIN_CASES = [  # (overrides, the one line on stderr, or its start)
    (["model.k=0"], "error: model.k=0: must be a positive integer; allowed: 1, 2, 3, ..."),
    (["model.heads=0"], "error: model.heads=0: must be a positive integer; allowed: 1, 2, 3, ..."),
    (["model.heads=-2"], "error: model.heads=-2: must be a positive integer"),
    (
        ["model.channels=500", "model.heads=8"],
        "error: model.heads=8: channels (500) must be divisible by heads",
    ),
    (["model.output_stride=4"], "error: model.output_stride=4: allowed: 8, 16"),
    (["model.attention_impl=flash"], "error: model.attention_impl='flash': allowed: naive, sdpa"),
    (["model.backbone=vit_base_patch16_224"], "error: model.backbone='vit_base_patch16_224': "),
    (["model.acf_dropout=1"], "error: model.acf_dropout=1: must be a number in [0, 1)"),
    (["dataset.crop_size=0"], "error: dataset.crop_size=0: must be a positive integer"),
    (
        ["dataset.base_size=200", "dataset.scale_range=[0.5,1.0]", "dataset.crop_size=480"],
        "error: dataset.crop_size=480: larger than the largest rescaled image "
        "(scale_range[1] × base_size = 1.0 × 200 = 200), so every crop would "
        "hold padding on two sides; allowed: 1 .. 200",
    ),
    (["dataset.scale_range=[2.0,1.0]"], "error: dataset.scale_range=[2.0, 1.0]: must be [low, "),
    (
        ["dataset.batch_size=1"],
        "error: dataset.batch_size=1: the global-pooling branch (model.use_gp) needs at least 2 "
        "images per process (1 process); allowed: 2, 3, 4, ...",
    ),
    (
        ["trainer=ddp_cpu", "dataset.batch_size=15"],
        "error: dataset.batch_size=15: the global batch must be divisible by the number of "
        "processes (trainer.devices × trainer.num_nodes = 2); allowed: 2, 4, 6, 8, ...",
    ),
    (["trainer.devices=0"], "error: trainer.devices=0: allowed: a count 1, 2, ..., -1 (all), "),
    (
        ["trainer.max_epochs=-1"],
        "error: trainer.max_epochs=-1: with trainer.max_steps=-1 the run has no end, and the "
        "learning rate (optim.scheduler: poly) decays over the whole run; allowed: ",
    ),
    (["trainer.precision=17"], "error: trainer: Precision 17 is invalid. Allowed precision "),
    (
        ["dataset.loader_timeout=-1"],
        "error: dataset.loader_timeout=-1: seconds per batch, a number >= 0 (0: no limit)",
    ),
    (
        ["dataset.on_bad_sample=ignore"],
        "error: dataset.on_bad_sample='ignore': allowed: error, skip",
    ),
    (
        ["dataset=pascal", "model=cfnet"],
        f"error: dataset=pascal: no such option in conf/dataset/; allowed: {DATASETS}",
    ),
    (["model=cfnet2"], "error: model=cfnet2: no such option in conf/model/; allowed: cfnet, fcn"),
    (["-m", "model=fcn,cfnet2"], "error: model=cfnet2: no such option in conf/model/; allowed: "),
]


# predict's own options are checked before its input, output or checkpoint are looked at
PREDICT_ARGS = ["ckpt_path=missing.ckpt", "input=missing/", "output=out/"]


def _option(arg: str) -> bool:
    return not arg.startswith("-")


def test_each_impossible_setting_is_one_line_naming_its_key(voc_missing_root, tmp_path):
    calls = [  # options (-m) before the overrides, as argparse wants them
        (
            "cfnet.train",
            sorted([*voc_missing_root, *case, f"hydra.run.dir={tmp_path / str(i)}"], key=_option),
        )
        for i, (case, _) in enumerate(TRAIN_CASES)
    ]
    calls += [
        ("cfnet.evaluate", ["dataset=nope", "ckpt_path=x.ckpt", f"hydra.run.dir={tmp_path}"]),
        (
            "cfnet.evaluate",
            ["ckpt_path=x.ckpt", "dataset.eval_batch_size=0", f"hydra.run.dir={tmp_path}"],
        ),
        ("cfnet.export", ["ckpt_path=x.ckpt", "height=0", f"hydra.run.dir={tmp_path / 'e'}"]),
        ("cfnet.stats", ["dataset=nope", f"hydra.run.dir={tmp_path}"]),
        ("cfnet.predict", ["dataset=nope", *PREDICT_ARGS, f"hydra.run.dir={tmp_path}"]),
        ("cfnet.predict", ["export=kitti", *PREDICT_ARGS, f"hydra.run.dir={tmp_path}"]),
        ("cfnet.predict", ["overlay_alpha=2", *PREDICT_ARGS, f"hydra.run.dir={tmp_path}"]),
    ]
    expected = [line for _, line in TRAIN_CASES] + [
        f"error: dataset=nope: no such option in conf/dataset/; allowed: {DATASETS}",
        "error: dataset.eval_batch_size=0: must be a positive integer; allowed: 1, 2, 3, ...",
        "error: height=0: must be a positive integer; allowed: 1, 2, 3, ...",
        f"error: dataset=nope: no such option in conf/dataset/; allowed: {DATASETS}",
        f"error: dataset=nope: no such option in conf/dataset/; allowed: {DATASETS}",
        "error: export='kitti': allowed: null, voc, cityscapes",
        "error: overlay_alpha=2: must be a number in [0, 1]",
    ]
    full_error = ["model.heads=3", f"hydra.run.dir={tmp_path / 'full'}"]
    *results, traceback = run_cli_batch(
        [*calls, ("cfnet.train", full_error, {"HYDRA_FULL_ERROR": "1"})]
    )
    for call, result, line in zip(calls, results, expected, strict=True):
        where = f"{' '.join(call[1])}:\n{result.stderr}"
        assert result.returncode == 2, where
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, where
        assert result.stderr.startswith(line), where
    assert not any(tmp_path.glob("*/checkpoints"))
    # HYDRA_FULL_ERROR=1: the whole traceback, for debugging
    assert traceback.returncode == 1
    assert "Traceback (most recent call last)" in traceback.stderr
    assert "ValueError: model.heads=3: channels (32) must be divisible" in traceback.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["dataset=${oc.env:CFNET_DATASET,synthetic}"],  # resolved by Hydra later
        ["-m", "model=glob(*)"],  # matched against the options by Hydra
        ["dataset=null", "experiment=table2/acf", "+experiment=table3_kxh"],
        ["hydra/launcher=submitit_slurm", "dataset.root=/data", "~callbacks.progress_bar"],
        ["--cfg"],  # malformed: Hydra reports it in its own words
        ["-m", "model=interval(0,1)"],
        ["input=café,x"],
    ],
)
def test_the_group_check_leaves_alone_what_only_hydra_can_judge(argv):
    check_group_choices(argv)
