"""Pictures: colours and overlays are exact, figures have the panels they promise, bad input is
refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cfnet.analysis import viz
from cfnet.models.acf import ACFModule

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
NAMES = ["background", "boat", "car"]


def test_colorize_overlay_and_palette_png_are_exact(tmp_path):
    mask = np.array([[0, 1], [2, 255]], np.uint8)
    rgb = viz.colorize(mask, PALETTE)
    assert rgb.tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 0, 255], [255, 255, 255]]]
    image = np.full((2, 2, 3), 100, np.uint8)
    assert viz.overlay(image, mask, PALETTE, 0.5)[0, 1].tolist() == [178, 50, 50]
    viz.palette_png(mask, PALETTE).save(tmp_path / "m.png")
    reread = Image.open(tmp_path / "m.png")
    assert reread.mode == "P" and np.array_equal(np.asarray(reread), mask)


def test_segmentation_panels_draw_one_row_per_image_and_a_legend_of_present_classes(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    gt, pred = np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8)
    fig = viz.segmentation_panels(
        [(image, {"ground truth": gt, "CFNet": pred})] * 3, NAMES, PALETTE
    )
    assert len(fig.axes) == 3 * 3
    assert [a.get_title() for a in fig.axes[:3]] == ["image", "ground truth", "CFNet"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["background", "boat"]  # car is absent from every mask
    path = viz.save_figure(fig, tmp_path / "deep" / "panels.png")
    assert Image.open(path).size[0] > 100


def test_segmentation_panels_refuse_rows_with_other_masks():
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="row 1 names masks"):
        viz.segmentation_panels([(image, {"a": mask}), (image, {"b": mask})], NAMES, PALETTE)
    with pytest.raises(ValueError, match="at least one"):
        viz.segmentation_panels([], NAMES, PALETTE)


def test_query_index_maps_image_pixels_to_the_query_grid():
    assert viz.query_index((0, 0), (160, 160), (20, 20)) == 0
    assert viz.query_index((159, 159), (160, 160), (20, 20)) == 399
    assert viz.query_index((8, 17), (160, 160), (20, 20)) == 1 * 20 + 2
    with pytest.raises(ValueError, match=r"query point \(160, 3\) lies outside the 160×160"):
        viz.query_index((160, 3), (160, 160), (20, 20))


def test_cooccurrence_figure_has_a_panel_per_component_and_the_mixture_per_head(tmp_path):
    maps = ACFModule(16, 2, 3, "conv", 0.0, "naive").eval().cooccurrence(torch.randn(1, 16, 8, 8))
    image = np.zeros((64, 64, 3), np.uint8)
    cue = np.zeros((64, 64), bool)
    cue[40:50, 40:50] = True
    fig = viz.cooccurrence_figure(image, maps, (10, 10), contours=cue)
    titles = [a.get_title() for a in fig.axes]
    assert len(titles) == 2 * (1 + 3 + 1)
    assert titles[4] == "head 0: p(c|t)" and titles[1].startswith("head 0, k=0: π=")
    prior = [float(t.split("π=")[1]) for t in titles[1:4]]
    assert sum(prior) == pytest.approx(1.0, abs=0.02)  # π shown with two decimals
    assert len(viz.cooccurrence_figure(image, maps, (10, 10), head=1).axes) == 5
    viz.save_figure(fig, tmp_path / "cooc.png")


def test_training_curves_read_lightning_csv_logs(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/mIoU\n0,0,1.5,\n0,1,1.0,\n0,1,,0.4\n1,3,0.5,0.6\n")
    fig = viz.training_curves({"run": csv}, ["train/loss", "val/mIoU"])
    lines = [ax.get_lines()[0] for ax in fig.axes]
    assert lines[0].get_xdata().tolist() == [0, 1, 3]
    assert lines[1].get_ydata().tolist() == [0.4, 0.6]
    with pytest.raises(ValueError, match="has no 'val/pixAcc' column values"):
        viz.training_curves({"run": csv}, ["val/pixAcc"])


def test_ablation_bars_and_kxh_heatmap_show_missing_jobs_as_gaps(tmp_path):
    bars = viz.ablation_bars([("FCN", {"mIoU": 0.5}), ("CFNet", None)], "mIoU")
    heights = [p.get_height() for p in bars.axes[0].patches]
    assert heights[0] == pytest.approx(50.0) and np.isnan(heights[1])
    heat = viz.kxh_heatmap({(1, 1): 0.7, (1, 2): None}, "mIoU")
    texts = [t.get_text() for t in heat.axes[0].texts]
    assert texts == ["70.0", "—"]


def test_class_iou_bars_group_by_class_with_gaps_for_absent_classes():
    fig = viz.class_iou_bars(
        {"FCN": {"sea": 0.2, "mast": None}, "CFNet": {"sea": 0.9, "mast": 0.7}}
    )
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:1] == [pytest.approx(20.0)] and np.isnan(heights[1])
    assert heights[2:] == [pytest.approx(90.0), pytest.approx(70.0)]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["sea", "mast"]
