"""Bad input: a wrong root, broken or unexpected files → one clear line naming the file, or with
``dataset.on_bad_sample=skip`` a counted skip. Test-server exports of ``cfnet.predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from cfnet.data.io import SampleError
from cfnet.data.labels import CITYSCAPES_LABELS, cityscapes_label_id_lut, voc_palette
from cfnet.lit import SegmentationModule
from cfnet.predict import predict
from cfnet.stats import label_statistics
from support.cli import run_cli
from support.configs import TINY_FILE_RUN, compose_config
from support.raw_releases import make_voc_tree, tree_snapshot
from support.training import make_checkpoint, train_in_process

VOC = Path("VOCdevkit/VOC2012")
BAD, GOOD = "2007_000032", "2007_000039"  # the two training images of make_voc_tree


def voc_dataset(root: Path, *overrides: str):
    cfg = compose_config(
        "train", ["dataset=pascal_voc", f"dataset.root={root}", "dataset.num_workers=0", *overrides]
    )
    return instantiate(cfg.dataset).build_dataset("train", transform=None)


def _save(array: np.ndarray, path: Path, mode: str | None = None, fmt: str = "PNG") -> None:
    Image.fromarray(array, mode=mode).save(path, format=fmt)


def break_image_bytes(root: Path) -> str:
    (root / VOC / "JPEGImages" / f"{BAD}.jpg").write_bytes(np.random.bytes(300))
    return "cannot read image"


def truncate_jpeg(root: Path) -> str:
    path = root / VOC / "JPEGImages" / f"{BAD}.jpg"
    _save(np.random.default_rng(0).integers(0, 255, (12, 16, 3), np.uint8), path, fmt="JPEG")
    path.write_bytes(path.read_bytes()[:-200])
    return "cannot read image"


def resize_mask(root: Path) -> str:
    _save(np.zeros((8, 10), np.uint8), root / VOC / "SegmentationClass" / f"{BAD}.png", "L")
    return r"is 10×8 but its image .* is 16×12"


def out_of_range_label(root: Path) -> str:
    label = np.zeros((12, 16), np.uint8)
    label[3, 4], label[5, 6] = 50, 254
    _save(label, root / VOC / "SegmentationClass" / f"{BAD}.png", "L")
    return r"values \[50, 254\] outside .* \(valid raw values: 0\.\.20, 255\)"


def greyscale_image(root: Path) -> str:
    _save(np.zeros((12, 16), np.uint8), root / VOC / "JPEGImages" / f"{BAD}.jpg", fmt="JPEG")
    return "mode 'L'; expected 8-bit RGB .*allow_greyscale"


def rgba_image(root: Path) -> str:
    _save(np.zeros((12, 16, 4), np.uint8), root / VOC / "JPEGImages" / f"{BAD}.jpg")
    return "mode 'RGBA'; expected 8-bit RGB"


def sixteen_bit_label(root: Path) -> str:
    path = root / VOC / "SegmentationClass" / f"{BAD}.png"
    Image.fromarray(np.ones((12, 16), np.uint16) * 3).save(path)
    return "16/32-bit"


def colour_label(root: Path) -> str:
    _save(np.zeros((12, 16, 3), np.uint8), root / VOC / "SegmentationClass" / f"{BAD}.png")
    return "mode 'RGB'; expected a single-channel 8-bit index PNG"


def missing_mask(root: Path) -> str:
    (root / VOC / "SegmentationClass" / f"{BAD}.png").unlink()
    return "cannot read label map"


BREAKERS = [
    break_image_bytes,
    truncate_jpeg,
    resize_mask,
    out_of_range_label,
    greyscale_image,
    rgba_image,
    sixteen_bit_label,
    colour_label,
    missing_mask,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__)
def test_bad_sample_error_names_the_file(breaker, tmp_path):
    make_voc_tree(tmp_path)
    reason = breaker(tmp_path)
    dataset = voc_dataset(tmp_path)
    with pytest.raises(SampleError, match=reason) as err:
        dataset[0]
    assert BAD in str(err.value)
    assert dataset[1]["name"] == GOOD  # the good one still loads


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__)
def test_skip_replaces_a_bad_training_sample_and_says_so(breaker, tmp_path):
    make_voc_tree(tmp_path)
    breaker(tmp_path)
    dataset = voc_dataset(tmp_path, "dataset.on_bad_sample=skip")
    dataset.replace_bad = True  # what the DataModule sets for the train split
    sample = dataset[0]
    assert sample["name"] == GOOD and len(sample["skipped"]) == 1 and BAD in sample["skipped"][0]


def test_stats_skips_bad_samples_and_reports_the_count(tmp_path, capsys):
    masks = make_voc_tree(tmp_path)
    out_of_range_label(tmp_path)
    cfg = compose_config(
        "stats",
        [
            "dataset=pascal_voc",
            f"dataset.root={tmp_path}",
            "dataset.on_bad_sample=skip",
            "dataset.num_workers=0",
            "split=train",
        ],
    )
    label_statistics(cfg)
    out, err = capsys.readouterr()
    stats = json.loads(out.strip().splitlines()[-1])
    good = np.bincount(masks[GOOD].ravel(), minlength=256)
    assert stats["num_images"] == 1 and stats["pixels_per_class"] == good[:21].tolist()
    assert "skipped 1 bad sample" in err and BAD in err


def test_training_with_skip_counts_bad_samples_and_never_writes_under_the_root(tmp_path, capsys):
    make_voc_tree(tmp_path / "root")
    truncate_jpeg(tmp_path / "root")
    before = tree_snapshot(tmp_path / "root")
    train_in_process(
        [
            "dataset=pascal_voc",
            f"dataset.root={tmp_path / 'root'}",
            "dataset.on_bad_sample=skip",
            *TINY_FILE_RUN,
            "trainer.fast_dev_run=true",
        ],
        tmp_path / "run",
    )
    assert "skipped 1 bad sample(s)" in capsys.readouterr().out
    listed = (tmp_path / "run" / "bad_samples.txt").read_text()
    assert BAD in listed and "cannot read image" in listed
    assert tree_snapshot(tmp_path / "root") == before


def test_missing_root_is_one_line_naming_the_layout(tmp_path):
    result = run_cli(
        "cfnet.stats", "dataset=pascal_voc", f"dataset.root={tmp_path / 'nowhere'}", check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and str(tmp_path / "nowhere") in line
    assert "VOCdevkit/VOC2012/{JPEGImages, SegmentationClass" in line


def test_bad_file_in_a_loader_worker_is_one_line_naming_the_file(tmp_path):
    """The error comes back from a DataLoader worker process; the user still sees one line."""
    make_voc_tree(tmp_path / "root")
    break_image_bytes(tmp_path / "root")
    result = run_cli(
        "cfnet.train",
        "dataset=pascal_voc",
        f"dataset.root={tmp_path / 'root'}",
        *TINY_FILE_RUN,
        "dataset.num_workers=1",
        "trainer.fast_dev_run=true",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    bad = str(tmp_path / "root" / VOC / "JPEGImages" / f"{BAD}.jpg")
    assert f"error: cannot read image {bad!r}" in result.stderr


# ---- test-server exports ------------------------------------------------------------------------


def run_predict(ckpt: Path, dataset: str, inputs: Path, output: Path, export: str | None):
    cfg = compose_config(
        "predict",
        [
            f"ckpt_path={ckpt}",
            f"dataset={dataset}",
            f"input={inputs}",
            f"output={output}",
            f"export={'null' if export is None else export}",
        ],
    )
    return predict(cfg)


@pytest.fixture
def test_images(tmp_path) -> Path:
    folder = tmp_path / "test images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("2008_000001", "berlin_000000_000019_leftImg8bit"):
        _save(rng.integers(0, 255, (20, 28, 3), np.uint8), folder / f"{stem}.jpg", fmt="JPEG")
    return folder


def test_voc_export_writes_palette_pngs_where_the_server_expects_them(tmp_path, test_images):
    ckpt = make_checkpoint(tmp_path, "pascal_voc")
    written = run_predict(ckpt, "pascal_voc", test_images, tmp_path / "sub", "voc")
    results = tmp_path / "sub" / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    assert sorted(written) == sorted(results / f"{p.stem}.png" for p in test_images.iterdir())
    png = Image.open(results / "2008_000001.png")
    assert png.mode == "P" and png.size == (28, 20)
    assert np.asarray(png).max() <= 20
    colours = np.asarray(png.getpalette()[: 21 * 3], np.uint8).reshape(21, 3)
    assert np.array_equal(colours, voc_palette(21))


def test_cityscapes_export_writes_label_ids(tmp_path, test_images):
    ckpt = make_checkpoint(tmp_path, "cityscapes")
    run_predict(ckpt, "cityscapes", test_images, tmp_path / "plain", None)
    run_predict(ckpt, "cityscapes", test_images, tmp_path / "sub", "cityscapes")
    stem = "berlin_000000_000019_leftImg8bit"
    exported = Image.open(tmp_path / "sub" / f"{stem}.png")
    train_ids = np.asarray(Image.open(tmp_path / "plain" / f"{stem}.png"))
    assert exported.mode == "L"
    label_ids = np.asarray(exported)
    evaluated = {lid for lid, _, tid in CITYSCAPES_LABELS if tid != 255}
    assert set(np.unique(label_ids).tolist()) <= evaluated
    assert np.array_equal(cityscapes_label_id_lut(255)[label_ids], train_ids)  # round trip


def test_export_refuses_a_checkpoint_of_other_classes(tmp_path, test_images):
    ckpt = make_checkpoint(tmp_path, "synthetic")
    with pytest.raises(ValueError, match="export=voc needs a checkpoint trained on the 21"):
        run_predict(ckpt, "synthetic", test_images, tmp_path / "sub", "voc")
    with pytest.raises(ValueError, match="pass dataset=<the model's dataset>"):
        run_predict(ckpt, "pascal_voc", test_images, tmp_path / "sub", "voc")
    assert not (tmp_path / "sub").exists()


def test_checkpoint_round_trip_uses_weights_only(tmp_path):
    ckpt = make_checkpoint(tmp_path, "pascal_voc")
    module = SegmentationModule.from_checkpoint(ckpt)
    assert module.hparams.num_classes == 21
