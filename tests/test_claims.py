"""What the paper's method does on the embedded data, at the budget of ``make train`` (minutes of
CPU training: ``slow``).

1. On *single* scenes (one scene type per image), CFNet beats FCN on the classes only
   co-occurrence can resolve (sea / canal, mast / lamppost) by at least 10 mIoU points, with the
   same backbone, data and steps. On these scenes one average of the features tells a harbour
   from a street, so global pooling alone can do it: the Table 2 sweep
   (``benchmarks/results/claim_synthetic.json``, ``docs/claim.md``) has +GP lifting FCN as much
   as +ACF does. The lead is checked here, and credited to no branch in particular.
2. At initialisation the ACF attention ignores the pairing of *paired* scenes: an ambiguous
   query's mass on its own cue over the other cue is about 1 (``measure_pairing``), the baseline
   against which a trained ratio is read.

What issue 24 asks beyond this (+ACF beating +GP by 15 points on paired scenes, a trained
own / other ratio of at least 3) is not reached at this budget; ``docs/claim.md`` has the figures.

Both models are trained here through ``python -m cfnet.train`` with no argument but the model and
the run dir, i.e. exactly what ``make train`` (and ``model=fcn``) runs, and scored through
``python -m cfnet.evaluate ... dataset.scenes=single split=test``; nothing from earlier runs is
reused. The references are independent of the code under test: the group score is recomputed from
the per-class IoUs, and the pairing is the generator's design (``SYNTHETIC_PAIRINGS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cfnet.analysis.attention import SYNTHETIC_PAIRINGS, measure_pairing
from cfnet.data.synthetic import render_paired_scene
from cfnet.data.transforms import eval_transform
from cfnet.lit import SegmentationModule
from support.cli import read_json, run_cli

pytestmark = pytest.mark.slow

AMBIGUOUS = [3, 4, 5, 6]  # sea, canal, mast, lamppost (conf/dataset/synthetic.yaml class_groups)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The best checkpoints of the quickstart CFNet and FCN, trained once for this module."""
    root = tmp_path_factory.mktemp("quickstart")
    best = {}
    for model in ("cfnet", "fcn"):
        run = root / model
        run_cli("cfnet.train", f"model={model}", "~callbacks.progress_bar", f"hydra.run.dir={run}")
        best[model] = sorted((run / "checkpoints").glob("best-*.ckpt"))[-1]
    return best


def test_cfnet_beats_fcn_on_the_ambiguous_classes_of_single_scenes(
    quickstart: dict[str, Path], tmp_path: Path
) -> None:
    scores = {}
    for model, ckpt in quickstart.items():
        run = tmp_path / model
        run_cli(
            "cfnet.evaluate",
            f"ckpt_path={ckpt}",
            "dataset.scenes=single",
            "split=test",
            "~callbacks.progress_bar",
            f"hydra.run.dir={run}",
        )
        scores[model] = read_json(run / "metrics" / "test.json")
    # the group score is the mean of its classes' IoUs, as the per-class table shows them
    for score in scores.values():
        iou = list(score["class_iou"].values())  # in class-id order
        mean = sum(iou[c] for c in AMBIGUOUS) / len(AMBIGUOUS)
        assert score["mIoU_ambiguous"] == pytest.approx(mean, abs=1e-6)
    lead = scores["cfnet"]["mIoU_ambiguous"] - scores["fcn"]["mIoU_ambiguous"]
    print(
        f"single scenes, test mIoU_ambiguous: CFNet {100 * scores['cfnet']['mIoU_ambiguous']:.2f}, "
        f"FCN {100 * scores['fcn']['mIoU_ambiguous']:.2f} (lead {100 * lead:.2f} points)"
    )
    assert lead >= 0.10


def test_untrained_attention_ignores_the_pairing(quickstart: dict[str, Path]) -> None:
    module = SegmentationModule.from_checkpoint(quickstart["cfnet"]).eval()
    hp = module.hparams
    data = OmegaConf.load(quickstart["cfnet"].parents[1] / ".hydra" / "config.yaml").dataset
    transform = eval_transform(mean=hp.mean, std=hp.std)
    scenes = [
        render_paired_scene(
            data.seed, "test", i, data.image_size, data.min_distance, data.max_ambiguous
        )
        for i in range(60)
    ]
    images = torch.stack([transform(image=image)["image"] for image, _, _ in scenes])
    masks = torch.stack([torch.from_numpy(mask).long() for _, mask, _ in scenes])
    batches = [(images[i : i + 20], masks[i : i + 20]) for i in range(0, len(scenes), 20)]

    torch.manual_seed(0)
    untrained = instantiate({**hp.model, "pretrained": None}).eval()
    ratio = {
        name: measure_pairing(
            net, batches, SYNTHETIC_PAIRINGS, hp.num_classes, hp.ignore_index
        ).summary()["ratio"]
        for name, net in (("trained", module.net), ("untrained", untrained))
    }
    print(
        f"own / other cue attention on paired scenes: trained {ratio['trained']:.2f}, "
        f"untrained {ratio['untrained']:.2f}"
    )
    assert 0.8 < ratio["untrained"] < 1.25
