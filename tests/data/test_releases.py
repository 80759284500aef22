"""``python -m cfnet.prepare``: exact converted labels, lists, idempotency, src left untouched."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cfnet.data.labels import CONTEXT59_NAMES, cityscapes_label_id_lut, voc_palette
from cfnet.data.releases import (
    prepare_cityscapes,
    prepare_coco_voc,
    prepare_pascal_context,
    prepare_pascal_voc_aug,
)
from cfnet.prepare import main
from cfnet.utils.atomic import write_atomically
from support.cli import run_cli
from support.raw_releases import (
    CONTEXT_RELEASE_ID,
    context59,
    make_cityscapes_tree,
    make_coco_release,
    make_context_release,
    make_sbd,
    make_voc2010_tree,
    make_voc_tree,
    tree_snapshot,
)

# pycocotools 2.0.x under numpy 2 (its own code, harmless): "__array__ implementation doesn't ..."


def read_png(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == mode, path
        if mode == "P":
            assert image.getpalette()[:768] == voc_palette().ravel().tolist()
        return np.asarray(image)


def test_voc_palette_is_the_devkit_colour_map():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[[0, 1, 15, 18, 255]].tolist() == [
        [0, 0, 0],
        [128, 0, 0],  # aeroplane
        [192, 128, 128],  # person
        [0, 192, 0],  # sofa
        [224, 224, 192],  # boundary
    ]


# ---- pascal_voc_aug -----------------------------------------------------------------------------


@pytest.fixture
def voc_aug(tmp_path):
    """VOC train {A, B}, val {C, D}; SBD train {B, E, F, H}, val {C, G}; H has no JPEG."""
    a, b, c, d, e, f, g, h = (f"2008_00000{k}" for k in range(8))
    root, sbd = tmp_path / "data", tmp_path / "benchmark_RELEASE"
    voc = make_voc_tree(root, train=[a, b], val=[c, d], extra_images=[e, f, g])
    sbd_masks = make_sbd(sbd, train=[b, e, f, h], val=[c, g])
    return root, sbd, voc, sbd_masks


def test_pascal_voc_aug_merges_sbd_under_voc_and_lists_train_aug(voc_aug, capsys):
    root, sbd, voc, sbd_masks = voc_aug
    before = tree_snapshot(sbd)
    counts = prepare_pascal_voc_aug(sbd, root)
    base = root / "VOCdevkit" / "VOC2012"
    a, b, c, d, e, f, g, h = sorted({*voc, *sbd_masks})
    assert counts == {
        "written": 8,
        "skipped": 0,
        "from_voc": 4,
        "from_sbd": 4,
        "train_aug": 5,
    }
    for i in (a, b, c, d):  # VOC wins where both annotate (b, c): it has the 255 boundaries
        assert np.array_equal(read_png(base / "SegmentationClassAug" / f"{i}.png", "P"), voc[i])
    for i in (e, f, g, h):
        got = read_png(base / "SegmentationClassAug" / f"{i}.png", "P")
        assert np.array_equal(got, sbd_masks[i])
    assert not np.array_equal(voc[b], sbd_masks[b])
    # (SBD train ∪ SBD val ∪ VOC train) − VOC val, minus h whose JPEG is missing
    train_aug = (base / "ImageSets" / "Segmentation" / "train_aug.txt").read_text()
    assert train_aug == "".join(f"{i}\n" for i in (a, b, e, f, g))
    out = capsys.readouterr()
    assert "1 ids of train_aug have no image" in out.err and h in out.err
    assert "wrote 8 masks (0 skipped)" in out.out and "train_aug.txt: 5 ids" in out.out
    assert tree_snapshot(sbd) == before

    # Re-run, with --src at the dataset/ dir itself: nothing is rewritten.
    outputs = tree_snapshot(base)
    again = prepare_pascal_voc_aug(sbd / "dataset", root)
    assert again["written"] == 0 and again["skipped"] == 8 and again["train_aug"] == 5
    assert tree_snapshot(base) == outputs and tree_snapshot(sbd) == before
    assert "wrote 0 masks (8 skipped)" in capsys.readouterr().out


def test_pascal_voc_aug_refuses_a_corrupt_mat_and_a_missing_voc_tree(voc_aug, tmp_path):
    root, sbd, _, sbd_masks = voc_aug
    bad = sbd / "dataset" / "cls" / f"{max(sbd_masks)}.mat"
    bad.write_bytes(b"not a MATLAB file")
    with pytest.raises(ValueError, match=re.escape(bad.name)):
        prepare_pascal_voc_aug(sbd, root)
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit.*VOC2012.*VOCtrainval_11-May-2012"):
        prepare_pascal_voc_aug(sbd, tmp_path / "elsewhere")


def test_interrupted_write_leaves_neither_a_file_nor_a_temporary(tmp_path):
    target = tmp_path / "out" / "x.png"

    def write_half(tmp: Path) -> None:
        tmp.write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, write_half)
    assert list(target.parent.iterdir()) == []
    write_atomically(target, lambda tmp: tmp.write_bytes(b"done"))
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any other new file


# ---- pascal_context -----------------------------------------------------------------------------


def test_pascal_context_maps_release_names_to_59_training_ids(tmp_path, capsys):
    a, b, c, d, e = (f"2008_00001{k}" for k in range(5))
    root, release = tmp_path / "data", tmp_path / "context"
    make_voc2010_tree(root, train=[a, b, c], val=[d, e])
    maps = make_context_release(release, ids=[a, b, d, e])  # c: in Main, no .mat
    before = tree_snapshot(release)
    counts = prepare_pascal_context(release, root)
    assert counts == {"written": 4, "skipped": 0, "train": 2, "val": 2}
    base = root / "VOCdevkit" / "VOC2010"
    for i, label_map in maps.items():
        got = read_png(base / "SegmentationClassContext" / f"{i}.png", "L")
        assert np.array_equal(got, context59(label_map))
        table = CONTEXT59_NAMES.index("table") + 1
        assert got[0, :3].tolist() == [table, 0, 0]  # "table"; rare "accordion"; unlabelled
        assert CONTEXT_RELEASE_ID["table"] != table  # mapped by name, not by id
    assert set(np.unique(np.concatenate([context59(m).ravel() for m in maps.values()]))) > {0}
    lists = base / "ImageSets" / "SegmentationContext"
    assert (lists / "train.txt").read_text() == f"{a}\n{b}\n"
    assert (lists / "val.txt").read_text() == f"{d}\n{e}\n"
    assert "1 ids of Main/train.txt have no .mat" in capsys.readouterr().err

    outputs = tree_snapshot(base)
    main(["pascal_context60", "--src", str(release), "--dst", str(root)])  # alias, re-run
    assert "wrote 0 masks (4 skipped)" in capsys.readouterr().out
    assert tree_snapshot(base) == outputs and tree_snapshot(release) == before


def test_pascal_context_refuses_labels_lacking_one_of_the_59(tmp_path):
    make_voc2010_tree(tmp_path / "data")
    make_context_release(tmp_path / "context", drop_names=["table"])
    with pytest.raises(ValueError, match=r"labels\.txt.*lacks 1 .*'table'"):
        prepare_pascal_context(tmp_path / "context", tmp_path / "data")


# ---- cityscapes ---------------------------------------------------------------------------------


def test_cityscapes_label_ids_become_train_ids_next_to_a_link_to_the_images(tmp_path, capsys):
    src, dst = tmp_path / "cityscapes", tmp_path / "prepared"
    labels = make_cityscapes_tree(src)
    before = tree_snapshot(src)
    counts = prepare_cityscapes(src, dst)
    assert counts == {"written": 3, "skipped": 0, "train": 2, "val": 1}
    lut = cityscapes_label_id_lut(255)
    for key, label_ids in labels.items():
        got = read_png(dst / "gtFine" / f"{key}_gtFine_labelTrainIds.png", "L")
        assert np.array_equal(got, lut[label_ids])
        # road 0, car 13, unlabeled and parking ignored, bicycle 18, person 11
        assert got[0, :6].tolist() == [0, 13, 255, 255, 18, 11]
    assert sorted(p.name for p in (dst / "gtFine").rglob("*.png")) == sorted(
        f"{k.rsplit('/', 1)[1]}_gtFine_labelTrainIds.png" for k in labels
    )
    link = dst / "leftImg8bit"
    assert link.is_symlink() and Path(link.readlink()).is_absolute()
    assert link.resolve() == (src / "leftImg8bit").resolve()
    assert (link / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png").is_file()
    assert "cityscapes train: wrote 2 labelTrainIds (0 skipped)" in capsys.readouterr().out

    outputs = tree_snapshot(dst)
    assert prepare_cityscapes(src, dst) == {"written": 0, "skipped": 3, "train": 2, "val": 1}
    assert tree_snapshot(dst) == outputs and tree_snapshot(src) == before


def test_cityscapes_refuses_an_id_outside_the_table(tmp_path):
    src = tmp_path / "cityscapes"
    make_cityscapes_tree(src, {"val": {"lindau": 1}})
    bad = src / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png"
    Image.fromarray(np.full((8, 16), 40, np.uint8)).save(bad)
    with pytest.raises(ValueError, match=rf"{re.escape(bad.name)}.*\[40\]"):
        prepare_cityscapes(src, tmp_path / "prepared")


# ---- coco_voc -----------------------------------------------------------------------------------


def test_coco_voc_paints_voc_categories_in_order_and_drops_small_images(tmp_path, capsys):
    src, dst = tmp_path / "coco", tmp_path / "prepared"
    expected = make_coco_release(src)
    before = tree_snapshot(src)
    counts = prepare_coco_voc(src, dst)
    per_split = {"written": 1, "skipped": 0, "dropped": 3, "kept": 1}
    assert counts == {"train2017": per_split, "val2017": per_split}
    for split, masks in expected.items():
        kept = sorted(n for n, m in masks.items() if np.count_nonzero(m) > 1000)
        assert len(kept) == 1
        assert (dst / "voc_masks" / f"{split}.txt").read_text() == f"{kept[0]}\n"
        got = read_png(dst / "voc_masks" / split / f"{kept[0]}.png", "P")
        assert np.array_equal(got, masks[kept[0]])
        assert got[5, 5] == 18  # couch → sofa
        assert got[25, 25] == 15  # the later person over the couch
        assert got[44, 5] == 0 and got[5, 44] == 0  # crowd region; stop sign (not VOC)
        assert got[15, 44] == 12  # dog
        assert sorted(p.stem for p in (dst / "voc_masks" / split).iterdir()) == kept
    for name in ("train2017", "val2017", "annotations"):
        assert (dst / name).is_symlink() and (dst / name).resolve() == (src / name).resolve()
    assert "dropped 3 images" in capsys.readouterr().out

    outputs = tree_snapshot(dst)
    again = prepare_coco_voc(src, dst)
    assert again["val2017"] == {"written": 0, "skipped": 1, "dropped": 3, "kept": 1}
    assert "(unchanged)" in capsys.readouterr().out
    assert tree_snapshot(dst) == outputs and tree_snapshot(src) == before


def test_coco_voc_names_a_corrupt_annotation_file(tmp_path):
    src = tmp_path / "coco"
    make_coco_release(src, splits=["val2017"])
    bad = src / "annotations" / "instances_val2017.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"instances_val2017\.json"):
        prepare_coco_voc(src, tmp_path / "prepared")


# ---- command line -------------------------------------------------------------------------------


def test_cli_reports_a_missing_src_in_one_line(tmp_path):
    missing = tmp_path / "no_such_download"
    result = run_cli("cfnet.prepare", "cityscapes", "--src", str(missing), "--dst",
                     str(tmp_path / "out"), check=False)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "gtFine" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_cli_refuses_a_dst_inside_src(tmp_path):
    src = tmp_path / "coco"
    make_coco_release(src, splits=["val2017"])
    before = tree_snapshot(src)
    result = run_cli("cfnet.prepare", "coco_voc", "--src", str(src), "--dst",
                     str(src / "prepared"), check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "lies inside --src" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert tree_snapshot(src) == before


def test_main_in_process_errors_help_and_no_conversion_names(tmp_path, capsys):
    src = tmp_path / "cityscapes"
    make_cityscapes_tree(src, {"val": {"lindau": 1}})
    with pytest.raises(SystemExit) as exit_:
        main(["cityscapes", "--src", str(src), "--dst", str(src)])
    assert exit_.value.code == 2 and f"is --src {str(src)!r}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["kitti", "--src", str(src), "--dst", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice" in err and "coco_voc" in err
    with pytest.raises(SystemExit) as exit_:
        main(["cityscapes", "--src", str(src)])
    assert exit_.value.code == 2 and "--dst" in capsys.readouterr().err

    main(["pascal_voc", "--dst", "/data"])
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert "VOCtrainval_11-May-2012.tar" in out and "/data/VOCdevkit/VOC2012" in out
    main(["ade20k"])
    assert "ADEChallengeData2016.zip" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    help_text = capsys.readouterr().out
    assert exit_.value.code == 0
    for text in ("pascal_voc_aug", "SegmentationClassAug", "labels.txt", "labelTrainIds",
                 "voc_masks", "pascal_context60", "ADEChallengeData2016.zip"):  # fmt: skip
        assert text in help_text
