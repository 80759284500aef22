"""``model.pretrained`` as a timm tag: timm's own hub loader over a Hugging Face cache laid out by
hand in a temporary ``HF_HOME`` (nothing is downloaded: ``HF_HUB_OFFLINE=1`` everywhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

from cfnet.cli.validate import check_train_config
from cfnet.models.backbone import resolve_pretrained
from support.cli import run_cli
from support.configs import TINY_RUN, compose_config
from support.hub import lay_hub_repo

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def lay_hub_weights(hf_home: Path, tag: str, seed: int) -> Path:
    """A classifier state dict for ``tag`` ("arch.tag") where huggingface_hub keeps
    ``timm/<tag>`` (``support.hub``). Random (seeded) fp16 values, so that arrival is
    provable. Returns the file (its blob)."""
    torch.manual_seed(seed)
    model = timm.create_model(tag.split(".")[0])
    state = {k: torch.randn_like(v, dtype=torch.float16) for k, v in model.state_dict().items()}
    data = safetensors.torch.save(state)
    snapshot = lay_hub_repo(hf_home, f"timm/{tag}", {"model.safetensors": data})
    return (snapshot / "model.safetensors").resolve()


# Builds each backbone through cfnet with HF_HOME/HF_HUB_OFFLINE from the environment (read by
# huggingface_hub at import, as in a user's run), then compares every loaded tensor with the file.
LOAD_AND_COMPARE = """
import json, sys
import safetensors.torch, torch
from cfnet.models.backbone import Backbone
report = {}
for name, pretrained, blob in json.loads(sys.argv[1]):
    body = Backbone(name, 8, pretrained).body.state_dict()
    stored = safetensors.torch.load_file(blob)
    report[name] = {
        "loaded": len(body),
        "equal": sum(torch.equal(t, stored[k].float()) for k, t in body.items() if k in stored),
        "missing": [k for k in body if k not in stored and not k.endswith("num_batches_tracked")],
    }
try:  # not in this cache: the model's own error (validation says it earlier, in the CLI)
    Backbone("resnet50s", 8, "imagenet")
except FileNotFoundError as err:
    report["resnet50s"] = str(err)
print(json.dumps(report))
"""


def test_hub_tags_load_from_an_offline_hf_cache(tmp_path):
    hf_home = tmp_path / "hf"
    jobs = [
        ("resnet10t", "imagenet", str(lay_hub_weights(hf_home, "resnet10t.c3_in1k", seed=1))),
        ("resnet18d", "resnet18d.ra2_in1k", str(lay_hub_weights(hf_home, "resnet18d.ra2_in1k", 2))),
    ]
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_COMPARE, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE, "HF_HOME": str(hf_home)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("resnet10t", "resnet18d"):
        # every weight and BN buffer of the feature extractor is the file's (fp16 → fp32 exactly)
        assert report[name]["missing"] == [], name
        assert report[name]["equal"] == report[name]["loaded"] - sum(
            1
            for k in timm.create_model(name, features_only=True).state_dict()
            if k.endswith("num_batches_tracked")
        ), (name, report[name])
    assert "'resnet50s.gluon_in1k' are not in the Hugging Face cache" in report["resnet50s"]


def test_offline_empty_cache_is_one_line_naming_tag_download_and_cache(tmp_path):
    hf_home = tmp_path / "empty_hf"
    result = run_cli(
        "cfnet.train",
        *TINY_RUN,
        "model.pretrained=imagenet",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={**OFFLINE, "HF_HOME": str(hf_home)},
        check=False,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: model.pretrained: ")  # before the trainer or model exist
    assert "'resnet10t.c3_in1k'" in line  # the tag (timm's default for resnet10t)
    assert "HF_HUB_OFFLINE=1" in line
    assert "hf download timm/resnet10t.c3_in1k" in line  # what to download
    assert str(hf_home / "hub") in line  # where it goes
    assert "model.pretrained=/path/to/weights.safetensors" in line  # the local-file way


def test_pretrained_values_resolve_to_timm_tags_or_files(tmp_path):
    # the authors' backbones: timm has exactly one tag each, GluonCV's v1s weights
    assert resolve_pretrained("imagenet", "resnet50s") == "resnet50s.gluon_in1k"
    assert resolve_pretrained("imagenet", "resnet101s") == "resnet101s.gluon_in1k"
    assert resolve_pretrained("gluon_in1k", "resnet101s") == "resnet101s.gluon_in1k"
    assert resolve_pretrained("resnet50d.a1_in1k", "resnet50d") == "resnet50d.a1_in1k"
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    assert resolve_pretrained(str(weights), "resnet50d") == weights
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        resolve_pretrained(str(tmp_path / "missing.pth"), "resnet50d")
    with pytest.raises(ValueError, match="a tag of 'resnet101s', set backbone=resnet101s too"):
        resolve_pretrained("resnet101s.gluon_in1k", "resnet50s")
    with pytest.raises(ValueError, match=r"timm's tags of 'resnet50s': resnet50s\.gluon_in1k"):
        resolve_pretrained("in22k", "resnet50s")


def test_config_validation_names_a_tag_timm_does_not_know():
    cfg = compose_config("train", ["model.backbone=resnet18d", "model.pretrained=resnet18d.nope"])
    with pytest.raises(ValueError, match=r"^model\.pretrained='resnet18d\.nope' is neither"):
        check_train_config(cfg)
