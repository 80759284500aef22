"""Fuzz: about 200 broken files (``support.fuzz_files.cases``), each one sample of one VOC tree,
read through the dataset that ``dataset=pascal_voc`` builds, as the loaders do.

Each must stop with ONE line naming the file and what was expected (``on_bad_sample=error``) or
come back as a counted skip (``skip``); ``cfnet.stats``' header-only read and ``cfnet.predict``'s
lenient reader must answer with a ``SampleError`` naming the file or a well-formed picture.
Anything else (another exception type, a warning, a hang, a decoded decompression bomb) fails.
The same through ``python -m cfnet.train`` with loader workers: ``test_fuzz_cli.py``.
"""

from __future__ import annotations

import re
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image, ImageFile

from cfnet.data import io as cfnet_io
from cfnet.data.io import SampleError, read_any_image, read_rgb_image
from support.configs import compose_config
from support.fuzz_files import HEIGHT, TOO_LARGE, WIDTH, Case, cases, photo
from support.raw_releases import make_voc_tree

VOC = Path("VOCdevkit/VOC2012")
CASES = cases()
# Modes cfnet.predict converts (8-bit pictures); it refuses 16-bit and float ones.
LENIENT = re.compile(r"has mode '(L|P|1|LA|RGBA|CMYK)'")
WIDE = re.compile(r"has mode '(I;16|I|F)'")


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, if the block takes longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sample_id(case: Case) -> str:
    return f"fuzz_{CASES.index(case):03d}"


def broken_path(root: Path, case: Case) -> Path:
    folder, suffix = (
        ("JPEGImages", ".jpg") if case.target == "image" else ("SegmentationClass", ".png")
    )
    return root / VOC / folder / f"{sample_id(case)}{suffix}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """One VOC tree: a good sample "good" first, then one sample per case, broken as it says."""
    root = tmp_path_factory.mktemp("fuzz")
    make_voc_tree(root, train=["good", *map(sample_id, CASES)], val=["good_val"])
    for case in CASES:
        case.write(broken_path(root, case), case.rng())
    return root


def voc_dataset(root: Path, on_bad_sample: str):
    cfg = compose_config(
        "train",
        [
            "dataset=pascal_voc",
            f"dataset.root={root}",
            "dataset.num_workers=0",
            f"dataset.on_bad_sample={on_bad_sample}",
        ],
    )
    return instantiate(cfg.dataset).build_dataset("train", transform=None)


@pytest.fixture(scope="module")
def datasets(tree):
    return voc_dataset(tree, "error"), voc_dataset(tree, "skip")


def check_message(message: str, case: Case, path: Path) -> None:
    assert "\n" not in message, message  # one line
    assert repr(str(path)) in message, f"the message does not name {path}: {message}"
    assert re.search(case.expect, message), f"{case.name}: {message!r} !~ {case.expect!r}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_broken_file_stops_naming_it_or_is_skipped_and_counted(case, tree, datasets):
    strict, lenient = datasets
    index, path = 1 + CASES.index(case), broken_path(tree, case)
    with deadline(10), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused, not warned
        try:
            sample = strict[index]
        except SampleError as err:
            message = str(err)
            check_message(message, case, path)
            assert lenient[index] == {"skipped": [message]}  # counted by BadSampleReport
        else:
            assert case.may_decode, f"{case.name}: read without an error"
            assert sample["image"].shape == (HEIGHT, WIDTH, 3) and sample["name"] == sample_id(case)
            assert lenient[index]["name"] == sample_id(case)
            message = ""
        # cfnet.stats reads the label map and only the image's header: the same error for a
        # broken label map; for a broken image, one naming it (a header error, or a size that
        # differs from the label map's) or none (damage behind the header)
        try:
            strict.read_labels(index)
        except SampleError as err:
            if case.target == "label":
                assert str(err) == message
            else:
                assert "\n" not in str(err) and repr(str(path)) in str(err), str(err)
        else:
            assert case.target == "image", f"{case.name}: the label map read without an error"
        # cfnet.predict's reader: converts 8-bit modes, refuses everything else
        if case.target == "image":
            try:
                picture = read_any_image(path)
            except SampleError as err:
                assert not LENIENT.search(message), f"predict should have converted {case.name}"
                if WIDE.search(message):
                    assert re.search(WIDE.pattern + r".*expected an 8-bit picture", str(err))
                else:  # the same damage, the same words
                    assert str(err) == message
            else:
                assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
                if not case.may_decode:
                    assert LENIENT.search(message), f"predict read {case.name}"
                    assert picture.shape == (HEIGHT, WIDTH, 3)


def test_the_good_sample_of_the_fuzz_tree_reads(tree, datasets):
    """The tree itself is sound: the failures above are the broken files'."""
    sample = datasets[0][0]
    assert sample["name"] == "good" and sample["image"].shape == (HEIGHT, WIDTH, 3)


def test_skip_in_training_walks_on_to_the_next_readable_sample_counting_each_bad_one(datasets):
    """Training replaces a bad sample by the next good one (so batches keep their size): from
    the first broken sample it walks on, and every file it passed is in ``skipped``."""
    strict, lenient = datasets
    passed = []
    for index in range(1, len(strict)):
        try:
            expected = strict[index]["name"]
            break
        except SampleError as err:
            passed.append(str(err))
    lenient.replace_bad = True
    try:
        sample = lenient[1]
    finally:
        lenient.replace_bad = False
    assert len(passed) >= 20 and sample["name"] == expected and sample["skipped"] == passed


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == TOO_LARGE], ids=lambda c: c.name)
def test_a_huge_declared_size_is_refused_before_anything_is_decoded(case, tree, monkeypatch):
    """Not decoded (no allocation), not merely warned about: the refusal comes from the header."""

    def decode(self):
        raise AssertionError(f"{case.name} was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    path = broken_path(tree, case)
    read = read_rgb_image if case.target == "image" else cfnet_io.read_label
    with pytest.raises(SampleError, match="refused from its header, before decoding"):
        read(path, False) if case.target == "image" else read(path)
    if case.target == "image":
        with pytest.raises(SampleError, match="refused from its header, before decoding"):
            read_any_image(path)


@pytest.mark.parametrize("seed", range(12))
def test_a_jpeg_that_lost_only_its_end_marker_is_refused_or_read_whole(seed, tmp_path):
    """The one truncation a reader may let through: every pixel is still in the file."""
    whole, path = photo(np.random.default_rng(seed), "JPEG"), tmp_path / "cut.jpg"
    (tmp_path / "whole.jpg").write_bytes(whole)
    for lost in (1, 2):
        path.write_bytes(whole[:-lost])
        try:
            pixels = read_rgb_image(path, False)
        except SampleError as err:
            assert re.search(r"corrupt or truncated JPEG data; Pillow says OSError: image file is "
                             r"truncated", str(err))  # fmt: skip
        else:
            assert np.array_equal(pixels, read_rgb_image(tmp_path / "whole.jpg", False))


def test_a_picture_pillow_opens_with_no_pixels_is_refused(tmp_path, monkeypatch):
    """Pillow 13 refuses zero-size files itself (the fuzz cases above); other versions may open
    some, and an empty array would then fail far away, in the augmentation."""
    path = tmp_path / "empty.png"
    Image.new("RGB", (4, 4)).save(path)
    monkeypatch.setattr(cfnet_io.Image, "open", lambda p: Image.new("RGB", (0, 5)))
    with pytest.raises(SampleError, match=r"image '.*empty\.png' is 0×5 pixels \(empty\)"):
        read_rgb_image(path, False)
