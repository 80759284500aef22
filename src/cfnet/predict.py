"""``python -m cfnet.predict ckpt_path=… input=<image|folder> output=<folder>``.

``ckpt_path``: a checkpoint of ``cfnet.train``, or a model saved the Hugging Face Hub's way (a
directory or a repo id; ``cfnet.cli.model_loading``).

For every input image: ``<stem>.png``, an indexed PNG whose pixel values are the predicted class
ids (with the dataset palette, so it also looks right), and ``<stem>_overlay.png``. Nothing is
written into the input folder, and existing outputs are only replaced with ``overwrite=true``.
Every input is decoded before anything is written (a broken one stops the run, naming it; with
``on_bad_input=skip`` the others are predicted and the broken ones listed in one line at the end),
and each output is written atomically (an interrupted run never leaves half a PNG). Files of a
folder that are not pictures by their suffix are named in one line and left alone.
``inference=whole|slide|ms_flip`` picks the protocol (``cfnet.evaluation.inference``).
``device=auto`` runs on CUDA when it is there, ``precision=auto`` in the device's precision (bf16
autocast on CUDA and on a CPU with native bf16, else fp32; ``cfnet.utils.hardware``), with
channels_last weights as in training; one line on stderr says which.

``export=voc|cityscapes`` writes test-server submissions instead: VOC palette PNGs of class ids
under ``results/VOC2012/Segmentation/comp6_test_cls/``, or Cityscapes PNGs of labelIds (the
benchmark scores labelIds, the model predicts trainIds) named ``<frame>_leftImg8bit.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from cfnet.analysis.viz import overlay, palette_png
from cfnet.cli.entry_point import hydra_main
from cfnet.cli.model_loading import load_model
from cfnet.cli.validate import check_predict_config
from cfnet.data.io import IMAGE_SUFFIXES, SampleError, read_any_image
from cfnet.data.labels import CITYSCAPES_TRAIN_NAMES, cityscapes_train_to_label_id
from cfnet.data.transforms import eval_transform
from cfnet.utils.atomic import write_atomically
from cfnet.utils.hardware import autocast, device_name, inference_device, inference_precision


def list_inputs(source: Path) -> list[Path]:
    """The pictures to predict: ``source`` itself, or the files of the folder ``source`` whose
    suffix, in any case, is one of ``IMAGE_SUFFIXES`` (not recursive).

    Hidden files are left out (``.DS_Store``, and the ``._photo.jpg`` metadata files macOS writes
    onto shared drives, which are not pictures despite their suffix), as are folders and other
    files. A link to a picture counts; a dangling one too, so that it is reported, not skipped.
    """
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input {str(source)!r} is neither an image file nor a folder")
    images = sorted(
        p
        for p in source.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
    )
    if not images:
        raise FileNotFoundError(f"input folder {str(source)!r} holds no images {IMAGE_SUFFIXES}")
    return images


def other_files(source: Path) -> list[Path]:
    """The files of the folder ``source`` that ``list_inputs`` leaves out for their type (suffix),
    to be named: hidden files and folders are left out silently."""
    if not source.is_dir():
        return []
    return sorted(
        p
        for p in source.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() not in IMAGE_SUFFIXES and not p.is_dir()
    )


def printable(text: str) -> str:
    """``text`` as the console can print it: a file name that is not valid UTF-8 (made on another
    system), or a character the console's encoding lacks, would make ``print`` raise."""
    encoding = sys.stdout.encoding or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


VOC_RESULTS = Path("results/VOC2012/Segmentation/comp6_test_cls")


def output_paths(image: Path, output: Path, export: str | None) -> list[Path]:
    """What one input image produces: mask + overlay, or the submission file of ``export``."""
    if export == "voc":
        return [output / VOC_RESULTS / f"{image.stem}.png"]
    if export == "cityscapes":
        return [output / f"{image.stem}.png"]
    return [output / f"{image.stem}.png", output / f"{image.stem}_overlay.png"]


def check_export(export: str | None, class_names: list[str], num_classes: int) -> None:
    """An export format fixes the label space: refuse a checkpoint of other classes."""
    if export is None:  # (the format itself was checked with the config, check_predict_config)
        return
    expected = 21 if export == "voc" else len(CITYSCAPES_TRAIN_NAMES)
    if num_classes != expected or (
        export == "cityscapes" and tuple(class_names) != CITYSCAPES_TRAIN_NAMES
    ):
        raise ValueError(
            f"export={export} needs a checkpoint trained on the {expected} {export} classes; "
            f"this one has {num_classes} classes {class_names[:4]}..."
        )


def plan_outputs(
    images: list[Path], source: Path, output: Path, overwrite: bool, export: str | None = None
) -> list[list[Path]]:
    """Output paths per image, after checking nothing would be lost or clobbered."""
    input_dir = (source if source.is_dir() else source.parent).resolve()
    out = output.resolve()
    if out == input_dir or out.is_relative_to(input_dir):
        raise ValueError(
            f"output {str(output)!r} is inside the input folder {str(input_dir)!r}; "
            "choose another folder"
        )
    plans = [output_paths(p, output, export) for p in images]
    writers: dict[Path, Path] = {}  # e.g. a.jpg and a.png, or a.png and a_overlay.jpg
    for image, paths in zip(images, plans, strict=True):
        for path in paths:
            if path in writers:
                raise ValueError(
                    f"inputs {writers[path].name!r} and {image.name!r} would both write "
                    f"{path.name!r}; rename one of them"
                )
            writers[path] = image
    existing = [str(p) for pair in plans for p in pair if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]!r}; "
            f"pass overwrite=true to replace them or choose another output folder"
        )
    return plans


def check_inputs(images: list[Path], on_bad_input: str = "error") -> dict[Path, str]:
    """Decode every input once before anything is written, so that a broken picture among them
    stops the run naming it, rather than after some outputs exist (one extra decode per image:
    little next to the network's forward passes). With ``on_bad_input="skip"``, the broken ones
    are not raised but returned: {picture: the message naming it and what is wrong}."""
    bad = {}
    for image in images:
        try:
            read_any_image(image)
        except SampleError as err:
            if on_bad_input != "skip":
                hint = " (on_bad_input=skip predicts the others)" if len(images) > 1 else ""
                raise SampleError(f"{err}{hint}") from err
            bad[image] = str(err)
    return bad


def save_png(image: Image.Image, path: Path) -> None:
    """Written atomically: an interrupted run never leaves half a PNG under an output's name."""
    write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))


@torch.no_grad()
def predict(cfg: DictConfig) -> list[Path]:
    check_predict_config(cfg)
    device = inference_device(cfg.device)
    precision = inference_precision(cfg.precision, device.type)
    # the model, and the dataset config it was trained on (its base/crop size for inference):
    # which one is a notice on stderr (stdout: a line per picture)
    module = load_model(cfg, channels_last=True)
    module.configure_model()  # channels_last, as in training
    module = module.eval().to(device)
    source, output = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    images = list_inputs(source)
    if ignored := other_files(source):
        names = ", ".join(p.name for p in ignored)
        line = f"ignored {len(ignored)} file(s) whose suffix is not a picture's: {names}"
        print(printable(line), file=sys.stderr)
    plans = plan_outputs(images, source, output, cfg.overwrite, cfg.export)
    bad = check_inputs(images, cfg.on_bad_input)
    if len(bad) == len(images):
        raise ValueError(f"none of the {len(images)} inputs can be read: {'; '.join(bad.values())}")
    plans = [plan for image, plan in zip(images, plans, strict=True) if image not in bad]
    images = [image for image in images if image not in bad]
    hp = module.hparams
    check_export(cfg.export, hp.class_names, hp.num_classes)
    inference = instantiate(cfg.inference)
    transform = eval_transform(mean=hp.mean, std=hp.std)
    to_label_id = cityscapes_train_to_label_id()
    line = f"cfnet: predicting on {device_name(device)}, precision {precision}, channels_last"
    if inference.compiles_windows:
        line += ", windows compiled (inference.compile=true)"
    print(line, file=sys.stderr)
    written = []
    for image_path, paths in zip(images, plans, strict=True):
        image = read_any_image(image_path)
        tensor = transform(image=image)["image"][None].to(device)
        with autocast(device, precision):
            mask = inference(module.net, tensor, module.pad_value())[0].argmax(0)
        mask = mask.to(torch.uint8).cpu().numpy()
        if cfg.export == "cityscapes":
            save_png(Image.fromarray(to_label_id[mask], mode="L"), paths[0])
        else:  # class ids with the palette (VOC's own for export=voc)
            save_png(palette_png(mask, hp.palette), paths[0])
        if cfg.export is None:
            save_png(Image.fromarray(overlay(image, mask, hp.palette, cfg.overlay_alpha)), paths[1])
        written += paths
        print(printable(f"{image_path} → {', '.join(str(p) for p in paths)}"))
    if bad:
        skipped = f"skipped {len(bad)} input(s) that cannot be read (on_bad_input=skip): "
        print(printable(skipped + "; ".join(bad.values())), file=sys.stderr)
    return written


main = hydra_main("predict", predict)

if __name__ == "__main__":
    main()
