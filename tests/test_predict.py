"""``cfnet.predict`` and the files it meets: odd names, things that are not pictures, broken
pictures, existing outputs, interruptions.

One run goes through a real process typed into bash as docs/reliability.md says (quoting an odd
name for Hydra); the others call the same entry point in-process (``cfnet.predict.main`` with
``sys.argv``: Hydra, ``user_errors`` and the exit code as on the command line, without paying the
interpreter start-up, 6 s here, each time).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from cfnet import predict as predict_module
from cfnet.utils.hardware import device_name, device_precision
from support.fuzz_files import cut, encode
from support.raw_releases import tree_snapshot
from support.training import make_checkpoint

TIMEOUT = 120  # seconds, for the runs in a process of their own
ODD_NAMES = [
    "scene 0.png",  # spaces
    "café ß 日本.png",  # non-ASCII
    "-x.jpg",  # a leading dash
    "a.b.c.JPG",  # several dots, upper-case suffix
    "UPPER.PNG",
    "photo.JPEG",
    "a=b,c.png",  # Hydra's separators
    'it\'s "quoted".jpg',  # both quotes
    "[x]{y}(z) #~&!$.jpeg",  # shell and Hydra syntax
]
LATIN1_NAME = os.fsdecode(b"caf\xe9 latin-1.jpg")  # not UTF-8: written on another system
NOT_PICTURES = {  # left alone: hidden files, folders, other files
    ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(64),
    "._scene 0.png": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(40),
    "notes.txt": b"not a picture\n",
    "labels.json": b"{}\n",
    "README": b"no suffix\n",
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), "synthetic")


def picture(path: Path, index: int) -> tuple[int, int]:
    """A random picture of its own size at ``path`` (format from the suffix); → (width, height)."""
    size = (24 + 3 * index, 20 + 2 * index)
    rng = np.random.default_rng(index)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return size


def odd_folder(root: Path) -> dict[str, tuple[int, int]]:
    """The input folder ``root/in``: pictures with odd names, a link to a picture elsewhere, and
    things to leave alone; → {output stem: picture size}."""
    inputs = root / "in"
    sizes = {Path(n).stem: picture(inputs / n, i) for i, n in enumerate(ODD_NAMES)}
    sizes[Path(LATIN1_NAME).stem] = picture(inputs / LATIN1_NAME, 20)
    sizes["link"] = picture(root / "elsewhere" / "real.jpg", 21)
    (inputs / "link.jpg").symlink_to(root / "elsewhere" / "real.jpg")
    for name, data in NOT_PICTURES.items():
        (inputs / name).write_bytes(data)
    picture(inputs / "folder.jpg" / "inside.jpg", 22)  # a folder with an image's suffix
    picture(inputs / "sub" / "nested.png", 23)  # not recursive
    return sizes


def outputs(stems) -> set[str]:
    return {f"{stem}{end}" for stem in stems for end in (".png", "_overlay.png")}


def state(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """{name: (inode, mtime_ns, content)}: what tells a file replaced from one left alone."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()
    }


def run_main(*args: str) -> int:
    """``python -m cfnet.predict <args>`` in this process; → the exit code."""
    with mock.patch.object(sys, "argv", ["cfnet.predict", *args]):
        try:
            predict_module.main()
        except SystemExit as exit:
            return exit.code
    return 0


def test_odd_names_are_predicted_and_what_is_not_a_picture_is_left_alone(ckpt, tmp_path, capsys):
    """Every odd name in, its two outputs out, nothing else touched or written."""
    sizes = odd_folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's\n")
    (out / ".hidden").write_text("the user's\n")
    picture(out / "unrelated.png", 30)
    before_in, before_out = tree_snapshot(tmp_path / "in"), state(out)
    code = run_main(
        f"ckpt_path={ckpt}",
        f"input={tmp_path / 'in'}",
        f"output={out}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert set(os.listdir(out)) == set(before_out) | outputs(sizes)  # no temporary files left
    for stem, size in sizes.items():
        mask = Image.open(out / f"{stem}.png")
        assert mask.mode == "P" and mask.size == size
        assert Image.open(out / f"{stem}_overlay.png").size == size
    assert {name: state(out)[name] for name in before_out} == before_out
    assert tree_snapshot(tmp_path / "in") == before_in
    assert len(printed.strip().splitlines()) == len(sizes)
    assert "caf\\udce9 latin-1.jpg" in printed  # printed, escaped, not a crash


def hydra_quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value (the rule in docs/reliability.md): in single
    quotes, with ``\\'`` for a quote and ``\\${`` for a literal ``${``."""
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def test_a_single_odd_file_is_given_as_the_readme_says(ckpt, tmp_path):
    """Typed into bash: ``"input='<dir>/café, ß=日本 it\\'s.png'"`` (Hydra would read ``,`` as a
    sweep, ``=`` and ``'`` as syntax, and refuses unquoted non-ASCII letters)."""
    image = tmp_path / "photos" / "café, ß=日本 it's.png"
    size = picture(image, 0)
    out = tmp_path / "predictions"
    line = " ".join(
        [
            shlex.quote(sys.executable),
            "-m cfnet.predict",
            f"ckpt_path={ckpt}",
            f'"input={hydra_quoted(str(image))}"',
            f"output={out}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert "\"input='" in line and "it\\'s.png'\"" in line  # what docs/reliability.md shows
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(os.listdir(out)) == outputs([image.stem])
    assert Image.open(out / f"{image.stem}.png").size == size


def html_page(path: Path) -> None:
    path.write_bytes(b"<!DOCTYPE html><html><body>403 Forbidden</body></html>")


def dangling_link(path: Path) -> None:
    path.symlink_to(path.with_name("gone.jpg"))


def truncated_jpeg(path: Path) -> None:
    """Cut in its compressed data (a photo's header is a few hundred bytes of tables)."""
    photo = np.random.default_rng(0).integers(0, 256, (96, 128, 3), np.uint8)
    path.write_bytes(cut(encode(photo, "JPEG"), 0.6))


def sixteen_bit(path: Path) -> None:
    path.write_bytes(encode(np.zeros((12, 16), np.uint16), "PNG"))


BROKEN = {  # what makes the middle input unreadable → the expected message after its name
    truncated_jpeg: r"corrupt or truncated JPEG data; Pillow says OSError: image file is "
    r"truncated",
    html_page: r"Pillow cannot read it as a picture \(the file starts with b'<!DOCTYPE html><'\)",
    dangling_link: r"No such file or directory",
    sixteen_bit: r"has mode 'I;16' \(16-bit greyscale\); expected an 8-bit picture",
}


@pytest.mark.parametrize("breaker", BROKEN, ids=lambda f: f.__name__)
def test_a_broken_picture_stops_predict_before_anything_is_written(breaker, ckpt, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    picture(inputs / "a.jpg", 0)
    broken = inputs / "b broken.jpg"
    breaker(broken)
    picture(inputs / "c.jpg", 1)
    code = run_main(
        f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}", f"hydra.run.dir={tmp_path}/run"
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line
    names = rf"^error: (cannot read )?image {re.escape(repr(str(broken)))}:? "
    assert re.search(names + ".*" + BROKEN[breaker], line), line
    assert not out.exists()


def test_outputs_are_replaced_only_when_asked_and_nothing_else_is_touched(ckpt, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(["a.jpg", "b.png"]):
        picture(inputs / name, i)
    out.mkdir()
    (out / "keep.txt").write_text("the user's\n")
    picture(out / "unrelated.png", 5)
    args = [f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}"]
    assert run_main(*args, f"hydra.run.dir={tmp_path}/run1") == 0
    first = state(out)
    assert set(first) == {"keep.txt", "unrelated.png"} | outputs(["a", "b"])
    capsys.readouterr()

    code = run_main(*args, f"hydra.run.dir={tmp_path}/run2")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        f"error: 4 output file(s) already exist, e.g. {str(out / 'a.png')!r}; pass "
        "overwrite=true to replace them or choose another output folder"
    )
    assert state(out) == first

    assert run_main(*args, "overwrite=true", f"hydra.run.dir={tmp_path}/run3") == 0
    again = state(out)
    assert set(again) == set(first)  # nothing added (no temporary file), nothing removed
    for name in outputs(["a", "b"]):  # each output replaced (a new file), with the same content
        assert again[name][0] != first[name][0] and again[name][2] == first[name][2]
    for name in ("keep.txt", "unrelated.png"):
        assert again[name] == first[name]


def test_an_interrupted_predict_leaves_whole_files_or_the_old_ones(ckpt, tmp_path, monkeypatch):
    """Killed while writing its 3rd file: the 3rd name holds the previous run's whole PNG (or
    nothing on a first run), never half a file, and no temporary file is left."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(["a.jpg", "b.jpg"]):
        picture(inputs / name, i)
    args = [f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}", "overwrite=true"]
    save = Image.Image.save
    calls = []

    def interrupted_save(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 3:  # half the bytes reach the disk, then the user presses Ctrl-C
            Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
            raise KeyboardInterrupt
        return save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_main(*args, f"hydra.run.dir={tmp_path}/run1")
    assert sorted(os.listdir(out)) == ["a.png", "a_overlay.png"]  # b.png: none, not a half one
    monkeypatch.setattr(Image.Image, "save", save)
    assert run_main(*args, f"hydra.run.dir={tmp_path}/run2") == 0
    previous = state(out)

    calls.clear()
    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_main(*args, f"hydra.run.dir={tmp_path}/run3")
    assert state(out)["b.png"] == previous["b.png"]  # the old file, whole
    assert set(os.listdir(out)) == set(previous)
    Image.open(out / "b.png").load()


@pytest.mark.parametrize(
    "names, clash",
    [(["a.png", "a_overlay.jpg"], "a_overlay.png"), (["b.jpg", "b.PNG"], "b.png")],
)
def test_two_inputs_that_would_write_the_same_file_are_refused(
    names, clash, ckpt, tmp_path, capsys
):
    inputs, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(names):
        picture(inputs / name, i)
    code = run_main(
        f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}", f"hydra.run.dir={tmp_path}/run"
    )
    assert code == 2
    first, second = sorted(names)
    assert capsys.readouterr().err.strip() == (
        f"error: inputs {first!r} and {second!r} would both write {clash!r}; rename one of them"
    )
    assert not out.exists()


def test_on_bad_input_skip_predicts_the_others_and_lists_what_it_skipped(
    ckpt, tmp_path, capsys, monkeypatch
):
    """A truncated picture among good ones: with on_bad_input=skip the good ones are predicted,
    and one line at the end names the skipped one; a file of another type is named as ignored.
    Run from the folder a user would be in, without a run dir: predict writes only its outputs."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    picture(inputs / "a.jpg", 0)
    truncated_jpeg(inputs / "b.jpg")
    picture(inputs / "c.png", 1)
    (inputs / "notes.txt").write_text("not a picture\n")
    monkeypatch.chdir(tmp_path)
    code = run_main(f"ckpt_path={ckpt}", "input=in", "output=out", "on_bad_input=skip")
    printed = capsys.readouterr()
    assert code == 0
    assert set(os.listdir(out)) == outputs(["a", "c"])
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]  # no outputs/, .hydra/ or predict.log
    notices = printed.err.strip().splitlines()
    assert len(notices) == 3 and "Traceback" not in printed.err
    assert notices[0].startswith("ignored 1 file(s) whose suffix is not a picture's: notes.txt")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # device=auto
    assert notices[1] == (  # the hardware, as cfnet.train names it, and the device's precision
        f"cfnet: predicting on {device_name(device)}, precision {device_precision(device.type)}, "
        "channels_last"
    )
    assert notices[2].startswith("skipped 1 input(s) that cannot be read (on_bad_input=skip): ")
    assert "'in/b.jpg'" in notices[2] and "a.jpg" not in notices[2]
    assert len(printed.out.strip().splitlines()) == 2  # one line per predicted picture

    # without skip (the default) it stops, naming the file and the option, before writing
    code = run_main(f"ckpt_path={ckpt}", "input=in", "output=out2")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "'in/b.jpg'" in err[-1]
    assert err[-1].endswith("(on_bad_input=skip predicts the others)")
    assert not (tmp_path / "out2").exists()

    # a lone broken picture: there are no others to predict, so no such hint
    code = run_main(f"ckpt_path={ckpt}", "input=in/b.jpg", "output=out3")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "'in/b.jpg'" in err[-1]
    assert "on_bad_input" not in err[-1] and not (tmp_path / "out3").exists()
