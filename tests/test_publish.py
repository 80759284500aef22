"""A checkpoint published the Hub's way and used again, through the entry points:
``cfnet.export format=hub`` writes the directory and its card (the run's command and scores),
``cfnet.evaluate`` and ``cfnet.predict`` take the directory and, offline, the repo id from a Hub
cache laid out by hand, scoring and predicting exactly as from the checkpoint; ``push_to_hub``
checked up to the ``HfApi`` calls (``support.hub.FakeHfApi``: nothing is sent).
(The plain model's saving and loading: ``tests/models/test_hub.py``.)"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import httpx
import huggingface_hub
import numpy as np
import pytest
import torch
from PIL import Image

import cfnet
import cfnet.cli.publish
from cfnet.cli.model_loading import load_model
from cfnet.export import export
from cfnet.models.hub import SAVED_FILES
from cfnet.utils.run_record import RunConfigCheckpoint
from support.cli import read_json, run_cli, run_cli_batch
from support.configs import FP32, TINY_DATA, TINY_NET, compose_config
from support.hub import FakeHfApi, lay_hub_repo
from support.references import plain_model
from support.training import make_checkpoint

# The run make_checkpoint's model stands for, as its record tells it (the card's command).
OVERRIDES = ["dataset=synthetic", *TINY_NET, "model.aux=false", *TINY_DATA]
SCORES = {  # what the run's metrics/<split>.json say (made up: the card must show these)
    "val": {"pixAcc": 0.9125, "mIoU": 0.4375, "mIoU_ambiguous": 0.25},
    "test": {"pixAcc": 0.875, "mIoU": 0.5, "mIoU_ambiguous": None},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run dir as cfnet.train leaves it, built in code: ``checkpoints/last.ckpt`` (a tiny model
    whose classes follow the image) carrying the run's record, and ``metrics/{val,test}.json``."""
    run_dir = tmp_path_factory.mktemp("run")
    checkpoint = torch.load(make_checkpoint(run_dir, "synthetic", varied=True), weights_only=True)
    record = RunConfigCheckpoint(compose_config("train", OVERRIDES), OVERRIDES)
    record.on_save_checkpoint(SimpleNamespace(default_root_dir=str(run_dir)), None, checkpoint)
    (run_dir / "checkpoints").mkdir()
    torch.save(checkpoint, run_dir / "checkpoints" / "last.ckpt")
    (run_dir / "metrics").mkdir()
    for split, scores in SCORES.items():
        (run_dir / "metrics" / f"{split}.json").write_text(json.dumps(scores))
    return run_dir


@pytest.fixture(scope="module")
def published(run, tmp_path_factory) -> Path:
    """``cfnet.export format=hub`` of the run's checkpoint, as a user runs it."""
    output = tmp_path_factory.mktemp("published") / "cfnet-tiny"
    result = run_cli(
        "cfnet.export", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "format=hub",
        f"output={output}",
    )  # fmt: skip
    assert result.stdout.splitlines()[-1] == f"wrote {output}: {', '.join(SAVED_FILES)}"
    return output


def test_export_writes_the_directory_whose_card_tells_the_run(run, published):
    assert sorted(p.name for p in published.iterdir()) == sorted(SAVED_FILES)
    card = (published / "README.md").read_text()
    command = shlex.join(["python", "-m", "cfnet.train", *OVERRIDES])
    assert f"```bash\n{command}\n```\n\nThe weights are those of `last.ckpt`." in card
    assert "| val | whole image | 91.25 | 43.75 | 25.00 |" in card
    assert "| test | whole image | 87.50 | 50.00 | n/a |" in card
    assert "7 classes of `synthetic`" in card and "| 6 | lamppost | `#c83cc8` |" in card
    assert "# CFNet (resnet10t, H=4, K=2) on synthetic" in card
    config = json.loads((published / "config.json").read_text())
    assert config["dataset"] == "synthetic" and config["model"]["pretrained"] is None

    # the logits of the checkpoint's model read by torch alone, bit for bit
    reference, _ = plain_model(run / "checkpoints" / "last.ckpt")
    images = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(cfnet.from_pretrained(published)(images), reference(images))

    again = run_cli(
        "cfnet.export", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "format=hub",
        f"output={published}", check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"error: {str(published / 'config.json')!r} already exists; pass overwrite=true to "
        "replace it or choose another directory"
    )


def test_evaluate_and_predict_take_the_directory_and_the_offline_repo_id(run, published, tmp_path):
    """The same scores and the same masks as from the checkpoint; the repo id from a Hub cache
    with HF_HUB_OFFLINE=1 (a fresh interpreter: huggingface_hub reads it at import)."""
    ckpt = run / "checkpoints" / "last.ckpt"
    hf_home = tmp_path / "hf"
    lay_hub_repo(hf_home, "org/cfnet-tiny", {n: published / n for n in SAVED_FILES})
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(2):  # two pictures of noise: the model's classes follow the pixels
        pixels = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(pictures / f"{i}.png")
    nameless = tmp_path / "nameless"
    nameless.mkdir()
    for name in SAVED_FILES:
        (nameless / name).write_bytes((published / name).read_bytes())
    config = json.loads((nameless / "config.json").read_text())
    (nameless / "config.json").write_text(json.dumps({**config, "dataset": None}))

    def evaluate(model: Path | str, run_dir: str) -> tuple[str, list[str]]:
        return "cfnet.evaluate", [
            f"ckpt_path={model}",
            *scored,
            f"hydra.run.dir={tmp_path / run_dir}",
        ]

    def predict(model: Path | str, output: str) -> tuple[str, list[str]]:
        return "cfnet.predict", [
            f"ckpt_path={model}",
            f"input={pictures}",
            f"output={tmp_path / output}",
        ]

    scored = [*TINY_DATA, *FP32, "~callbacks.progress_bar"]
    offline = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    results = run_cli_batch([
        evaluate(ckpt, "e1"),
        evaluate(published, "e2"),
        evaluate(nameless, "e3"),
        predict(ckpt, "p1"),
        (*predict("org/cfnet-tiny", "p2"), offline),
    ])  # fmt: skip
    for result in (results[0], results[1], results[3], results[4]):
        assert result.returncode == 0, result.stderr[-3000:]
    by_checkpoint = read_json(tmp_path / "e1" / "metrics" / "val.json")
    assert read_json(tmp_path / "e2" / "metrics" / "val.json") == by_checkpoint
    assert by_checkpoint["labelled_pixels"] == 5 * 64 * 64  # TINY_DATA's 5 val images
    assert (
        f"dataset: synthetic as named by {published / 'config.json'}, with dataset.sizes, "
        "dataset.image_size, dataset.base_size, dataset.crop_size from the command line"
    ) in results[1].stderr
    assert results[2].returncode == 2
    assert (
        results[2]
        .stderr.strip()
        .startswith(
            f"error: {nameless / 'config.json'} names no dataset: pass dataset=<one of ade20k, "
        )
    )
    for name in ("0.png", "1.png"):
        masks = [(tmp_path / p / name).read_bytes() for p in ("p1", "p2")]
        assert masks[0] == masks[1], name
        assert len(np.unique(np.asarray(Image.open(tmp_path / "p1" / name)))) > 1  # not vacuous
    assert "dataset: synthetic as named by config.json of Hub repo 'org/cfnet-tiny'" in (
        results[4].stderr
    )


@pytest.fixture
def hub_api(monkeypatch) -> type[FakeHfApi]:
    """Every ``HfApi`` cfnet and the mixin make is a ``FakeHfApi``; a token is found."""
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(FakeHfApi, "whoami_error", None)
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHfApi)
    monkeypatch.setattr(cfnet.cli.publish, "HfApi", FakeHfApi)
    monkeypatch.setattr(cfnet.cli.publish, "get_token", lambda: "hf_test")
    return FakeHfApi


def _export_hub(run: Path, output: Path, *overrides: str) -> list[Path]:
    ckpt = run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        "export", [f"ckpt_path={ckpt}", "format=hub", f"output={output}", *overrides]
    )
    return export(cfg)


def test_push_to_hub_sends_the_directory_in_one_commit(run, hub_api, tmp_path, capsys):
    written = _export_hub(run, tmp_path / "out", "push_to_hub=org/cfnet-tiny")
    assert written == [tmp_path / "out" / name for name in SAVED_FILES]
    calls = [name for name, _ in hub_api.calls]
    assert calls == ["HfApi", "whoami", "HfApi", "create_repo", "upload_folder"]
    assert hub_api.calls[0][1] == {"token": "hf_test"}  # the token found is the one checked
    assert hub_api.calls[3][1] == {"repo_id": "org/cfnet-tiny", "private": None, "exist_ok": True}
    upload = hub_api.calls[4][1]
    assert upload["repo_id"] == "org/cfnet-tiny" and upload["repo_type"] == "model"
    assert upload["message"] == f"cfnet {cfnet.__version__}: CFNet (resnet10t) on synthetic"
    assert sorted(upload["files"]) == sorted(SAVED_FILES)
    # what was sent is what was written, and its card loads the repo
    for name in SAVED_FILES:
        assert upload["files"][name] == (tmp_path / "out" / name).read_bytes(), name
    assert 'cfnet.from_pretrained("org/cfnet-tiny")' in upload["files"]["README.md"].decode()
    out = capsys.readouterr().out
    assert "pushed to org/cfnet-tiny: https://huggingface.co/org/cfnet-tiny/commit/0123abc" in out


@pytest.mark.parametrize(
    "missing, expected",
    [
        ("token", "push_to_hub=org/x: no Hugging Face token: run `hf auth login` or set HF_TOKEN"),
        ("offline", "push_to_hub=org/x: no network (HF_HUB_OFFLINE=1); export without push_to_hub"),
        ("network", "push_to_hub=org/x: no network: https://huggingface.co cannot be reached "
         "(ConnectError); export without push_to_hub, then upload the directory where there is "
         "one: hf upload org/x <output>"),
        ("repo id", "push_to_hub=org/x/y: not a Hub repo id (expected org/name)"),
    ],
)  # fmt: skip
def test_without_a_token_or_a_network_one_line_says_which_and_nothing_is_written(
    missing, expected, run, hub_api, tmp_path, monkeypatch
):
    if missing == "token":
        monkeypatch.setattr(cfnet.cli.publish, "get_token", lambda: None)
    if missing == "offline":
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    if missing == "network":
        monkeypatch.setattr(FakeHfApi, "whoami_error", httpx.ConnectError("no route to host"))
    repo = "org/x/y" if missing == "repo id" else "org/x"
    with pytest.raises(ValueError) as err:
        _export_hub(run, tmp_path / "out", f"push_to_hub={repo}")
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    assert "upload_folder" not in [name for name, _ in hub_api.calls]


def test_push_to_hub_is_for_format_hub_only(run, tmp_path):
    with pytest.raises(ValueError, match=r"^push_to_hub=org/x: only with format=hub$"):
        export(compose_config("export", [f"ckpt_path={run}", "push_to_hub=org/x"]))


def test_a_directory_of_checkpoints_is_not_taken_for_a_saved_model(run):
    cfg = compose_config("evaluate", [f"ckpt_path={run / 'checkpoints'}"])
    with pytest.raises(ValueError) as err:
        load_model(cfg)
    assert str(err.value) == (
        f"ckpt_path={run / 'checkpoints'}: a directory of checkpoints, not a saved model; pass "
        f"one of them, e.g. ckpt_path={run / 'checkpoints' / 'last.ckpt'}"
    )
