"""Saving and loading the plain model the Hugging Face Hub's way (``cfnet.models.hub``): a saved
directory and a repo in a Hub cache laid out by hand (``support.hub``; offline, nothing is
downloaded), the logits bit-identical, every bad input one line, pushing up to the ``HfApi``
calls (a fake records them: no network round trip happens), and the card's snippet run as
written. (The CLI journey, from a checkpoint: ``tests/test_publish.py``.)"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import safetensors.torch
import torch
from huggingface_hub import ModelCard
from PIL import Image

import cfnet
from cfnet.models import FCN, CFNet, DatasetInfo, hub
from cfnet.models.hub import CONFIG_KEYS, SAVED_FILES
from cfnet.models.model_card import EXAMPLE_PICTURE
from cfnet.models.segmentor import MODEL_CLASSES
from support.hub import FakeHfApi, lay_hub_repo

TINY = {"backbone": "resnet10t", "channels": 16, "aux_channels": 8}
INFO = DatasetInfo(
    name="synthetic",
    class_names=["background", "boat", "car"],
    palette=[[0, 0, 0], [230, 120, 40], [90, 70, 210]],
    mean=[0.485, 0.456, 0.406],
    std=[0.229, 0.224, 0.225],
    ignore_index=255,
    class_groups={"vehicles": [1, 2]},
)


def tiny(cls: type = CFNet, **args) -> CFNet | FCN:
    """A tiny model of INFO's 3 classes, random weights (seeded), its dataset_info set."""
    torch.manual_seed(0)
    model = cls(3, **TINY, **({"heads": 2} if cls is CFNet else {}), **args).eval()
    model.dataset_info = INFO
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[CFNet, Path]:
    """A tiny CFNet and the directory it was saved in (never modified by the tests)."""
    model = tiny()
    directory = tmp_path_factory.mktemp("saved") / "cfnet-tiny"
    model.save_pretrained(directory)
    return model, directory


def copy_of(directory: Path, tmp_path: Path) -> Path:
    """A copy of a saved directory, to break."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in SAVED_FILES:
        (copy / name).write_bytes((directory / name).read_bytes())
    return copy


def edit_config(directory: Path, edit) -> Path:
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("cls", [CFNet, FCN])
def test_saved_and_loaded_logits_are_bit_identical(cls, tmp_path):
    """fp32 on the CPU, whichever class the directory holds; the weights file holds exactly the
    model's tensors (read with safetensors alone), and the model comes back in eval mode."""
    model = tiny(cls)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(SAVED_FILES)
    stored = safetensors.torch.load_file(str(tmp_path / "m" / "model.safetensors"))
    own = model.state_dict()
    assert stored.keys() == own.keys()
    assert all(torch.equal(stored[k], own[k]) for k in own)

    loaded = cfnet.from_pretrained(tmp_path / "m")
    assert type(loaded) is cls and not loaded.training
    assert loaded.dataset_info == INFO
    images = torch.randn(2, 3, 45, 61, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert type(cls.from_pretrained(tmp_path / "m")) is cls


def test_the_config_stores_the_constructor_arguments_and_no_weights_to_fetch(tmp_path):
    """Built from a local backbone weights file: config.json says pretrained null (smp's trap:
    encoder_weights="imagenet" downloads again on reload), so loading never looks for that file;
    init_from likewise."""
    weights = tmp_path / "backbone.safetensors"
    backbone = tiny().backbone.body
    safetensors.torch.save_file(backbone.state_dict(), str(weights))
    model = tiny(pretrained=str(weights))
    model.save_pretrained(tmp_path / "m")
    weights.unlink()
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert list(config) == sorted(CONFIG_KEYS)
    assert config["model"]["pretrained"] is None and config["model"]["init_from"] is None
    assert config["model_class"] == "CFNet" and config["cfnet_version"] == cfnet.__version__
    params = inspect.signature(CFNet.__init__).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    assert config["model"] == defaults | {"num_classes": 3, **TINY, "heads": 2}
    assert config["class_names"] == INFO.class_names and config["dataset"] == "synthetic"
    loaded = cfnet.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.backbone.body.conv1[0].weight, backbone.conv1[0].weight)


def test_the_card_is_a_hub_model_card_whose_snippet_runs_as_written(saved, tmp_path, monkeypatch):
    _, directory = saved
    card = ModelCard.load(directory / "README.md")
    assert card.data.library_name == "cfnet"
    assert card.data.pipeline_tag == "image-segmentation"
    assert "openaccess.thecvf.com/content_CVPR_2019" in card.text  # the paper's link
    assert "| backbone | `resnet10t` (timm), dilated, output stride 8 |" in card.text
    assert "H = 2 heads, K = 2 mixture components" in card.text
    assert "| 1 | boat | `#e67828` |" in card.text and "3 classes of `synthetic`" in card.text
    assert f"Written by cfnet {cfnet.__version__}" in card.text
    (snippet,) = re.findall(r"```python\n(.*?)```", card.text, re.S)
    assert f"cfnet.from_pretrained({json.dumps(str(directory))})" in snippet
    monkeypatch.chdir(tmp_path)
    picture = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(picture).save(EXAMPLE_PICTURE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})  # the card's own code
    names = eval(printed.getvalue())  # a printed list of class names
    assert names and set(names) <= set(INFO.class_names)


def test_saving_refuses_to_replace_files_and_needs_the_dataset_info(saved, tmp_path):
    model, directory = saved
    before = (directory / "config.json").read_bytes()
    with pytest.raises(FileExistsError, match=r"config\.json' already exists; pass overwrite=true"):
        model.save_pretrained(directory)
    assert (directory / "config.json").read_bytes() == before
    bare = CFNet(3, **TINY)
    with pytest.raises(ValueError, match="has no dataset_info") as err:
        bare.save_pretrained(tmp_path / "bare")
    one_line(err)
    assert not (tmp_path / "bare").exists()
    again = copy_of(directory, tmp_path)
    (again / "README.md").write_text("an old card")
    model.save_pretrained(again, overwrite=True)
    assert "an old card" not in (again / "README.md").read_text()  # the mixin would keep it


def _other_library(directory: Path) -> None:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (directory / "README.md").write_text("---\nlibrary_name: transformers\n---\n# BERT\n")


BAD_DIRECTORIES = {  # name → (how the saved copy is broken, what the one line says)
    "another library's directory": (
        lambda d: _other_library(d / "bert"),
        r"bert is not a cfnet model: its config.json has no cfnet_version in it \(it holds "
        r"architectures\) \(its README.md says library_name: transformers\)",
    ),
    "no config.json": (
        lambda d: (d / "config.json").unlink(),
        r"copy is not a cfnet model: it holds no config.json",
    ),
    "an unknown key": (
        lambda d: edit_config(d, lambda c: c.update(extra=1)),
        r"config.json: unknown key\(s\) extra: cfnet .* reads exactly cfnet_version, model_class",
    ),
    "a missing key": (
        lambda d: edit_config(d, lambda c: c.pop("palette")),
        r"config.json: missing key\(s\) palette: cfnet",
    ),
    "an unknown model argument": (
        lambda d: edit_config(d, lambda c: c["model"].update(depth=3)),
        r"config.json: model: unknown argument\(s\) depth of CFNet \(its arguments: num_classes",
    ),
    "a missing model argument": (
        lambda d: edit_config(d, lambda c: c["model"].pop("k")),
        r"config.json: model: missing argument\(s\) k of CFNet",
    ),
    "weights to fetch": (
        lambda d: edit_config(d, lambda c: c["model"].update(pretrained="imagenet")),
        r"config.json: model.pretrained='imagenet': expected null \(the weights are in",
    ),
    "a value the model refuses": (
        lambda d: edit_config(d, lambda c: c["model"].update(heads=3)),
        r"config.json: model.heads=3: channels \(16\) must be divisible by heads",
    ),
    "a palette of other classes": (
        lambda d: edit_config(d, lambda c: c.update(palette=[[0, 0, 0]])),
        r"config.json: palette has 1 colours for 3 class_names",
    ),
    "weights of another shape": (
        lambda d: edit_config(d, lambda c: c["model"].update(channels=8)),
        r"model.safetensors does not fit .*config.json \(CFNet resnet10t, 3 classes\): tensors "
        r"\d+ of another shape: head.conv.0.weight \(16×512×3×3 in the file, 8×512×3×3 here\)",
    ),
    "weights with a tensor missing": (
        lambda d: safetensors.torch.save_file(
            {
                k: v
                for k, v in safetensors.torch.load_file(str(d / "model.safetensors")).items()
                if k != "head.classifier.1.bias"
            },
            str(d / "model.safetensors"),
        ),
        r"model.safetensors does not fit .*: tensors 1 missing \(head.classifier.1.bias\)",
    ),
    "no weights": (
        lambda d: (d / "model.safetensors").unlink(),
        r"copy has config.json but no model.safetensors",
    ),
    "a class cfnet does not have": (
        lambda d: edit_config(d, lambda c: c.update(model_class="UNet")),
        r"config.json: model_class='UNet': expected one of CFNet, FCN",
    ),
}


def test_the_classes_a_directory_may_name_are_the_models():
    assert tuple(MODEL_CLASSES) == hub.MODEL_CLASSES


@pytest.mark.parametrize("case", BAD_DIRECTORIES)
def test_a_bad_directory_is_one_line_naming_what_is_wrong(case, saved, tmp_path):
    break_it, expected = BAD_DIRECTORIES[case]
    copy = copy_of(saved[1], tmp_path)
    break_it(copy)
    source = copy / "bert" if case == "another library's directory" else copy
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        cfnet.from_pretrained(source)
    assert re.search(expected, one_line(err)), one_line(err)


def test_what_is_neither_a_directory_nor_a_repo_id_is_one_line(saved, tmp_path):
    with pytest.raises(ValueError, match=r"holds CFNet, not FCN: load it with CFNet") as err:
        FCN.from_pretrained(saved[1])
    one_line(err)
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model.ckpt' is a file: from_pretrained takes a dir"):
        cfnet.from_pretrained(tmp_path / "model.ckpt")
    with pytest.raises(FileNotFoundError, match=r"is neither a directory nor a Hub repo id"):
        cfnet.from_pretrained(tmp_path / "not" / "here")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache in ``HF_HOME=<tmp>/hf``, offline (``HF_HUB_OFFLINE=1`` as
    huggingface_hub read it at import: its constants, set for this test)."""
    hf_home = tmp_path / "hf"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    return hf_home


def test_offline_a_repo_id_loads_from_the_hub_cache_and_a_missing_one_says_how(saved, offline_hub):
    model, directory = saved
    lay_hub_repo(offline_hub, "org/cfnet-tiny", {n: directory / n for n in SAVED_FILES})
    loaded = cfnet.from_pretrained("org/cfnet-tiny")
    images = torch.randn(1, 3, 33, 47, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert loaded.dataset_info == INFO

    with pytest.raises(FileNotFoundError) as err:
        cfnet.from_pretrained("org/elsewhere")
    line = one_line(err)
    assert line.startswith("Hub repo 'org/elsewhere' is not in the local Hub cache ")
    assert str(offline_hub / "hub") in line and "(HF_HUB_OFFLINE=1)" in line
    assert "run `hf download org/elsewhere` where there is network" in line

    (offline_hub / "hub" / "models--org--cfnet-tiny").rename(offline_hub / "elsewhere")
    config_only = {"config.json": directory / "config.json"}
    lay_hub_repo(offline_hub, "org/cfnet-tiny", config_only)
    with pytest.raises(FileNotFoundError) as err:
        cfnet.from_pretrained("org/cfnet-tiny")
    assert one_line(err).startswith("model.safetensors of Hub repo 'org/cfnet-tiny' is not in")


def test_a_repo_that_is_not_a_cfnet_model_is_one_line_naming_its_library(offline_hub):
    timm_config = json.dumps({"architecture": "resnet10t", "num_classes": 1000}).encode()
    card = b"---\nlibrary_name: timm\n---\n# resnet10t\n"
    files = {"config.json": timm_config, "README.md": card, "model.safetensors": b"not read"}
    lay_hub_repo(offline_hub, "timm/resnet10t.c3_in1k", files)
    with pytest.raises(ValueError) as err:
        cfnet.from_pretrained("timm/resnet10t.c3_in1k")
    assert one_line(err) == (
        "Hub repo 'timm/resnet10t.c3_in1k' is not a cfnet model: its config.json has no "
        "cfnet_version in it (it holds architecture, num_classes) (its README.md says "
        "library_name: timm); cfnet loads a directory written by save_pretrained or cfnet.export "
        "format=hub"
    )


def test_push_to_hub_sends_the_three_files_in_one_commit(saved, monkeypatch):
    model, _ = saved
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHfApi)
    url = model.push_to_hub("org/cfnet-tiny", token="hf_test")
    assert url == "https://huggingface.co/org/cfnet-tiny/commit/0123abc"
    (_, api), (_, create), (_, upload) = FakeHfApi.calls
    assert api == {"token": "hf_test"}
    assert create == {"repo_id": "org/cfnet-tiny", "private": None, "exist_ok": True}
    assert upload["repo_id"] == "org/cfnet-tiny" and upload["repo_type"] == "model"
    assert upload["message"] == f"cfnet {cfnet.__version__}: CFNet (resnet10t) on synthetic"
    assert sorted(upload["files"]) == sorted(SAVED_FILES)
    assert upload["create_pr"] is None and upload["revision"] is None
    assert 'cfnet.from_pretrained("org/cfnet-tiny")' in upload["files"]["README.md"].decode()
    config = json.loads(upload["files"]["config.json"])
    assert config == model.hub_config()


def test_save_pretrained_with_push_to_hub_saves_then_pushes(saved, tmp_path, monkeypatch):
    """The mixin's other way to push: ``save_pretrained(dir, push_to_hub=True, repo_id=...)``."""
    model, _ = saved
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHfApi)
    url = model.save_pretrained(tmp_path / "m", push_to_hub=True, repo_id="org/m")
    assert url == "https://huggingface.co/org/m/commit/0123abc"
    upload = FakeHfApi.calls[-1][1]
    assert upload["repo_id"] == "org/m"
    for name in SAVED_FILES:  # what was pushed is what was saved
        assert upload["files"][name] == (tmp_path / "m" / name).read_bytes(), name
