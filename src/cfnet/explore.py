"""``python -m cfnet.explore ckpt_path=… [port=8765]``: see where the model looks, in the browser.

Starts a local web app (on 127.0.0.1 unless ``host`` says otherwise; the address is printed) over
the checkpoint's model: pick an image of the checkpoint's dataset (``split``, by index or name) or
upload one; the page shows the image, the predicted classes (with a legend and an overlay slider)
and, for any pixel clicked or hovered, p(c|t) over the image for each head, each mixture component
and their combination, the mixture weights π, the classes the attention mass falls on, and the
pixel's predicted class and probability. An image costs one forward pass when it is opened; clicks
are answered from what the server holds (``cfnet.explorer``). A model without an ACF module (FCN,
``model.use_acf=false``) shows its prediction and says that it has no co-occurrence map.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from cfnet.analysis.cooccurrence import acf_shape, no_map_reason
from cfnet.cli.entry_point import hydra_main
from cfnet.cli.model_loading import load_model
from cfnet.cli.validate import check_explore_config
from cfnet.data.dataset import SegmentationDataset
from cfnet.explorer.app import address, create_app, listen, serve
from cfnet.explorer.session import ModelCard
from cfnet.explorer.state import Explorer, Limits
from cfnet.lit import SegmentationModule


def split_images(cfg: DictConfig) -> tuple[SegmentationDataset | None, str | None]:
    """The raw samples of ``cfg.split``, or (None, why) when they cannot be read here (a dataset
    whose files are elsewhere): the page then opens uploads only, and says so."""
    try:
        return instantiate(cfg.dataset).build_dataset(cfg.split, transform=None), None
    except (FileNotFoundError, ValueError) as err:
        return None, str(err)


def describe(module: SegmentationModule) -> str:
    """The model in a few words for the page's title line."""
    model = module.hparams.model
    name = str(model["_target_"]).rpartition(".")[2]
    heads, k = acf_shape(module.net)
    return f"{name} ({model['backbone']}" + (f", H={heads} heads × K={k})" if heads else ")")


def build_explorer(cfg: DictConfig, module: SegmentationModule) -> Explorer:
    """The explorer of ``module`` with the settings of ``cfg`` (``conf/explore.yaml``)."""
    hp = module.hparams
    card = ModelCard(
        list(hp.class_names), [list(c) for c in hp.palette], list(hp.mean), list(hp.std),
        hp.ignore_index, no_map_reason(module.net),
    )  # fmt: skip
    limits = Limits(
        cfg.max_size, cfg.max_map_mb, cfg.max_upload_mb, cfg.keep_images, cfg.matrix_images
    )
    dataset, note = split_images(cfg)
    if note is not None:
        print(f"note: no {cfg.split} images to pick from ({note}); uploads only", file=sys.stderr)
    about: dict[str, Any] = {
        "checkpoint": Path(str(cfg.ckpt_path)).name,
        "model": describe(module),
        "dataset": cfg.dataset.name,
        "dataset_note": note,
    }
    return Explorer(module.net, card, limits, dataset, cfg.split, about)


def explore(cfg: DictConfig) -> None:
    check_explore_config(cfg)
    sock = listen(cfg.host, cfg.port)  # a port in use is refused before anything is loaded
    with sock:
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        explorer = build_explorer(cfg, load_model(cfg))
        print(f"cfnet explorer: {address(sock)}  (Ctrl-C stops it)", flush=True)
        serve(create_app(explorer, cfg.host), sock)


main = hydra_main("explore", explore)

if __name__ == "__main__":
    main()
