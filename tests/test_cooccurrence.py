"""``python -m cfnet.cooccurrence``: the class co-occurrence a model learned, beside its labels'.

Run as a user runs it on a tiny model: the JSON and the PNG it writes, the labels' co-occurrence
against a count over the split's masks done here with Python sets, one line per class on stdout;
and a model without an ACF module refused in one line. (The numbers of the learned lift:
``tests/analysis/test_cooccurrence_matrix.py``; that a trained model's strongest lifts are the
designed pairs: ``tests/test_claims.py``.)
"""

from __future__ import annotations

import math

import pytest
from hydra.utils import instantiate
from PIL import Image

from support.cli import read_json, run_cli
from support.configs import compose_config
from support.training import make_checkpoint

DATA = ["dataset.sizes={train:4,val:6,test:4}", "dataset.image_size=64", "dataset.base_size=64"]


def test_it_writes_both_matrices_as_json_and_a_picture(tmp_path):
    ckpt = make_checkpoint(tmp_path, "synthetic", varied=True)
    out = tmp_path / "out"
    result = run_cli("cfnet.cooccurrence", f"ckpt_path={ckpt}", *DATA, f"output={out}")
    report = read_json(out / "cooccurrence_val.json")
    names = report["class_names"]
    assert report["images"] == 6 and report["split"] == "val" and len(names) == 7
    assert Image.open(out / "cooccurrence_val.png").size[0] > 500
    # the labels' co-occurrence, counted here from the split's masks
    dataset = instantiate(compose_config("cooccurrence", ["ckpt_path=x", *DATA]).dataset)
    present = [set(dataset.build_dataset("val", None).read(i)[1].ravel()) - {255} for i in range(6)]
    for a in range(7):
        holding = [p for p in present if a in p]
        for b in range(7):
            value = report["label_cooccurrence"][a][b]
            if not holding:
                assert value is None
            else:
                assert value == pytest.approx(sum(b in p for p in holding) / len(holding), abs=1e-6)
    # the learned lift: defined where a has query cells and b area; its strongest partner printed
    for a, row in enumerate(report["lift"]):
        finite = [v for v in row if v is not None and not math.isnan(v)]
        assert (report["query_cells"][a] > 0) == bool(finite)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["class", "a", "looks"]
    assert [line.split()[0] for line in lines[1:8]] == names
    assert lines[-1] == f"wrote {out}/cooccurrence_val.json and {out}/cooccurrence_val.png"


def test_a_model_without_acf_is_refused_in_one_line(tmp_path):
    ckpt = make_checkpoint(tmp_path, "synthetic", model=("model=fcn",))
    result = run_cli("cfnet.cooccurrence", f"ckpt_path={ckpt}", f"output={tmp_path}", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: checkpoint '{ckpt}': this model is an FCN (no ACF module), so it has no "
        "co-occurrence map to measure (cfnet.evaluate and cfnet.predict work with it)"
    )
