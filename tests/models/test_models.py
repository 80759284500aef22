"""Segmentors built from conf/model/*.yaml: shapes, architecture, config errors, weights."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import safetensors.torch
import timm
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cfnet.models import FCN, CFNet, Segmentor, SegmentorOutput
from cfnet.models.acf import ACFModule
from cfnet.models.heads import CFNetHead
from support.configs import CONF_DIR, TINY_NET, compose_model

MODEL_CONFIGS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def test_model_configs_exist():
    assert {"cfnet", "fcn"} <= set(MODEL_CONFIGS)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_instantiates_full_size(name):
    """The shipped defaults (ResNet-50-D, OS8): build, run eval forward on an odd-sized image."""
    model = instantiate(compose_model(name, num_classes=7).model).eval()
    assert isinstance(model, Segmentor)
    assert model.backbone.name == "resnet50d" and model.backbone.output_stride == 8
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 37, 29))
    assert logits.shape == (1, 7, 37, 29)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("size", [(33, 47), (64, 64), (17, 90)])
def test_logits_at_input_resolution(name, output_stride, size):
    cfg = compose_model(name, [*TINY_NET, f"model.output_stride={output_stride}"])
    model = instantiate(cfg.model)
    images = torch.randn(2, 3, *size)
    model.eval()
    with torch.no_grad():
        assert model(images).shape == (2, 5, *size)
        res4, res5 = model.backbone(images)
    # Both Res-4 and Res-5 at the output stride (ceil for odd sizes), as the paper's dilated net.
    expected = tuple(-(-s // output_stride) for s in size)
    assert res4.shape[-2:] == expected and res5.shape[-2:] == expected
    model.train()
    out = model.forward_train(images)
    assert isinstance(out, SegmentorOutput)
    assert out.logits.shape == out.aux_logits.shape == (2, 5, *size)
    assert out.se_logits is None


def test_output_stride_8_dilates_res4_by_2_and_res5_by_4():
    model = instantiate(compose_model("cfnet", TINY_NET).model)
    dilations = {
        name.split(".")[0]: conv.dilation[0]
        for name, conv in model.backbone.body.named_modules()
        if isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3) and "." in name
    }
    # the last block of each stage: Res-4 (layer3) dilation 2, Res-5 (layer4) dilation 4
    assert dilations["layer3"] == 2 and dilations["layer4"] == 4
    assert dilations["layer2"] == 1


def test_full_size_cfnet_head_matches_the_authors_architecture():
    """Parameter count of CFNet-R50 (C=21, H=4, K=2, 512 channels) written out by hand."""
    model = instantiate(compose_model("cfnet", num_classes=21).model)
    c, ch, heads, k = 21, 512, 4, 2
    d = ch // heads
    conv5 = 2048 * ch * 9 + 2 * ch  # 3×3 conv (no bias) + BN
    phi = ch * heads * k * d + heads * k * d  # 1×1 conv with bias, C → H·K·d
    psi = ch * heads * d + heads * d  # 1×1 conv with bias, C → H·d_v
    prior = k * (k * d)  # W ∈ R^{K×d_k}, shared by heads
    proj = heads * d * ch + 2 * ch  # 1×1 conv (no bias) + BN
    gp = ch * ch + 2 * ch  # 1×1 conv (no bias) + BN
    classifier = 2 * ch * c + c  # concat [GP, ACF] → 1×1 conv
    head = conv5 + phi + psi + prior + proj + gp + classifier
    assert sum(p.numel() for p in model.head.parameters()) == head
    aux = 1024 * 256 * 9 + 2 * 256 + 256 * c + c
    assert sum(p.numel() for p in model.aux_head.parameters()) == aux
    backbone = sum(p.numel() for p in timm.create_model("resnet50d", num_classes=0).parameters())
    assert sum(p.numel() for p in model.backbone.parameters()) == backbone


def test_table2_switches_build_the_ablation_rows():
    base = [*TINY_NET]
    fcn_like = instantiate(
        compose_model("cfnet", [*base, "model.use_acf=false", "model.use_gp=false"]).model
    )
    fcn = instantiate(compose_model("fcn", base).model)
    # CFNet head with every component off has exactly the FCN head's parameters.
    assert sum(p.numel() for p in fcn_like.head.parameters()) == sum(
        p.numel() for p in fcn.head.parameters()
    )
    acf_only = instantiate(compose_model("cfnet", [*base, "model.use_gp=false"]).model)
    assert acf_only.head.acf is not None and acf_only.head.gp is None
    enc = instantiate(compose_model("cfnet", [*base, "model.use_enc=true"]).model).train()
    out = enc.forward_train(torch.randn(2, 3, 40, 40))
    assert out.se_logits.shape == (2, 5)


def test_k_and_heads_are_top_level_keys_and_reach_the_module():
    model = instantiate(compose_model("cfnet", [*TINY_NET, "model.k=4", "model.heads=2"]).model)
    assert (model.head.acf.k, model.head.acf.heads, model.head.acf.d) == (4, 2, 8)  # 16 / 2


@pytest.mark.parametrize(
    "override, match",
    [
        ("model.k=0", "k=0: must be a positive integer"),
        ("model.heads=0", "heads=0: must be a positive integer"),
        ("model.heads=-1", "heads=-1: must be a positive integer"),
        ("model.heads=3", r"heads=3: channels \(16\) must be divisible by heads"),
        ("model.output_stride=32", "output_stride=32: allowed: 8, 16"),
        ("model.backbone=resnet50x", "backbone='resnet50x': not a timm model; did you mean"),
        ("model.backbone=vit_tiny_patch16_224", "not a timm ResNet"),
        ("model.attention_impl=flash", "attention_impl='flash': allowed: naive, sdpa"),
        ("model.acf_dropout=1.0", r"acf_dropout=1.0: must be a number in \[0, 1\)"),
        ("model.dropout=-0.1", r"dropout=-0.1: must be a number in \[0, 1\)"),
        ("model.aux_channels=0", "aux_channels=0: must be a positive integer"),
        ("model.channels=0", "channels=0: must be a positive integer"),
    ],
)
def test_invalid_config_fails_at_construction_naming_the_key(override, match):
    cfg = compose_model("cfnet", [*TINY_NET, override])
    with pytest.raises(InstantiationException, match=match):
        instantiate(cfg.model)


def test_invalid_num_classes():
    with pytest.raises(InstantiationException, match="num_classes=0: must be a positive integer"):
        instantiate(compose_model("fcn", TINY_NET, num_classes=0).model)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_weights_round_trip_from_a_local_file(tmp_path, suffix):
    reference = timm.create_model("resnet10t")  # a classifier checkpoint, as users have them
    path = tmp_path / f"resnet10t{suffix}"
    if suffix == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        safetensors.torch.save_file(reference.state_dict(), path)
    model = instantiate(compose_model("cfnet", [*TINY_NET, f"model.pretrained={path}"]).model)
    expected = reference.state_dict()
    loaded = model.backbone.body.state_dict()
    assert loaded.keys() <= expected.keys()
    for name, tensor in loaded.items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)
    scratch = instantiate(compose_model("cfnet", TINY_NET).model)
    assert not torch.equal(scratch.backbone.body.conv1[0].weight, loaded["conv1.0.weight"])


def _missing(folder: Path) -> Path:
    return folder / "nope.pth"


def _of_another_architecture(folder: Path) -> Path:
    path = folder / "resnet18d.pth"
    torch.save(timm.create_model("resnet18d").state_dict(), path)
    return path


@pytest.mark.parametrize(
    "weights, match",
    [(_missing, "no such weights file"), (_of_another_architecture, "do not fit timm 'resnet10t'")],
)
def test_a_bad_pretrained_file_is_one_clear_line_naming_it(weights, match, tmp_path):
    path = weights(tmp_path)
    cfg = compose_model("cfnet", [*TINY_NET, f"model.pretrained={path}"])
    with pytest.raises(InstantiationException, match=match) as err:
        instantiate(cfg.model)
    assert str(path) in str(err.value)


def test_pretrained_file_with_unexpected_suffix(tmp_path):
    path = tmp_path / "weights.ckpt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"suffix .*; allowed: \.pth"):
        CFNet(num_classes=2, backbone="resnet10t", pretrained=str(path))


def test_model_is_plain_pytorch_without_lightning_or_hydra():
    code = (
        "import sys, torch\n"
        "from cfnet.models import CFNet\n"
        "m = CFNet(3, backbone='resnet10t', output_stride=16, channels=16, heads=2).eval()\n"
        "assert m(torch.randn(1, 3, 21, 19)).shape == (1, 3, 21, 19)\n"
        "top = {n.split('.')[0] for n in sys.modules}\n"
        "assert not top & {'lightning', 'hydra'}, 'model code imported Lightning or Hydra'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["cfnet", "fcn"])
def test_model_yaml_repeats_the_constructor_defaults(name):
    """conf/model/<name>.yaml and the constructor must not drift: every constructor argument is a
    key of the YAML, with the constructor's default as its value (or an interpolation such as
    num_classes: ${dataset.num_classes}), and the YAML has no other key."""
    yaml = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    target = hydra.utils.get_class(yaml._target_)
    params = inspect.signature(target.__init__).parameters
    arguments = {n: p for n, p in params.items() if n != "self"}
    assert set(yaml) - {"_target_"} == set(arguments)
    for key, parameter in arguments.items():
        if OmegaConf.is_interpolation(yaml, key):
            continue
        assert parameter.default is not inspect.Parameter.empty, f"{key} has no default"
        assert yaml[key] == parameter.default, f"{name}.yaml {key}: {yaml[key]!r} vs default"


def _defaults(cls: type) -> dict[str, object]:
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def test_the_heads_paper_defaults_are_stated_once():
    """CFNet states the head's paper values (H=4, K=2, ...); CFNetHead and ACFModule take every
    argument explicitly, so the values cannot drift apart between the layers. FCN, a model of its
    own, carries CFNet's defaults for the arguments they share (same name = same config key)."""
    assert _defaults(CFNet)["k"] == 2 and _defaults(CFNet)["heads"] == 4
    assert _defaults(CFNetHead) == {} and _defaults(ACFModule) == {}
    cfnet, fcn = _defaults(CFNet), _defaults(FCN)
    shared = sorted(set(fcn) & set(cfnet))
    assert len(shared) >= 5, shared  # backbone, channels, dropout, ...: not vacuous
    assert {k: fcn[k] for k in shared} == {k: cfnet[k] for k in shared}


def test_paper_model_from_one_argument():
    """smp-style: CFNet(num_classes=21) is the paper's CFNet-R50 (H=4, K=2, ACF + GP, aux)."""
    torch.manual_seed(0)
    model = CFNet(num_classes=21)
    assert model.head.acf.heads == 4 and model.head.acf.k == 2 and model.head.gp is not None
    assert model.head.enc is None and model.aux_head is not None
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(36.7e6, rel=0.01)
    assert FCN(num_classes=21).head.classifier[-1].out_channels == 21
