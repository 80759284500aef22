"""The paper's central claims, at the budget of ``make train`` (minutes of CPU training: ``slow``).

1. CFNet beats FCN on the classes only co-occurrence can resolve (sea / canal, mast / lamppost), by
   at least 10 mIoU points, with the same backbone, data and steps (issue: ≥ 10).
2. Its ACF module attends to the distant cue objects: the attention mass of ambiguous query cells
   on boats and cars is more than twice those objects' share of the image, while the same network
   untrained attends uniformly (lift ≈ 1).
3. The class co-occurrence it learned (``cfnet.cooccurrence``) has the designed pairs as the
   strongest lifts of their rows: sea looks at boat, lamppost at car.

Both models are trained here through ``python -m cfnet.train`` with no argument but the model and
the run dir, i.e. exactly what ``make train`` (and ``model=fcn``) runs; nothing from earlier runs is
reused. The references are independent of the code under test: ``metrics/test.json`` is compared
between two runs, and the lift is measured against the cue's area share computed from the masks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cfnet.analysis.attention import measure
from cfnet.data.synthetic import BOAT, CAR, render_scene
from cfnet.data.transforms import eval_transform
from cfnet.lit import SegmentationModule
from support.cli import read_json, run_cli

pytestmark = pytest.mark.slow

AMBIGUOUS = [3, 4, 5, 6]  # sea, canal, mast, lamppost (conf/dataset/synthetic.yaml class_groups)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run dirs of the quickstart CFNet and FCN, trained once for this module."""
    root = tmp_path_factory.mktemp("quickstart")
    runs = {}
    for model in ("cfnet", "fcn"):
        runs[model] = root / model
        run_cli(
            "cfnet.train",
            f"model={model}",
            "~callbacks.progress_bar",
            f"hydra.run.dir={runs[model]}",
        )
    return runs


def test_cfnet_beats_fcn_on_the_ambiguous_classes(quickstart: dict[str, Path]) -> None:
    scores = {m: read_json(d / "metrics" / "test.json") for m, d in quickstart.items()}
    # the group score is the mean of its classes' IoUs, as the per-class table shows them
    for score in scores.values():
        iou = list(score["class_iou"].values())  # in class-id order
        mean = sum(iou[c] for c in AMBIGUOUS) / len(AMBIGUOUS)
        assert score["mIoU_ambiguous"] == pytest.approx(mean, abs=1e-6)
    lead = scores["cfnet"]["mIoU_ambiguous"] - scores["fcn"]["mIoU_ambiguous"]
    print(
        f"test mIoU_ambiguous: CFNet {100 * scores['cfnet']['mIoU_ambiguous']:.2f}, "
        f"FCN {100 * scores['fcn']['mIoU_ambiguous']:.2f} (lead {100 * lead:.2f} points)"
    )
    assert lead >= 0.10


def test_trained_attention_goes_to_the_cue_objects(quickstart: dict[str, Path]) -> None:
    best = sorted((quickstart["cfnet"] / "checkpoints").glob("best-*.ckpt"))[-1]
    module = SegmentationModule.from_checkpoint(best).eval()
    hp = module.hparams
    data = OmegaConf.load(quickstart["cfnet"] / ".hydra" / "config.yaml").dataset
    transform = eval_transform(mean=hp.mean, std=hp.std)
    scenes = [
        render_scene(data.seed, "test", i, data.image_size, data.min_distance, data.max_ambiguous)
        for i in range(60)
    ]
    images = torch.stack([transform(image=image)["image"] for image, _, _ in scenes])
    masks = torch.stack([torch.from_numpy(mask).long() for _, mask, _ in scenes])
    batches = [(images[i : i + 20], masks[i : i + 20]) for i in range(0, len(scenes), 20)]

    torch.manual_seed(0)
    untrained = instantiate({**hp.model, "pretrained": None}).eval()
    lift = {
        name: measure(net, batches, AMBIGUOUS, hp.num_classes, hp.ignore_index).summary(
            [BOAT, CAR]
        )["lift"]
        for name, net in (("trained", module.net), ("untrained", untrained))
    }
    print(f"cue lift: trained {lift['trained']:.2f}×, untrained {lift['untrained']:.2f}×")
    assert 0.8 < lift["untrained"] < 1.25
    assert lift["trained"] > 2.0


def test_the_learned_class_cooccurrence_pairs_sea_with_boat_and_lamppost_with_car(
    quickstart: dict[str, Path], tmp_path: Path
) -> None:
    """3. ``python -m cfnet.cooccurrence`` on the quickstart CFNet: in the rows of sea and of
    lamppost, the strongest lift off the diagonal is on boat and on car, the designed pairs (the
    lift: the share of a class's attention mass on another class over that class's share of the
    image; ``tests/analysis/test_cooccurrence_matrix.py`` checks it against the attention
    measure of claim 2)."""
    best = sorted((quickstart["cfnet"] / "checkpoints").glob("best-*.ckpt"))[-1]
    run_cli("cfnet.cooccurrence", f"ckpt_path={best}", f"hydra.run.dir={tmp_path}")
    report = read_json(tmp_path / "cooccurrence_val.json")
    names, lift = report["class_names"], report["lift"]
    for a, b in (("sea", "boat"), ("lamppost", "car")):
        row = {names[j]: v for j, v in enumerate(lift[names.index(a)]) if v is not None}
        print(f"lift of {a} on: " + ", ".join(f"{n} {v:.2f}×" for n, v in row.items()))
        off_diagonal = {n: v for n, v in row.items() if n != a}
        assert max(off_diagonal, key=off_diagonal.get) == b
        assert names[report["strongest_partner"][names.index(a)]] == b
        assert row[b] > 1.5
