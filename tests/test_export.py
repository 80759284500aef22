"""cfnet.export: ONNX (checked with onnxruntime) and safetensors weights of a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from cfnet.export import export, load_safetensors
from cfnet.lit import SegmentationModule
from support.cli import run_cli
from support.configs import compose_config
from support.training import make_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), "synthetic")


def _export(ckpt, output, *overrides):
    cfg = compose_config(
        "export", [f"ckpt_path={ckpt}", f"output={output}", "height=64", "width=48", *overrides]
    )
    return export(cfg)


def test_a_lone_onnx_file_runs_anywhere_and_carries_its_metadata(checkpoint, tmp_path):
    """Exported through the CLI, then moved alone to another folder: onnxruntime runs it at
    another batch and size than the one traced (the named axes really are dynamic), its logits
    match PyTorch's, and its metadata_props give back what the checkpoint holds."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "cfnet.export", f"ckpt_path={checkpoint}", "height=64", "width=48",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert "max abs diff" in result.stdout
    assert result.stdout.splitlines()[0] == f"wrote {run_dir / 'model.onnx'}"
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "model.onnx"]  # no .data
    elsewhere = tmp_path / "elsewhere" / "cfnet.onnx"
    elsewhere.parent.mkdir()
    (run_dir / "model.onnx").rename(elsewhere)

    graph = onnx.load(str(elsewhere)).graph
    for value in (graph.input[0], graph.output[0]):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims[0] == "batch" and dims[2:] == ["height", "width"]
    session = onnxruntime.InferenceSession(str(elsewhere), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    hparams = torch.load(checkpoint, weights_only=True)["hyper_parameters"]
    for key in ("class_names", "palette", "mean", "std", "num_classes", "ignore_index"):
        assert json.loads(meta[key]) == hparams[key], key
    assert "(pixel / 255 - mean) / std" in meta["input_layout"]

    net = SegmentationModule.from_checkpoint(checkpoint).net.eval()
    image = torch.randn(3, 3, 40, 72)
    (logits,) = session.run(None, {"image": image.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, net(image).numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow  # a second ONNX export: ~30 s on the 2-core CPU
def test_weights_too_large_for_one_file_go_beside_it_and_both_are_named(
    checkpoint, tmp_path, monkeypatch, capsys
):
    """Beyond protobuf's limit torch writes the weights to <name>.onnx.data: both files are
    named, and they run together (the threshold lowered here to take that branch)."""
    from torch.onnx._internal.exporter import _onnx_program

    monkeypatch.setattr(_onnx_program, "_LARGE_MODEL_THRESHOLD", 0)
    written = _export(checkpoint, tmp_path, "check=false", "height=32", "width=32")
    assert [p.name for p in written] == ["model.onnx", "model.onnx.data"]
    assert (
        f"wrote {tmp_path / 'model.onnx'} and {tmp_path / 'model.onnx.data'}"
        in capsys.readouterr().out
    )
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (logits,) = session.run(None, {"image": np.zeros((1, 3, 32, 40), np.float32)})
    assert logits.shape == (1, 7, 32, 40)
    with pytest.raises(FileExistsError, match="overwrite=true"):  # the pair is never half-replaced
        _export(checkpoint, tmp_path, "check=false", "height=32", "width=32")


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
