"""The explorer's state: the model, the split it picks images from, the images it has opened, and
the class co-occurrence matrix of the split, computed once on demand.

Every forward pass runs under one lock (two clicks on the page never run the network twice at
once, and the matrix, computed in a thread of its own, takes its turns image by image). The last
``keep_images`` opened images are held: returning to one costs no forward pass.
"""

from __future__ import annotations

import hashlib
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cfnet.analysis.cooccurrence import Sample, acf_shape, inspection_size, measure_cooccurrence
from cfnet.data.dataset import SegmentationDataset
from cfnet.explorer.session import Inspected, ModelCard
from cfnet.explorer.uploads import decode_upload
from cfnet.models.acf import CooccurrenceMaps
from cfnet.models.segmentor import Segmentor


@dataclass(frozen=True)
class Limits:
    """The explorer's settings (``conf/explore.yaml``): sizes and how much it holds."""

    max_size: int  # long side an image is shrunk to (dataset.base_size: as slide resizes)
    max_map_mb: float  # and further, until its co-occurrence maps fit in this
    max_upload_mb: float
    keep_images: int  # opened images held (their maps: up to max_map_mb each)
    matrix_images: int | None  # images of the split the page's matrix covers (None: all)


class Explorer:
    """The model and what the page asks of it; the web layer is ``cfnet.explorer.app``."""

    def __init__(
        self,
        net: Segmentor,
        card: ModelCard,
        limits: Limits,
        dataset: SegmentationDataset | None,
        split: str,
        about: dict[str, Any],
    ) -> None:
        """``dataset``: the raw samples (``transform=None``) of ``split``, or None when they
        cannot be read (``about["dataset_note"]`` says why; uploads still work). ``about``: what
        the page shows of the checkpoint and dataset."""
        self.net, self.card, self.limits = net.eval(), card, limits
        self.dataset, self.split, self.about = dataset, split, about
        self.heads, self.k = acf_shape(net)
        self._model_lock = threading.Lock()  # one forward pass at a time
        self._held_lock = threading.Lock()  # the held images' order
        self._held: OrderedDict[str, Inspected] = OrderedDict()
        self._names: dict[str, int] | None = None
        self._matrix: dict[str, Any] = {"state": "not started"}
        self._matrix_lock = threading.Lock()  # started once, whatever asks at the same time

    # ---- what the page starts from -----------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The model, its classes and colours, the split: what the page is built from."""
        card = self.card
        return {
            **self.about,
            "class_names": card.class_names,
            "palette": card.palette,
            "heads": self.heads,
            "k": self.k,
            "message": card.no_map,
            "split": self.split,
            "images": len(self.dataset) if self.dataset is not None else 0,
            "example_name": self.dataset.sample_name(0) if self.dataset else None,
            "max_size": self.limits.max_size,
            "max_upload_mb": self.limits.max_upload_mb,
        }

    # ---- opening images ----------------------------------------------------------------------
    def size_of(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of height × width is inspected at (``inspection_size``)."""
        return inspection_size(
            height, width, self.limits.max_size, heads=self.heads, k=self.k,
            output_stride=self.net.backbone.output_stride, max_map_mb=self.limits.max_map_mb,
        )  # fmt: skip

    def _open(self, key: str, name: str, image: np.ndarray) -> Inspected:
        if (held := self.held(key)) is not None:
            return held
        with self._model_lock, torch.inference_mode():
            inspected = Inspected.open(
                self.net, self.card, key, name, image, self.size_of(*image.shape[:2])
            )
        with self._held_lock:
            self._held[key] = inspected
            while len(self._held) > self.limits.keep_images:
                self._held.popitem(last=False)
        return inspected

    def held(self, key: str) -> Inspected | None:
        """An opened image still held (None: never opened, or let go)."""
        with self._held_lock:
            inspected = self._held.get(key)
            if inspected is not None:
                self._held.move_to_end(key)
        return inspected

    def _index(self, index: int | None, name: str | None) -> int:
        if self.dataset is None:
            raise ValueError(f"no {self.split} images: {self.about.get('dataset_note')}")
        count = len(self.dataset)
        if name is not None:
            if self._names is None:  # once: the synthetic set renders each sample for its name
                self._names = {self.dataset.sample_name(i): i for i in range(count)}
            if name not in self._names:
                some = ", ".join(list(self._names)[:3])
                raise LookupError(f"no {self.split} image named {name!r} (e.g. {some})")
            return self._names[name]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise ValueError(f"index={index!r}: the {self.split} split has images 0..{count - 1}")
        return index

    def open_sample(self, index: int | None = None, name: str | None = None) -> Inspected:
        """The split's image ``index`` (or the one named ``name``), opened."""
        index = self._index(index, name)
        key = f"{self.split}-{index}"
        if (held := self.held(key)) is not None:
            return held
        image, _, sample_name = self.dataset.read(index)  # type: ignore[union-attr]
        return self._open(key, sample_name, image)

    def open_upload(self, data: bytes, name: str) -> Inspected:
        """An uploaded picture, opened (the same bytes twice: held once)."""
        key = "upload-" + hashlib.sha1(data).hexdigest()[:12]
        if (held := self.held(key)) is not None:
            return held
        limit = int(self.limits.max_upload_mb * 2**20)
        return self._open(key, name, decode_upload(data, name, limit))

    # ---- the class co-occurrence of the split ------------------------------------------------
    def matrix(self) -> dict[str, Any]:
        """The matrix's state; the first call starts computing it in a thread of its own."""
        with self._matrix_lock:
            self._start_matrix()
        return dict(self._matrix)

    def _start_matrix(self) -> None:
        if self._matrix["state"] == "not started":
            if self.card.no_map is not None or self.dataset is None:
                why = self.card.no_map or f"no {self.split} images: {self.about['dataset_note']}"
                self._matrix = {"state": "unavailable", "message": why}
            else:
                total = len(self.dataset)
                if self.limits.matrix_images is not None:
                    total = min(total, self.limits.matrix_images)
                self._matrix = {"state": "computing", "done": 0, "total": total}
                threading.Thread(target=self._compute_matrix, args=(total,), daemon=True).start()

    def _samples(self, total: int) -> Iterator[Sample]:
        for index in range(total):
            image, mask, name = self.dataset.read(index)  # type: ignore[union-attr]
            yield index, name, image, mask

    def _maps(self, tensor: torch.Tensor) -> CooccurrenceMaps:
        """One image's maps under the model's lock: clicks take their turns between images."""
        with self._model_lock, torch.inference_mode():
            return self.net.cooccurrence(tensor)

    def _compute_matrix(self, total: int) -> None:
        card = self.card

        def progress(done: int) -> None:
            self._matrix = {**self._matrix, "done": done}

        try:
            result = measure_cooccurrence(
                self._maps,
                self._samples(total),
                num_classes=card.num_classes, ignore_index=card.ignore_index,
                size_of=self.size_of, mean=card.mean, std=card.std, progress=progress,
            )  # fmt: skip
            self._matrix = {
                "state": "done",
                "split": self.split,
                **result.to_json(card.class_names),
            }
        except Exception as err:  # a bad sample, memory: said on the page, the server goes on
            traceback.print_exc()
            self._matrix = {"state": "failed", "message": f"{type(err).__name__}: {err}"}
