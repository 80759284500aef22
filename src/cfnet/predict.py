"""``python -m cfnet.predict ckpt_path=… input=<image|folder> output=<folder>``.

For every input image: ``<stem>.png``, an indexed PNG whose pixel values are the predicted class
ids (with the dataset palette, so it also looks right), and ``<stem>_overlay.png``. Nothing is
written into the input folder, and existing outputs are only replaced with ``overwrite=true``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image

from cfnet.cli import CONFIG_DIR, user_errors
from cfnet.data.base import eval_transform
from cfnet.data.io import IMAGE_SUFFIXES, read_image
from cfnet.lit import SegmentationModule
from cfnet.viz import overlay, palette_png


def list_inputs(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input {str(source)!r} is neither an image file nor a folder")
    images = sorted(
        p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise FileNotFoundError(f"input folder {str(source)!r} holds no images {IMAGE_SUFFIXES}")
    return images


def plan_outputs(
    images: list[Path], source: Path, output: Path, overwrite: bool
) -> list[tuple[Path, Path]]:
    """(mask path, overlay path) per image, after checking nothing would be lost or clobbered."""
    input_dir = (source if source.is_dir() else source.parent).resolve()
    out = output.resolve()
    if out == input_dir or out.is_relative_to(input_dir):
        raise ValueError(
            f"output {str(output)!r} is inside the input folder {str(input_dir)!r}; "
            "choose another folder"
        )
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise ValueError(
                f"inputs {stems[image.stem].name!r} and {image.name!r} would both write "
                f"{image.stem}.png"
            )
        stems[image.stem] = image
    plans = [(output / f"{p.stem}.png", output / f"{p.stem}_overlay.png") for p in images]
    existing = [str(p) for pair in plans for p in pair if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]!r}; "
            f"pass overwrite=true to replace them or choose another output folder"
        )
    return plans


@torch.no_grad()
def predict(cfg: DictConfig) -> list[Path]:
    source, output = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    images = list_inputs(source)
    plans = plan_outputs(images, source, output, cfg.overwrite)
    module = SegmentationModule.from_checkpoint(cfg.ckpt_path).eval().to(cfg.device)
    hp = module.hparams
    transform = eval_transform(mean=hp.mean, std=hp.std)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for image_path, (mask_path, overlay_path) in zip(images, plans, strict=True):
        image = read_image(image_path)
        tensor = transform(image=image)["image"][None].to(cfg.device)
        mask = module(tensor)[0].argmax(0).to(torch.uint8).cpu().numpy()
        palette_png(mask, hp.palette).save(mask_path)
        Image.fromarray(overlay(image, mask, hp.palette, cfg.overlay_alpha)).save(overlay_path)
        written += [mask_path, overlay_path]
        print(f"{image_path} → {mask_path}, {overlay_path}")
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    with user_errors():
        predict(cfg)


if __name__ == "__main__":
    main()
