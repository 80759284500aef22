"""A user's whole journey on a real-format dataset, through the entry points only:
stats → train → evaluate with the paper's protocol → test-server export, root left untouched."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from support.cli import read_json, run_cli
from support.configs import TINY_FILE_RUN
from support.raw_releases import make_voc_tree, tree_snapshot


def test_pascal_voc_stats_train_evaluate_export(tmp_path):
    root = tmp_path / "data"
    masks = make_voc_tree(root, train=("2007_000032", "2007_000039", "2007_000042"))
    before = tree_snapshot(root)
    data = ["dataset=pascal_voc", f"dataset.root={root}"]

    out = run_cli("cfnet.stats", *data, "split=val").stdout
    stats = json.loads(out.strip().splitlines()[-1])
    counts = np.bincount(masks["2007_000033"].ravel(), minlength=256)
    assert stats["num_images"] == 1 and stats["pixels_per_class"] == counts[:21].tolist()
    assert stats["ignored_pixels"] == counts[255] and "aeroplane" in out  # the table comes first

    run = tmp_path / "run"
    run_cli("cfnet.train", *data, *TINY_FILE_RUN, "trainer.max_epochs=1", f"hydra.run.dir={run}")
    best = next((run / "checkpoints").glob("best-epoch*.ckpt"))

    sizes = ["dataset.base_size=16", "dataset.crop_size=12"]
    evaluation = tmp_path / "evaluate"
    run_cli(
        "cfnet.evaluate",
        f"ckpt_path={best}",
        *data,
        *sizes,
        "inference=ms_flip",
        f"hydra.run.dir={evaluation}",
    )
    metrics = read_json(evaluation / "metrics" / "val.json")
    assert metrics["protocol"] == {  # conf/inference/ms_flip.yaml on base 16, crop 12
        "name": "ms_flip",
        "scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75],
        "base_size": 16,
        "crop": 12,
        "stride": 8,  # 2/3 of the crop
        "flip": True,
    }
    assert metrics["labelled_pixels"] == int(counts[:21].sum())

    images = root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    submission = tmp_path / "submission"
    run_cli(
        "cfnet.predict",
        f"ckpt_path={best}",
        *data,
        *sizes,
        "inference=ms_flip",
        "export=voc",
        f"input={images}",
        f"output={submission}",
        f"hydra.run.dir={tmp_path / 'predict'}",
    )
    results = submission / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    assert sorted(p.name for p in results.iterdir()) == sorted(
        f"{p.stem}.png" for p in images.iterdir()
    )
    png = Image.open(results / "2007_000033.png")
    assert png.mode == "P" and png.size == (16, 12)
    assert tree_snapshot(root) == before  # nothing under dataset.root was written
