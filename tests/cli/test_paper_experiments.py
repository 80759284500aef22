"""``experiment=paper/*``: every paper recipe composes (as ``python -m cfnet.train ... --cfg job``
does) to the values the paper and the authors' code give, typed here from the sources: the
paper (CVPR 2019) §4.1, §4.5, Tables 2-3; the authors' code (PyTorch-Encoding:
experiments/segmentation/option.py's Context / VOC+SBD LR and epochs, encoding/datasets/base.py's
crops); docs/reproduce.md lists the same."""

from __future__ import annotations

import itertools
import re

import pytest
import yaml
from huggingface_hub import constants as hf_constants
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cfnet.cli.validate import check_train_config
from support.cli import run_cli
from support.configs import CONF_DIR, ROOT

R50 = {"backbone": "resnet50s", "pretrained": "resnet50s.gluon_in1k"}
R101 = {"backbone": "resnet101s", "pretrained": "resnet101s.gluon_in1k"}
CROP480 = {"base_size": 520, "crop_size": 480}
# experiment → dataset, backbone + ImageNet tag, base/crop, LR (per batch 16), epochs, Enc
PAPER: dict[str, dict] = {
    "context_r50": {"dataset": "pascal_context", **R50, **CROP480, "lr": 0.001, "epochs": 80},
    "context_r101": {"dataset": "pascal_context", **R101, **CROP480, "lr": 0.001, "epochs": 80},
    "ade20k_r50": {"dataset": "ade20k", **R50, **CROP480, "lr": 0.004, "epochs": 120},
    "ade20k_r101": {"dataset": "ade20k", **R101, **CROP480, "lr": 0.004, "epochs": 120},
    "cityscapes_r101": {
        "dataset": "cityscapes", **R101, "base_size": 1024, "crop_size": 768,
        "lr": 0.004, "epochs": 180,
    },
    "coco_r101": {"dataset": "coco_voc", **R101, **CROP480, "lr": 0.004, "epochs": 30},
    "voc_from_coco_r101": {  # §4.3: fine-tuned from coco_r101's whole model, §4.1's VOC LR / epochs
        "dataset": "pascal_voc_aug", "backbone": "resnet101s", "pretrained": None, **CROP480,
        "lr": 0.001, "epochs": 50,
    },
    "voc_r101": {"dataset": "pascal_voc_aug", **R101, **CROP480, "lr": 0.001, "epochs": 80},
    "table2_context": {"dataset": "pascal_context", **R50, **CROP480, "lr": 0.001, "epochs": 80},
    "table3_context": {"dataset": "pascal_context", **R50, **CROP480, "lr": 0.001, "epochs": 80},
}  # fmt: skip
# The sweeps' jobs: Table 2's rows (plus +GP alone), Table 3's K × H grid.
SWEEPS = {
    "table2_context": [[f"+experiment/table2={row}"] for row in
                       ("fcn", "gp", "acf", "acf_gp", "acf_gp_enc")],
    "table3_context": [[f"model.k={k}", f"model.heads={h}"] for k, h in
                       itertools.product((1, 2, 4), (1, 2, 4))],
}  # fmt: skip


def _compose(overrides: list[str]) -> DictConfig:
    """As Hydra's main composes it, its Hydra config set (``${hydra:runtime.cwd}`` resolves)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _assert_paper_values(cfg: DictConfig, name: str) -> None:
    want = PAPER[name]
    assert cfg.experiment_name == f"paper_{name}"
    assert cfg.dataset.name == want["dataset"]
    assert (cfg.model.backbone, cfg.model.pretrained) == (want["backbone"], want["pretrained"])
    assert cfg.model.output_stride == 8 and cfg.model.aux  # paper §4.1
    assert (cfg.dataset.base_size, cfg.dataset.crop_size) == (want["base_size"], want["crop_size"])
    assert cfg.dataset.batch_size == 16 and list(cfg.dataset.scale_range) == [0.5, 2.0]
    opt = cfg.optim.optimizer
    assert (opt.lr, opt.momentum, opt.weight_decay) == (want["lr"], 0.9, 1e-4)
    assert cfg.optim.scheduler.power == 0.9
    assert cfg.trainer.max_epochs == want["epochs"]


def test_every_paper_experiment_is_listed_here_and_in_the_guide():
    files = {p.stem for p in (CONF_DIR / "experiment" / "paper").glob("*.yaml")}
    assert files == set(PAPER)
    guide = (ROOT / "docs" / "reproduce.md").read_text()
    for name in PAPER:
        assert f"experiment=paper/{name}" in guide, name


# What a stage needs from the command line to be checked (its own value: see the next tests).
GIVEN = {"voc_from_coco_r101": ["model.init_from=null"]}


@pytest.mark.parametrize("name", sorted(set(PAPER) - set(SWEEPS)))
def test_paper_experiment_composes_to_the_papers_values(name, monkeypatch):
    cfg = _compose([f"experiment=paper/{name}", *GIVEN.get(name, [])])
    _assert_paper_values(cfg, name)
    # CFNet as the paper's best: ACF + GP, H=4, K=2 (Table 3); Enc as in Table 4 (module doc)
    model = cfg.model
    assert (model.use_acf, model.use_gp, model.use_enc, model.heads, model.k) == (
        True, True, True, 4, 2,
    )  # fmt: skip
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # no cache check: tags only
    check_train_config(cfg)  # the tag is one timm knows, the crop fits, ...


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_paper_sweeps_compose_every_job(name, monkeypatch):
    cfg = _compose([f"experiment=paper/{name}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = dict(cfg.hydra.sweeper.params)
    jobs = [[f"{k}={v}" for v in str(vals).split(",")] for k, vals in params.items()]
    assert sorted(map(sorted, itertools.product(*jobs))) == sorted(map(sorted, SWEEPS[name]))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    for job in SWEEPS[name]:
        job_cfg = _compose([f"experiment=paper/{name}", *job])
        _assert_paper_values(job_cfg, name)
        check_train_config(job_cfg)
        if name == "table3_context":  # the cells of Table 3: CFNet (+ACF +GP), Φ atrous rate 4
            assert job_cfg.model.phi == "dilated_ffn" and not job_cfg.model.use_enc
            assert f"model.k={job_cfg.model.k}" in job


def test_the_voc_stages_build_one_model_and_the_second_needs_the_first():
    """Stage 2 (VOC) builds the model of stage 1 (COCO) exactly, so model.init_from loads every
    tensor of stage 1's checkpoint, classifiers included (both have the 21 VOC classes)."""
    coco, voc = (
        _compose([f"experiment=paper/{n}", *GIVEN.get(n, [])]) for n in PAPER if "coco" in n
    )
    assert coco.dataset.num_classes == voc.dataset.num_classes == 21
    assert coco.dataset.class_names == voc.dataset.class_names
    loaded_from = {"pretrained", "init_from"}
    shape = {k: v for k, v in coco.model.items() if k not in loaded_from}
    assert shape == {k: v for k, v in voc.model.items() if k not in loaded_from}
    result = run_cli("cfnet.train", "experiment=paper/voc_from_coco_r101", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: model.init_from is required here: the best-epoch*.ckpt of "
        "experiment=paper/coco_r101; pass model.init_from=<it>"
    )


def test_cli_cfg_job_prints_the_paper_recipe():
    shown = yaml.safe_load(
        run_cli("cfnet.train", "experiment=paper/context_r101", "--cfg", "job").stdout
    )
    assert shown["model"]["pretrained"] == "resnet101s.gluon_in1k"
    assert shown["dataset"]["crop_size"] == 480 and shown["dataset"]["batch_size"] == 16
    assert shown["optim"]["optimizer"]["lr"] == 0.001 and shown["trainer"]["max_epochs"] == 80


def test_paper_configs_cite_a_source_for_every_value():
    """Each value line of a paper/* config carries a comment (its source) or continues a commented
    block; the header names the paper and the authors' code, both public (no local path)."""
    for path in sorted((CONF_DIR / "experiment" / "paper").glob("*.yaml")):
        text = path.read_text()
        assert "Co-occurrent Features in Semantic Segmentation, CVPR 2019" in text, path.name
        assert "github.com/zhanghang1989/PyTorch-Encoding" in text, path.name
        assert not re.search(r"(?<![\w.])/(work|home|tmp|Users)/", text), path.name
        body = text.split("\nexperiment_name:", 1)[1].splitlines()[1:]
        for line in body:
            if (
                line.strip()
                and not line.strip().endswith(":")
                and not line.lstrip().startswith("#")
            ):
                assert "#" in line, (path.name, line)
