"""``python -m cfnet.export ckpt_path=… format=onnx|safetensors``: deployable model files.

* ``onnx``: the segmentor (fused ACF attention, as trained) traced with ``torch.onnx.export``
  (the dynamo exporter) with dynamic batch, height and width; input ``image`` (B×3×H×W,
  normalised), output ``logits`` (B×C×H×W). Unless ``check=false`` the file is run with
  onnxruntime on a ``height × width`` input and compared with PyTorch: the max abs difference is
  printed and must stay below ``tolerance``.
* ``safetensors``: the segmentor's weights (no pickle, safe to load from anyone) plus
  ``<name>.json`` with the model config, the class names, the palette and the normalisation, so
  ``load_safetensors`` rebuilds the model without Lightning, Hydra or the checkpoint.

Outputs go to ``output`` (default: the run dir) and never replace a file unless
``overwrite=true``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.cli import CONFIG_DIR, checked_groups, user_errors
from cfnet.lit import SegmentationModule
from cfnet.models.segmentor import Segmentor
from cfnet.validate import positive_int

FORMATS = ("onnx", "safetensors")
# What a deployment needs besides the weights (all plain data, from the checkpoint).
META_KEYS = ("model", "num_classes", "class_names", "palette", "ignore_index", "mean", "std")


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]!r} already exists; pass overwrite=true to replace it or choose "
            "another output"
        )


def export_onnx(
    net: Segmentor, path: Path, height: int, width: int, opset: int
) -> torch.onnx.ONNXProgram:
    """Trace ``net`` to ONNX with dynamic batch / height / width."""
    for name in ("onnx_ir", "onnxscript"):  # their per-pass INFO lines say nothing to a user
        logging.getLogger(name).setLevel(logging.WARNING)
    example = torch.randn(1, 3, height, width)
    dims = {0: torch.export.Dim("batch", max=1024), 2: torch.export.Dim.AUTO}
    dims[3] = torch.export.Dim.AUTO
    return torch.onnx.export(
        net,
        (example,),
        str(path),
        dynamo=True,
        opset_version=opset,
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"images": dims},
        verbose=False,
    )


def onnx_max_abs_diff(net: Segmentor, path: Path, height: int, width: int) -> float:
    """Max |PyTorch − onnxruntime| of the logits for a random ``2 × 3 × height × width`` input
    (batch 2 also exercises the dynamic batch axis)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = net(image).numpy()
    (actual,) = session.run(["logits"], {"image": image.numpy()})
    return float(np.abs(expected - actual).max())


def save_safetensors(module: SegmentationModule, path: Path) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in module.net.state_dict().items()}
    save_file(tensors, str(path))
    meta = {key: module.hparams[key] for key in META_KEYS}
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta_path


def load_safetensors(path: str | Path) -> tuple[Segmentor, dict[str, Any]]:
    """Rebuild a segmentor from ``export format=safetensors`` output: (model in eval mode, meta)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"expected {str(path)!r} and {str(meta_path)!r} (cfnet.export)")
    meta = json.loads(meta_path.read_text())
    net: Segmentor = instantiate({**meta["model"], "pretrained": None})
    net.load_state_dict(load_file(str(path)))
    return net.eval(), meta


def export(cfg: DictConfig) -> list[Path]:
    if cfg.format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {cfg.format!r}")
    for key in ("height", "width", "opset"):
        positive_int(key, cfg[key])
    module = SegmentationModule.from_checkpoint(cfg.ckpt_path).eval()
    net = module.net
    path = Path(cfg.output).expanduser() / f"{cfg.name}.{cfg.format}"
    written = [path] if cfg.format == "onnx" else [path, path.with_suffix(".json")]
    _refuse_existing(written, cfg.overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.format == "safetensors":
        save_safetensors(module, path)
        print(f"wrote {path} and {written[1]}")
        return written
    export_onnx(net, path, cfg.height, cfg.width, cfg.opset)
    print(f"wrote {path}")
    if cfg.check:
        diff = onnx_max_abs_diff(net, path, cfg.height, cfg.width)
        print(f"onnxruntime vs PyTorch at 2×3×{cfg.height}×{cfg.width}: max abs diff {diff:.3g}")
        if not diff <= cfg.tolerance:
            raise ValueError(
                f"the ONNX model differs from PyTorch by {diff:.3g} > tolerance={cfg.tolerance}"
            )
    return written


@checked_groups
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    with user_errors():
        export(cfg)


if __name__ == "__main__":
    main()
