"""cfnet.export: ONNX (checked with onnxruntime) and safetensors weights of a checkpoint."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from cfnet.export import export, load_safetensors
from cfnet.lit import SegmentationModule
from conftest import compose_config
from helpers import make_checkpoint, run_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), "synthetic")


def _export(ckpt, output, *overrides):
    cfg = compose_config(
        "export", [f"ckpt_path={ckpt}", f"output={output}", "height=64", "width=48", *overrides]
    )
    return export(cfg)


def test_onnx_export_through_the_cli_matches_pytorch(checkpoint, tmp_path):
    result = run_cli(
        "cfnet.export", f"ckpt_path={checkpoint}", "height=64", "width=48",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert "max abs diff" in result.stdout
    path = tmp_path / "model.onnx"
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))
    # another batch and size than the one traced: the axes really are dynamic
    net = SegmentationModule.from_checkpoint(checkpoint).net.eval()
    image = torch.randn(3, 3, 40, 72)
    (logits,) = onnxruntime.InferenceSession(str(path)).run(None, {"image": image.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, net(image).numpy(), atol=1e-4, rtol=0)


def test_safetensors_rebuilds_the_same_model_without_the_checkpoint(checkpoint, tmp_path):
    written = _export(checkpoint, tmp_path, "format=safetensors", "name=voc_cfnet")
    assert [p.name for p in written] == ["voc_cfnet.safetensors", "voc_cfnet.json"]
    net, meta = load_safetensors(tmp_path / "voc_cfnet.safetensors")
    assert meta["class_names"][:2] == ["background", "boat"] and len(meta["palette"]) == 7
    reference = SegmentationModule.from_checkpoint(checkpoint).net.eval()
    image = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        assert torch.equal(net(image), reference(image))


def test_existing_outputs_are_kept_unless_overwrite(checkpoint, tmp_path):
    _export(checkpoint, tmp_path, "format=safetensors")
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=true"):
        _export(checkpoint, tmp_path, "format=safetensors")
    _export(checkpoint, tmp_path, "format=safetensors", "overwrite=true")
    assert (tmp_path / "model.safetensors").read_bytes() == before  # same weights, rewritten


def test_bad_format_and_missing_checkpoint_are_named(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        _export(checkpoint, tmp_path, "format=torchscript")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _export(tmp_path / "missing.ckpt", tmp_path)
