"""``python -m cfnet.export ckpt_path=… format=onnx|safetensors|hub``: deployable model files.

* ``onnx``: the segmentor (fused ACF attention, as trained) traced with ``torch.onnx.export``
  (the dynamo exporter) with dynamic axes named ``batch``, ``height`` and ``width``; input
  ``image`` (B×3×H×W, normalised), output ``logits`` (B×C×H×W). One self-contained file: the
  weights are inside it, and so is what a deployment needs besides them (``META_KEYS``: the
  normalisation, class names, palette, ...; JSON values in the model's ``metadata_props``, with
  the input and output layouts in words). Only weights beyond protobuf's limit (torch's threshold,
  1.5 GiB) go to ``<name>.onnx.data`` beside it, and then both files are named. Unless
  ``check=false`` the file is run with onnxruntime on a ``height × width`` input and compared with
  PyTorch: the max abs difference is printed and must stay below ``tolerance``.
* ``safetensors``: the segmentor's weights (no pickle, safe to load from anyone) plus
  ``<name>.json`` with the model config, the class names, the palette and the normalisation, so
  ``load_safetensors`` rebuilds the model without Lightning, Hydra or the checkpoint.
* ``hub``: the directory ``output`` as the Hugging Face Hub keeps a model -- config.json,
  model.safetensors and a model card, README.md -- which ``cfnet.from_pretrained``, ``predict``,
  ``evaluate`` and ``model.init_from`` load; ``push_to_hub=org/name`` uploads it
  (``cfnet.cli.publish``).

Outputs go to ``output`` (default: the run dir) and never replace a file unless
``overwrite=true``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.cli.entry_point import hydra_main
from cfnet.cli.publish import export_hub
from cfnet.lit import SegmentationModule
from cfnet.models.segmentor import Segmentor
from cfnet.utils.checks import positive_int

FORMATS = ("onnx", "safetensors", "hub")
# What a deployment needs besides the weights (all plain data, from the checkpoint).
META_KEYS = ("model", "num_classes", "class_names", "palette", "ignore_index", "mean", "std")
# The ONNX model's interface in words, stored with META_KEYS in its metadata_props.
ONNX_LAYOUT = {
    "input_layout": "image: float32 batch×3×height×width, RGB, (pixel / 255 - mean) / std",
    "output_layout": "logits: float32 batch×num_classes×height×width; class = argmax over axis 1",
}


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]!r} already exists; pass overwrite=true to replace it or choose "
            "another output"
        )


def onnx_metadata(hparams: Any) -> dict[str, str]:
    """What the ONNX file carries besides the weights: ``META_KEYS`` as JSON, and the layouts."""
    return {key: json.dumps(hparams[key]) for key in META_KEYS} | ONNX_LAYOUT


def name_dims(model: Any, names: dict[str, str]) -> None:
    """Rename the exporter's symbolic dims (``s14``) in every shape of the graph of the ONNX IR
    ``model`` (``{"s14": "height"}``; also inside expressions such as ``s14//8``)."""
    import onnx_ir as ir

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    graph = model.graph
    values = [*graph.inputs, *graph.outputs]
    values += [v for node in ir.traversal.RecursiveGraphIterator(graph) for v in node.outputs]
    for value in values:
        if value.shape is None:
            continue
        dims = [
            ir.SymbolicDim(pattern.sub(lambda m: names[m.group(1)], d.value))
            if isinstance(d, ir.SymbolicDim) and d.value is not None
            else d
            for d in value.shape
        ]
        value.shape = ir.Shape(dims)


def export_onnx(
    net: Segmentor,
    path: Path,
    height: int,
    width: int,
    opset: int,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Trace ``net`` to ONNX with dynamic axes ``batch`` / ``height`` / ``width`` and
    ``metadata`` in its ``metadata_props``; → the files written (``path``, and
    ``<path>.data`` only for weights too large to sit inside it)."""
    for name in ("onnx_ir", "onnxscript"):  # their per-pass INFO lines say nothing to a user
        logging.getLogger(name).setLevel(logging.WARNING)
    example = torch.randn(1, 3, height, width)
    dims = {0: torch.export.Dim("batch", max=1024), 2: torch.export.Dim.AUTO}
    dims[3] = torch.export.Dim.AUTO
    program = torch.onnx.export(
        net,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"images": dims},
        verbose=False,
    )
    image_dims = program.model.graph.inputs[0].shape
    names = {str(image_dims[2]): "height", str(image_dims[3]): "width"}
    name_dims(program.model, {old: new for old, new in names.items() if not old.isdigit()})
    program.model.metadata_props.update(metadata or {})
    data = path.with_name(f"{path.name}.data")  # where torch puts weights beyond its threshold
    data.unlink(missing_ok=True)  # (only ever replaced along with path: see _refuse_existing)
    program.save(str(path), external_data=False)
    return [path, data] if data.exists() else [path]


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
    net: Segmentor = instantiate({**meta["model"], "pretrained": None, "init_from": None})
    net.load_state_dict(load_file(str(path)))
    return net.eval(), meta


def export(cfg: DictConfig) -> list[Path]:
    if cfg.format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {cfg.format!r}")
    if cfg.format == "hub":
        return export_hub(
            cfg.ckpt_path, Path(cfg.output).expanduser(), cfg.overwrite, cfg.push_to_hub
        )
    if cfg.push_to_hub:
        raise ValueError(f"push_to_hub={cfg.push_to_hub}: only with format=hub")
    for key in ("height", "width", "opset"):
        positive_int(key, cfg[key])
    module = SegmentationModule.from_checkpoint(cfg.ckpt_path).eval()
    net = module.net
    path = Path(cfg.output).expanduser() / f"{cfg.name}.{cfg.format}"
    data = path.with_name(f"{path.name}.data")  # an ONNX file's weights, for very large models
    written = [path, data] if cfg.format == "onnx" else [path, path.with_suffix(".json")]
    _refuse_existing(written, cfg.overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.format == "safetensors":
        save_safetensors(module, path)
        print(f"wrote {path} and {written[1]}")
        return written
    written = export_onnx(
        net, path, cfg.height, cfg.width, cfg.opset, onnx_metadata(module.hparams)
    )
    print(f"wrote {' and '.join(map(str, written))}")
    if len(written) > 1:
        print(f"{written[1]} holds the weights: keep it beside {path.name}")
    if cfg.check:
        diff = onnx_max_abs_diff(net, path, cfg.height, cfg.width)
        print(f"onnxruntime vs PyTorch at 2×3×{cfg.height}×{cfg.width}: max abs diff {diff:.3g}")
        if not diff <= cfg.tolerance:
            raise ValueError(
                f"the ONNX model differs from PyTorch by {diff:.3g} > tolerance={cfg.tolerance}"
            )
    return written


main = hydra_main("export", export)

if __name__ == "__main__":
    main()
