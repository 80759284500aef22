"""``dataset=folder``: your own images and masks.

Every mask format gives the ids the fixture wrote; the label settings (``label_map``,
``reduce_zero_label``, colours) map raw values as documented; the held-out validation split is a
function of the file names alone; and each bad input of the issue is one line on stderr naming
the file, found by ``cfnet.stats`` in one pass with the others.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from cfnet.cli.validate import check_dataset
from cfnet.data.io import SampleError
from support.cli import run_cli
from support.configs import TINY_FILE_RUN, compose_config
from support.folder_trees import CLASSES, make_folder_tree, sample_names
from support.training import train_in_process


def folder(root: Path, *overrides: str):
    """The folder DataModule of ``root`` as ``cfnet.train dataset=folder`` builds it."""
    cfg = compose_config(
        "train", ["dataset=folder", f"dataset.root={root}", "dataset.num_workers=0", *overrides]
    )
    return instantiate(cfg.dataset)


def masks_of(dataset) -> dict[str, np.ndarray]:
    return {name: mask for _, mask, name in (dataset.read(i) for i in range(len(dataset)))}


def test_every_mask_format_gives_the_ids_written(tmp_path):
    written = make_folder_tree(tmp_path, train=12, val=3)
    datamodule = folder(tmp_path)
    assert datamodule.class_names == list(CLASSES)  # from classes.txt
    for split in ("train", "val"):
        read = masks_of(datamodule.build_dataset(split, transform=None))
        assert read.keys() == written[split].keys()  # names with spaces, a sub-folder
        for name, ids in written[split].items():
            np.testing.assert_array_equal(read[name], ids, err_msg=name)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def tiny_tree(root: Path, masks: list[np.ndarray], classes: list[str]) -> None:
    """One image per mask in train (and val: the same files), ``classes.txt`` as given."""
    for split in ("train", "val"):
        for i, mask in enumerate(masks):
            _write(root / "images" / split / f"m{i}.png", np.zeros((*mask.shape[:2], 3), np.uint8))
            _write(root / "masks" / split / f"m{i}.png", mask)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")


def test_label_map_turns_a_binary_0_255_mask_into_classes(tmp_path):
    raw = np.array([[0, 255, 255], [0, 0, 255]], np.uint8)
    tiny_tree(tmp_path, [raw], ["background", "crack"])
    with pytest.raises(SampleError, match=r"holds only the values 0 and 255: a binary mask\?"):
        masks_of(folder(tmp_path).build_dataset("train", None))
    ids = masks_of(folder(tmp_path, "dataset.label_map={255:1}").build_dataset("train", None))
    np.testing.assert_array_equal(ids["m0"], [[0, 1, 1], [0, 0, 1]])
    ignored = folder(tmp_path, "dataset.label_map={255:255}").build_dataset("train", None)
    np.testing.assert_array_equal(masks_of(ignored)["m0"], raw)  # 255 said to be unlabelled


def test_reduce_zero_label_and_merging_classes(tmp_path):
    raw = np.array([[0, 1, 2, 3, 255]], np.uint8)
    tiny_tree(tmp_path, [raw], ["wall", "floor", "sky"])
    reduced = folder(tmp_path, "dataset.reduce_zero_label=true").build_dataset("train", None)
    np.testing.assert_array_equal(masks_of(reduced)["m0"], [[255, 0, 1, 2, 255]])
    merged = folder(tmp_path, "dataset.reduce_zero_label=true", "dataset.label_map={3:1}")
    np.testing.assert_array_equal(
        masks_of(merged.build_dataset("train", None))["m0"], [[255, 0, 1, 1, 255]]
    )
    with pytest.raises(SampleError, match=r"set dataset.reduce_zero_label=true"):
        masks_of(folder(tmp_path).build_dataset("train", None))  # 3 is no class of 0..2


def test_rgb_masks_map_through_the_palette_and_label_map_colours(tmp_path):
    palette = [[10, 20, 30], [200, 0, 0]]
    rgb = np.array([[[10, 20, 30], [200, 0, 0], [0, 0, 0]]], np.uint8)
    tiny_tree(tmp_path, [rgb], ["road", "car"])
    given = f"dataset.palette={json.dumps(palette).replace(' ', '')}"
    with pytest.raises(SampleError, match=r"has colours 0-0-0 \(1 px\)"):
        masks_of(folder(tmp_path, given).build_dataset("train", None))
    mapped = folder(tmp_path, given, "dataset.label_map={0-0-0:255}")
    np.testing.assert_array_equal(
        masks_of(mapped.build_dataset("train", None))["m0"], [[0, 1, 255]]
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("label_map={300:1}", r"^dataset.label_map=\{300: 1\}: keys are raw mask values 0..255"),
        ("label_map={2:9}", r"^dataset.label_map=\{2: 9\}: 9 is neither a training id \(0..3\)"),
        ("ignore_index=2", r"^dataset.ignore_index=2: must not be a raw class value .* 4..255$"),
        (
            "palette=[[0,0,0],[0,0,0],[1,1,1],[2,2,2]]",
            r"^dataset.palette\[1\]=\[0, 0, 0\]: the colour of class 0",
        ),
        ("val_fraction=1.5", r"^dataset.val_fraction=1.5: must be a number in \[0, 1\)$"),
        ("classes=[a,b,a]", r"^dataset.classes=\['a', 'b', 'a'\]: \['a'\] named more"),
    ],
)
def test_each_bad_setting_is_one_line_naming_its_key(tmp_path, override, expected):
    make_folder_tree(tmp_path, train=2, val=1)
    given = ["dataset=folder", f"dataset.root={tmp_path}", f"dataset.{override}"]
    with pytest.raises(ValueError, match=expected) as err:
        check_dataset(compose_config("train", given).dataset, training=False)
    assert "\n" not in str(err.value)


def test_classes_file_with_a_blank_line_is_refused(tmp_path):
    make_folder_tree(tmp_path, train=2, val=1)
    (tmp_path / "classes.txt").write_text("background\n\ncircle\n")
    result = run_cli("cfnet.stats", "dataset=folder", f"dataset.root={tmp_path}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    path = str(tmp_path / "classes.txt")
    assert result.stderr.strip() == (
        f"error: {path!r} line 2 is empty: line i names training id i, so a blank line would "
        "shift every class after it"
    )


def test_without_a_val_folder_a_fixed_share_by_name_validates(tmp_path):
    make_folder_tree(tmp_path / "data", train=20, val=None)
    names = sample_names(20)
    # the specification, computed here: the 2 names (10 %) of lowest crc32
    expected = sorted(names, key=lambda n: zlib.crc32(n.encode()))[:2]
    first, second = folder(tmp_path / "data"), folder(tmp_path / "data", "seed=7")
    for datamodule in (first, second):  # the run's seed does not move it
        val = datamodule.build_dataset("val", None)
        assert sorted(p.name for p in val.pairs) == sorted(expected)
        train = datamodule.build_dataset("train", None)
        assert sorted(p.name for p in train.pairs) == sorted(set(names) - set(expected))
    # a run writes the split into its run dir
    train_in_process(
        [
            "dataset=folder",
            f"dataset.root={tmp_path / 'data'}",
            *TINY_FILE_RUN,
            "trainer.fast_dev_run=true",
        ],
        tmp_path / "run",
    )
    record = json.loads((tmp_path / "run" / "split.json").read_text())
    assert record["val_fraction"] == 0.1 and sorted(record["val"]) == sorted(expected)


def test_no_val_folder_and_no_fraction_says_what_to_do(tmp_path):
    make_folder_tree(tmp_path, train=4, val=None)
    with pytest.raises(
        FileNotFoundError, match=r"no validation split: .* dataset.val_fraction=0.1"
    ):
        folder(tmp_path, "dataset.val_fraction=0").build_dataset("val", None)


# ---- bad input: one line naming the file ---------------------------------------------------
# Each breaker spoils one file of a small tree (or the tree) and returns (the file, the words).
BAD = "shape_01"  # a PNG image with a palette mask (support.folder_trees: formats by position)


def image_without_mask(root: Path) -> tuple[Path, str]:
    (root / "masks" / "train" / f"{BAD}.png").unlink()
    image = root / "images" / "train" / f"{BAD}.png"
    mask = root / "masks" / "train" / f"{BAD}.png"
    return image, f"image {str(image)!r} has no mask: expected {str(mask)!r}"


def mask_without_image(root: Path) -> tuple[Path, str]:
    (root / "images" / "train" / f"{BAD}.png").unlink()
    mask = root / "masks" / "train" / f"{BAD}.png"
    stem = root / "images" / "train" / BAD
    return mask, f"mask {str(mask)!r} has no image: expected {str(stem)!r} with one of the"


def mask_of_another_size(root: Path) -> tuple[Path, str]:
    mask = root / "masks" / "train" / f"{BAD}.png"
    _write(mask, np.zeros((8, 10), np.uint8))
    return mask, f"label map {str(mask)!r} is 10×8 but its image"


def value_of_no_class(root: Path) -> tuple[Path, str]:
    mask = root / "masks" / "train" / f"{BAD}.png"
    ids = np.zeros((48, 64), np.uint8)
    ids[5, 5] = 7
    _write(mask, ids)
    return mask, f"mask {str(mask)!r} has values [7] that are neither a class"


def binary_0_255_mask(root: Path) -> tuple[Path, str]:
    mask = root / "masks" / "train" / f"{BAD}.png"
    ids = np.zeros((48, 64), np.uint8)
    ids[10:20, 10:20] = 255
    _write(mask, ids)
    return mask, f"mask {str(mask)!r} holds only the values 0 and 255: a binary mask?"


def unknown_colour(root: Path) -> tuple[Path, str]:
    mask = root / "masks" / "train" / f"{BAD}.png"
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[0, :2] = (10, 200, 30)
    _write(mask, rgb)
    return mask, f"mask {str(mask)!r} has colours 10-200-30 (2 px)"


def empty_split(root: Path) -> tuple[Path, str]:
    for kind in ("images", "masks"):
        for path in sorted((root / kind / "val").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    folder_path = root / "images" / "val"
    return folder_path, f"folder: split 'val' is empty: {str(folder_path)!r} holds no images"


def unreadable_image(root: Path) -> tuple[Path, str]:
    image = root / "images" / "train" / f"{BAD}.png"
    image.write_bytes(b"<html>not a picture</html>")
    return image, f"cannot read image {str(image)!r}"


def jpeg_mask(root: Path) -> tuple[Path, str]:
    mask = root / "masks" / "train" / f"{BAD}.png"
    Image.open(mask).convert("L").save(mask.with_suffix(".jpg"))
    mask.unlink()
    jpeg = mask.with_suffix(".jpg")
    return jpeg, f"found {str(jpeg)!r}, a JPEG: masks must be lossless PNGs"


BREAKERS = [
    image_without_mask,
    mask_without_image,
    mask_of_another_size,
    value_of_no_class,
    binary_0_255_mask,
    unknown_colour,
    empty_split,
    unreadable_image,
    jpeg_mask,
]


def visible_lines(stderr: str) -> list[str]:
    """stderr as a terminal shows it: progress bars overwritten (``\\r``), blank lines gone."""
    lines = (line.split("\r")[-1].strip() for line in stderr.splitlines())
    return [line for line in lines if line]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__)
def test_each_bad_input_is_one_line_naming_the_file(breaker, tmp_path):
    make_folder_tree(tmp_path, train=4, val=2)
    path, words = breaker(tmp_path)
    result = run_cli("cfnet.stats", "dataset=folder", f"dataset.root={tmp_path}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = visible_lines(result.stderr)
    if breaker is empty_split:  # the split itself: the run stops at once
        assert lines == [f"error: {lines[0].removeprefix('error: ')}"]
    else:  # the sample's line, then the count
        assert len(lines) == 2 and lines[1].startswith("error: 1 bad sample(s) in folder")
    assert words in lines[0] and str(path) in lines[0], lines[0]


def test_stats_lists_every_problem_in_one_pass_or_skips_them(tmp_path):
    make_folder_tree(tmp_path, train=12, val=2)
    orphan, _ = image_without_mask(tmp_path)  # three files, three kinds of problem
    mask5 = tmp_path / "masks" / "train" / "shape_05.png"
    _write(mask5, np.full((48, 64), 9, np.uint8))
    image7 = tmp_path / "images" / "train" / "shape_07.png"
    image7.write_bytes(b"")
    expected = [str(orphan), str(mask5), str(image7)]
    args = ["cfnet.stats", "dataset=folder", f"dataset.root={tmp_path}"]
    result = run_cli(*args, check=False)
    lines = visible_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 4, lines
    assert sorted(next(p for p in expected if p in line) for line in lines[:3]) == sorted(expected)
    assert lines[3].startswith("error: 3 bad sample(s) in folder (train, val), listed above")
    skipped = run_cli(*args, "dataset.on_bad_sample=skip")
    stats = [json.loads(line) for line in skipped.stdout.splitlines() if line.startswith("{")]
    assert [s["split"] for s in stats] == ["train", "val"]
    assert stats[0]["num_images"] == 12 - 3 and stats[1]["num_images"] == 2
    assert "skipped 3 bad sample(s) (dataset.on_bad_sample=skip)" in skipped.stderr


def test_training_stops_at_an_unpaired_file_before_reading_anything(tmp_path):
    make_folder_tree(tmp_path / "data", train=4, val=2)
    _, words = image_without_mask(tmp_path / "data")
    result = run_cli(
        "cfnet.train",
        "dataset=folder",
        f"dataset.root={tmp_path / 'data'}",
        *TINY_FILE_RUN,
        "trainer.fast_dev_run=true",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {words}"
    assert not (tmp_path / "run" / "checkpoints").exists()
