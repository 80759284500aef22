"""Official dataset releases → the PNG + list layouts that ``cfnet.data`` reads (``cfnet.prepare``).

Some releases store labels in formats a training loop should not parse on every step (SBD and
PASCAL-Context ship MATLAB files, COCO ships polygons, Cityscapes ships ids that need a lookup), so
``CONVERTERS`` convert them once: each walks a release's tree (its expected layout named in any
error), converts each file with ``cfnet.data.convert`` and writes the result. Nothing is written
under ``--src``; outputs go to a temporary name and are renamed into place, so an interrupted run
leaves no truncated file and a re-run skips what is already there. ``HELP`` says, per dataset,
what is read and written; ``AS_IS`` names the releases used without conversion.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cfnet.data.convert import (
    cityscapes_train_ids,
    coco_voc_mask,
    context_lut,
    context_mask,
    load_coco,
    parse_context_labels,
    sbd_mask,
    voc_mask,
)
from cfnet.data.io import read_label
from cfnet.data.labels import COCO_MIN_FOREGROUND, voc_palette
from cfnet.utils.atomic import write_atomically

Counts = dict[str, int]

SBD_LAYOUT = (
    "--src to be the SBD release benchmark_RELEASE with dataset/{cls/<id>.mat, train.txt, val.txt}"
)
VOC_LAYOUT = (
    "--dst to contain VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, "
    "ImageSets/Segmentation/{train,val}.txt} (extract VOCtrainval_11-May-2012.tar in --dst)"
)
CONTEXT_LAYOUT = "--src to be the PASCAL-Context release: {trainval/<id>.mat, labels.txt}"
VOC2010_LAYOUT = (
    "--dst to contain VOCdevkit/VOC2010/{JPEGImages, ImageSets/Main/{train,val}.txt} "
    "(extract VOCtrainval_03-May-2010.tar in --dst)"
)
CITYSCAPES_LAYOUT = (
    "--src to be the Cityscapes root: leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
    "gtFine/<split>/<city>/*_gtFine_labelIds.png"
)
COCO_LAYOUT = (
    "--src to be the COCO 2017 root: {train2017,val2017}/*.jpg, annotations/instances_*2017.json"
)
COCO_SPLITS = ("train2017", "val2017")

HELP = {
    "pascal_voc": (
        "Pascal VOC 2012: no conversion; extract VOCtrainval_11-May-2012.tar in the root "
        "(giving <root>/VOCdevkit/VOC2012)."
    ),
    "pascal_voc_aug": (
        "VOC 2012 + SBD (10,582 train images). --src: benchmark_RELEASE (or its dataset/ dir) "
        "with dataset/{cls/<id>.mat, train.txt, val.txt}. --dst: the root holding "
        "VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}. Writes "
        "VOCdevkit/VOC2012/SegmentationClassAug/<id>.png (palette PNG, VOC masks win over SBD) "
        "and ImageSets/Segmentation/train_aug.txt = (SBD train+val + VOC train) - VOC val."
    ),
    "pascal_context": (
        "PASCAL-Context, 59 classes. --src: the release with trainval/<id>.mat (LabelMap) and "
        "labels.txt. --dst: the root holding VOCdevkit/VOC2010/{JPEGImages, "
        "ImageSets/Main/{train,val}.txt}. Writes VOCdevkit/VOC2010/SegmentationClassContext/"
        "<id>.png (0 = background, 1..59) and ImageSets/SegmentationContext/{train,val}.txt."
    ),
    "pascal_context60": "Alias of pascal_context (the 60-class variant reads the same files).",
    "cityscapes": (
        "Cityscapes fine. --src: the root with leftImg8bit/ and gtFine/<split>/<city>/"
        "*_gtFine_labelIds.png. --dst: a new root; writes gtFine/<split>/<city>/"
        "*_gtFine_labelTrainIds.png (0..18, 255 = ignored) and links dst/leftImg8bit to "
        "src/leftImg8bit."
    ),
    "coco_voc": (
        "COCO 2017 restricted to the 20 VOC classes. --src: the root with {train2017,val2017}/ "
        "and annotations/instances_{train,val}2017.json. --dst: a new root; links the images "
        "and annotations, writes voc_masks/<split>/<id>.png (palette PNG, 0..20) and "
        f"voc_masks/<split>.txt (images with more than {COCO_MIN_FOREGROUND} VOC-class pixels)."
    ),
    "ade20k": (
        "ADE20K (SceneParsing): no conversion; extract ADEChallengeData2016.zip in the root "
        "(giving <root>/ADEChallengeData2016)."
    ),
}
AS_IS = {  # name → (archive, where it goes under the root)
    "pascal_voc": ("VOCtrainval_11-May-2012.tar", "VOCdevkit/VOC2012"),
    "ade20k": ("ADEChallengeData2016.zip", "ADEChallengeData2016"),
}


# ---- files --------------------------------------------------------------------------------------


def write_png(path: Path, array: np.ndarray, palette: np.ndarray | None = None) -> None:
    """uint8 H×W → mode "L" PNG, or mode "P" (indices = values) when a palette is given."""
    image = Image.fromarray(np.ascontiguousarray(array, np.uint8))
    if palette is not None:
        image.putpalette(palette.tobytes())  # "L" + palette → "P", indices unchanged
    write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))


def write_list(path: Path, ids: Iterable[str]) -> bool:
    """One id a line; rewritten (atomically) only if the content differs. True if written."""
    content = "".join(f"{i}\n" for i in ids)
    if path.is_file() and path.read_text() == content:
        return False
    write_atomically(path, lambda tmp: tmp.write_text(content))
    return True


def read_ids(path: Path, layout: str) -> list[str]:
    """The non-empty lines of a split list, or FileNotFoundError naming the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} not found; expected {layout}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def require_dir(path: Path, layout: str, option: str = "") -> Path:
    """``path`` if it is a directory, else FileNotFoundError naming it and the expected layout."""
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "not found"
        raise FileNotFoundError(
            f"{option}{' ' if option else ''}{str(path)!r} {what}; expected {layout}"
        )
    return path


def check_outside(src: Path, dst: Path) -> None:
    """Refuse a --dst that is --src or lies inside it: nothing may be written under --src."""
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r.is_relative_to(src_r):  # also true when equal
        where = "is" if dst_r == src_r else "lies inside"
        raise ValueError(
            f"--dst {str(dst)!r} {where} --src {str(src)!r}; the download is never modified, "
            "choose a --dst outside it"
        )


def link(path: Path, target: Path) -> bool:
    """Symlink ``path`` → ``target`` (absolute); True if created, False if already there."""
    target = target.resolve()
    if path.is_symlink() or path.exists():
        if path.resolve() == target:
            return False
        raise FileExistsError(
            f"{str(path)!r} exists and is not a link to {str(target)!r}; remove it or choose "
            "another --dst"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())
    return True


def convert_all(
    jobs: Iterable[tuple[Path, Callable[[], np.ndarray]]],
    palette: np.ndarray | None,
    desc: str,
    total: int | None = None,
) -> Counts:
    """Write each ``(out, make)`` whose ``out`` is missing; count written and skipped."""
    counts = {"written": 0, "skipped": 0}
    for out, make in _progress(jobs, desc, total):
        if out.exists():
            counts["skipped"] += 1
            continue
        write_png(out, make(), palette)
        counts["written"] += 1
    return counts


def _progress(items: Iterable, desc: str, total: int | None = None) -> Iterator:
    return iter(tqdm(items, desc=desc, total=total, leave=False, disable=not sys.stderr.isatty()))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _with_images(ids: Iterable[str], images: Path, what: str) -> list[str]:
    """The ids whose ``images/<id>.jpg`` exists; warns with the count of the others."""
    ids = list(ids)
    kept = [i for i in ids if (images / f"{i}.jpg").is_file()]
    if len(kept) < len(ids):
        missing = sorted(set(ids) - set(kept))
        _warn(
            f"{len(missing)} ids of {what} have no image in {str(images)!r} and are left out "
            f"(e.g. {missing[:3]})"
        )
    return kept


# ---- converters ---------------------------------------------------------------------------------


def _sbd_dataset_dir(src: Path) -> Path:
    """``benchmark_RELEASE`` or its ``dataset/`` dir → the dir holding cls/, train.txt, val.txt."""
    require_dir(src, SBD_LAYOUT, "--src")
    for candidate in (src / "dataset", src):
        if (candidate / "cls").is_dir():
            return candidate
    raise FileNotFoundError(f"{str(src / 'dataset' / 'cls')!r} not found; expected {SBD_LAYOUT}")


def prepare_pascal_voc_aug(src: Path, dst: Path) -> Counts:
    """SBD + VOC 2012 → SegmentationClassAug/<id>.png and train_aug.txt (see ``HELP``)."""
    sbd = _sbd_dataset_dir(src)
    check_outside(src, dst)
    base = require_dir(dst / "VOCdevkit" / "VOC2012", VOC_LAYOUT)
    images = require_dir(base / "JPEGImages", VOC_LAYOUT)
    voc_masks = require_dir(base / "SegmentationClass", VOC_LAYOUT)
    lists = base / "ImageSets" / "Segmentation"
    voc_train, voc_val = (set(read_ids(lists / f"{s}.txt", VOC_LAYOUT)) for s in ("train", "val"))
    sbd_ids = set(read_ids(sbd / "train.txt", SBD_LAYOUT)) | set(
        read_ids(sbd / "val.txt", SBD_LAYOUT)
    )
    voc_ids = {p.stem for p in voc_masks.glob("*.png")}
    if lacking := sorted((voc_train | voc_val) - voc_ids):
        raise FileNotFoundError(
            f"{len(lacking)} ids of the VOC train/val lists have no mask in {str(voc_masks)!r} "
            f"(e.g. {lacking[:3]}); expected {VOC_LAYOUT}"
        )
    for i in sorted(sbd_ids - voc_ids):
        if not (sbd / "cls" / f"{i}.mat").is_file():
            mat = sbd / "cls" / f"{i}.mat"
            raise FileNotFoundError(f"{str(mat)!r} not found; expected {SBD_LAYOUT}")

    def make(i: str) -> Callable[[], np.ndarray]:
        if i in voc_ids:  # VOC's finer masks (with 255 boundaries) take precedence
            return lambda: voc_mask(read_label(voc_masks / f"{i}.png"), voc_masks / f"{i}.png")
        return lambda: sbd_mask(sbd / "cls" / f"{i}.mat")

    out = base / "SegmentationClassAug"
    ids = sorted(sbd_ids | voc_ids)
    jobs = ((out / f"{i}.png", make(i)) for i in ids)
    counts = convert_all(jobs, voc_palette(), "pascal_voc_aug", len(ids))
    train_aug = _with_images(sorted((sbd_ids | voc_train) - voc_val), images, "train_aug")
    changed = write_list(lists / "train_aug.txt", train_aug)
    counts |= {
        "train_aug": len(train_aug),
        "from_voc": len(voc_ids),
        "from_sbd": len(sbd_ids - voc_ids),
    }
    print(
        f"pascal_voc_aug: wrote {counts['written']} masks ({counts['skipped']} skipped) in "
        f"{out}, train_aug.txt: {len(train_aug)} ids{'' if changed else ' (unchanged)'}"
    )
    return counts


def prepare_pascal_context(src: Path, dst: Path) -> Counts:
    """PASCAL-Context release + VOC 2010 → SegmentationClassContext/<id>.png and split lists."""
    mats = require_dir(require_dir(src, CONTEXT_LAYOUT, "--src") / "trainval", CONTEXT_LAYOUT)
    labels_txt = src / "labels.txt"
    if not labels_txt.is_file():
        raise FileNotFoundError(f"{str(labels_txt)!r} not found; expected {CONTEXT_LAYOUT}")
    check_outside(src, dst)
    base = require_dir(dst / "VOCdevkit" / "VOC2010", VOC2010_LAYOUT)
    images = require_dir(base / "JPEGImages", VOC2010_LAYOUT)
    main_lists = base / "ImageSets" / "Main"
    splits = {s: read_ids(main_lists / f"{s}.txt", VOC2010_LAYOUT) for s in ("train", "val")}
    lut = context_lut(parse_context_labels(labels_txt), labels_txt)

    out = base / "SegmentationClassContext"
    paths = sorted(mats.glob("*.mat"))
    if not paths:
        raise FileNotFoundError(f"no .mat files in {str(mats)!r}; expected {CONTEXT_LAYOUT}")
    jobs = ((out / f"{p.stem}.png", lambda p=p: context_mask(p, lut)) for p in paths)
    counts = convert_all(jobs, None, "pascal_context", len(paths))
    print(f"pascal_context: wrote {counts['written']} masks ({counts['skipped']} skipped) in {out}")
    have = {p.stem for p in paths}
    for split, ids in splits.items():
        if lacking := sorted(set(ids) - have):
            _warn(
                f"{len(lacking)} ids of Main/{split}.txt have no .mat in {str(mats)!r} and are "
                f"left out (e.g. {lacking[:3]})"
            )
        listed = _with_images(sorted(set(ids) & have), images, f"Main/{split}.txt")
        path = base / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        changed = write_list(path, listed)
        counts[split] = len(listed)
        print(f"pascal_context {split}.txt: {len(listed)} ids{'' if changed else ' (unchanged)'}")
    return counts


def prepare_cityscapes(src: Path, dst: Path) -> Counts:
    """Cityscapes labelIds → labelTrainIds in a new root that links the images (see ``HELP``)."""
    require_dir(src, CITYSCAPES_LAYOUT, "--src")
    left = require_dir(src / "leftImg8bit", CITYSCAPES_LAYOUT)
    gt = require_dir(src / "gtFine", CITYSCAPES_LAYOUT)
    check_outside(src, dst)
    suffix = "_gtFine_labelIds.png"
    by_split = {d.name: sorted(d.glob(f"*/*{suffix}")) for d in sorted(gt.iterdir()) if d.is_dir()}
    by_split = {split: paths for split, paths in by_split.items() if paths}
    if not by_split:
        raise FileNotFoundError(
            f"no *{suffix} files under {str(gt)!r}; expected {CITYSCAPES_LAYOUT}"
        )
    dst.mkdir(parents=True, exist_ok=True)
    link(dst / "leftImg8bit", left)
    counts = {"written": 0, "skipped": 0}
    for split, paths in by_split.items():

        def out(p: Path, split: str = split) -> Path:
            name = p.name[: -len(suffix)] + "_gtFine_labelTrainIds.png"
            return dst / "gtFine" / split / p.parent.name / name

        jobs = ((out(p), lambda p=p: cityscapes_train_ids(read_label(p), p)) for p in paths)
        done = convert_all(jobs, None, f"cityscapes {split}", len(paths))
        counts["written"] += done["written"]
        counts["skipped"] += done["skipped"]
        counts[split] = len(paths)
        print(
            f"cityscapes {split}: wrote {done['written']} labelTrainIds ({done['skipped']} skipped)"
        )
    print(f"cityscapes: {dst / 'leftImg8bit'} -> {left.resolve()}")
    return counts


def _coco_split(coco_json: Path, masks: Path, split: str) -> Counts:
    """Masks of one split: existing masks are kept images; the others are computed again."""
    coco = load_coco(coco_json)
    counts = {"written": 0, "skipped": 0, "dropped": 0}
    palette, kept = voc_palette(), []
    for image_id in _progress(sorted(coco.imgs), f"coco_voc {split}"):
        stem = Path(coco.imgs[image_id].get("file_name", f"{image_id:012d}.jpg")).stem
        out = masks / split / f"{stem}.png"
        if out.exists():
            counts["skipped"] += 1
        else:
            mask = coco_voc_mask(coco, image_id, coco_json)
            if np.count_nonzero(mask) <= COCO_MIN_FOREGROUND:
                counts["dropped"] += 1
                continue
            write_png(out, mask, palette)
            counts["written"] += 1
        kept.append(stem)
    changed = write_list(masks / f"{split}.txt", sorted(kept))
    print(
        f"coco_voc {split}: wrote {counts['written']} masks ({counts['skipped']} skipped), "
        f"dropped {counts['dropped']} images with <= {COCO_MIN_FOREGROUND} VOC-class pixels, "
        f"{split}.txt: {len(kept)} ids{'' if changed else ' (unchanged)'}"
    )
    return counts | {"kept": len(kept)}


def prepare_coco_voc(src: Path, dst: Path) -> dict:
    """COCO 2017 → VOC-class masks and lists in a new root that links the images (see ``HELP``)."""
    annotations = require_dir(require_dir(src, COCO_LAYOUT, "--src") / "annotations", COCO_LAYOUT)
    jsons = {s: annotations / f"instances_{s}.json" for s in COCO_SPLITS}
    jsons = {s: p for s, p in jsons.items() if p.is_file()}
    if not jsons:
        raise FileNotFoundError(
            f"neither instances_train2017.json nor instances_val2017.json in "
            f"{str(annotations)!r}; expected {COCO_LAYOUT}"
        )
    check_outside(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (*COCO_SPLITS, "annotations"):
        if (src / name).is_dir():
            link(dst / name, src / name)
        elif name in jsons:
            _warn(f"{str(src / name)!r} not found: the {name} masks are written without images")
    return {split: _coco_split(path, dst / "voc_masks", split) for split, path in jsons.items()}


CONVERTERS: dict[str, Callable[[Path, Path], dict]] = {
    "pascal_voc_aug": prepare_pascal_voc_aug,
    "pascal_context": prepare_pascal_context,
    "pascal_context60": prepare_pascal_context,
    "cityscapes": prepare_cityscapes,
    "coco_voc": prepare_coco_voc,
}
