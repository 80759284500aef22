"""The co-occurrence maps the notebooks show are the ones the model computes, and the attention
statistics (mass per key class vs area share) are exact on hand-made inputs."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from cfnet.analysis.attention import (
    SYNTHETIC_PAIRINGS,
    Pairing,
    attention_by_class,
    class_fractions,
    measure,
    measure_pairing,
    query_cells,
)
from cfnet.models.acf import CooccurrenceMaps
from support.configs import TINY_NET, compose_model


def test_class_fractions_are_the_area_share_per_cell_and_ignore_counts_for_nothing():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2, :2] = 1  # top-left cell all class 1
    mask[0, 2:, 2:] = 255  # bottom-right cell ignored
    mask[0, 0, 2] = 2  # one pixel of class 2 in the top-right cell
    frac = class_fractions(mask, (2, 2), num_classes=3, ignore_index=255)
    assert frac.shape == (1, 4, 3)
    expected = torch.tensor([[0, 1, 0], [0.75, 0, 0.25], [1, 0, 0], [0, 0, 0]], dtype=torch.float)
    torch.testing.assert_close(frac[0], expected)


def test_query_cells_are_the_cells_mostly_covered_by_the_classes():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2, :2] = 3
    mask[0, 2, 2] = 4  # a quarter of the bottom-right cell: not a query cell
    cells = query_cells(mask, [3, 4], (2, 2))
    assert cells.tolist() == [[True, False, False, False]]


def _maps(probability: torch.Tensor, key_size, query_size) -> CooccurrenceMaps:
    """B×H×N×M p(c|t) as a one-component mixture."""
    return CooccurrenceMaps(
        probability[:, :, None], torch.ones(*probability.shape[:2], 1), probability,
        key_size, query_size,
    )  # fmt: skip


def test_uniform_attention_has_lift_one_and_focused_attention_takes_all_the_mass():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2, :2] = 3  # query object: top-left query/key cell (2×2 grids)
    mask[0, 2:, 2:] = 1  # cue: bottom-right cell
    uniform = _maps(torch.full((1, 1, 4, 4), 0.25), (2, 2), (2, 2))
    result = attention_by_class(uniform, mask, [3], num_classes=4, ignore_index=255)
    assert result.queries == 1
    summary = result.summary([1])
    assert summary["area_share"] == pytest.approx(0.25)
    assert summary["attention_mass"] == pytest.approx(0.25)
    assert summary["lift"] == pytest.approx(1.0)

    focused = torch.zeros(1, 1, 4, 4)
    focused[..., 3] = 1.0  # every query looks only at the cue's key cell
    result = attention_by_class(_maps(focused, (2, 2), (2, 2)), mask, [3], 4, 255)
    assert result.summary([1])["attention_mass"] == pytest.approx(1.0)
    assert result.summary([1])["lift"] == pytest.approx(4.0)
    assert (result + result).queries == 2  # accumulation over batches
    assert (result + result).summary([1])["lift"] == pytest.approx(4.0)


def test_the_components_and_the_mixture_are_reported_separately():
    mask = torch.zeros(1, 2, 2, dtype=torch.long)
    mask[0, 0, 0] = 3
    mask[0, 1, 1] = 1
    on_cue, off_cue = torch.zeros(4), torch.zeros(4)
    on_cue[3], off_cue[0] = 1, 1
    comps = torch.stack([on_cue, off_cue]).expand(4, 2, 4).permute(1, 0, 2)  # K×N×M
    prior = torch.tensor([[[0.3, 0.7]]])
    probability = torch.einsum("bhk,bhknm->bhnm", prior, comps[None, None])
    maps = CooccurrenceMaps(comps[None, None], prior, probability, (2, 2), (2, 2))
    mass = attention_by_class(maps, mask, [3], 4, 255).mass([1])  # H×(K+1)
    torch.testing.assert_close(mass, torch.tensor([[1.0, 0.0, 0.3]]))


@pytest.fixture(scope="module")
def tiny_cfnet():
    torch.manual_seed(0)
    return instantiate(
        compose_model("cfnet", [*TINY_NET, "model.heads=2", "model.k=2"]).model
    ).eval()


def test_segmentor_cooccurrence_is_what_the_acf_module_aggregates_with(tiny_cfnet):
    """z = p(c|t) ψ with the inspected p reproduces the ACF module's output exactly."""
    images = torch.randn(2, 3, 64, 48)
    maps = tiny_cfnet.cooccurrence(images)
    acf = tiny_cfnet.head.acf
    assert maps.query_size == (8, 6) and maps.key_size == (4, 3)
    assert maps.probability.shape == (2, 2, 48, 12) and maps.components.shape == (2, 2, 2, 48, 12)
    torch.testing.assert_close(maps.probability.sum(-1), torch.ones(2, 2, 48))
    with torch.no_grad():
        x = tiny_cfnet.head.conv(tiny_cfnet.backbone(images)[1])
        _, _, value, _, _ = acf._project(x)
        z = (maps.probability @ value).transpose(-1, -2).reshape(2, -1, 8, 6)
        torch.testing.assert_close(x + acf.norm(acf.proj(z)), acf(x), rtol=1e-4, atol=1e-5)


def test_models_without_acf_refuse_to_be_inspected():
    fcn = instantiate(compose_model("fcn", TINY_NET).model)
    with pytest.raises(ValueError, match="FCN has no ACF module"):
        fcn.cooccurrence(torch.randn(1, 3, 32, 32))
    no_acf = instantiate(compose_model("cfnet", [*TINY_NET, "model.use_acf=false"]).model)
    with pytest.raises(ValueError, match="use_acf=false"):
        no_acf.cooccurrence(torch.randn(1, 3, 32, 32))


def test_an_untrained_model_attends_uniformly_lift_one(tiny_cfnet):
    """The control of the attention notebook: at initialisation p(c|t) is (nearly) uniform."""
    torch.manual_seed(1)
    masks = torch.zeros(2, 64, 64, dtype=torch.long)
    masks[:, 8:24, 8:24], masks[:, 40:56, 40:56] = 3, 1
    result = measure(tiny_cfnet, [(torch.randn(2, 3, 64, 64), masks)], [3], 4, 255)
    assert result.queries == 2 * 4  # 2×2 query cells of 8×8 per image
    assert result.summary([1])["lift"] == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="no batches"):
        measure(tiny_cfnet, [], [3], 4, 255)


def test_pairing_splits_the_mass_into_the_own_and_the_other_object():
    """Two query objects on a 2×3 grid, each paired with a different cue: hand-set attention rows
    give the own / other masses by hand (rows sum to one; the cues are one key cell each)."""
    mask = torch.zeros(1, 2, 3, dtype=torch.long)
    mask[0, 0, 0] = 3  # a sea cell (paired with the boat)
    mask[0, 1, 0] = 4  # a canal cell (paired with the car)
    mask[0, 0, 2] = 1  # boat
    mask[0, 1, 2] = 2  # car
    probability = torch.zeros(1, 1, 6, 6)  # B×H×N×M, cells in row-major order
    probability[0, 0, 0] = torch.tensor([0.1, 0.1, 0.5, 0.1, 0.1, 0.1])  # sea: boat 0.5, car 0.1
    probability[0, 0, 3] = torch.tensor([0.2, 0.1, 0.2, 0.1, 0.1, 0.3])  # canal: car 0.3, boat 0.2
    maps = _maps(probability, (2, 3), (2, 3))

    class Net:
        def cooccurrence(self, images):
            return maps

    pairings = [Pairing((3,), 1, 2), Pairing((4,), 2, 1)]
    result = measure_pairing(Net(), [(None, mask)], pairings, num_classes=5, ignore_index=255)
    summary = result.summary()
    assert summary["queries"] == 2
    assert summary["own"] == pytest.approx((0.5 + 0.3) / 2)
    assert summary["other"] == pytest.approx((0.1 + 0.2) / 2)
    assert summary["ratio"] == pytest.approx(0.8 / 0.3)

    uniform = _maps(torch.full((1, 1, 6, 6), 1 / 6), (2, 3), (2, 3))

    class Uniform:
        def cooccurrence(self, images):
            return uniform

    assert measure_pairing(Uniform(), [(None, mask)], pairings, 5, 255).summary()["ratio"] == 1.0
    with pytest.raises(ValueError, match="no query cells"):
        measure_pairing(Net(), [(None, torch.zeros_like(mask))], pairings, 5, 255)


def test_the_synthetic_pairings_follow_the_generator_labels():
    """Each pairing's query classes are the labels the generator gives an object painted like its
    own cue (cfnet.data.synthetic.PAIRED_LABEL): an independent statement of the design."""
    from cfnet.data.synthetic import PAIRED_LABEL

    for pairing in SYNTHETIC_PAIRINGS:
        assert set(pairing.queries) == {
            PAIRED_LABEL[(kind, pairing.own)] for kind in ("water", "pole")
        }
        assert pairing.other != pairing.own
