"""The LightningModule: it orchestrates (losses, optimiser, poly LR, metrics), the model computes.

The module is built from config (``_recursive_: false``) and keeps the *resolved* model config
in its hyper-parameters, so a checkpoint is self-describing: ``SegmentationModule.from_checkpoint``
rebuilds the exact segmentor with no config at hand (used by evaluate, predict and export).
``SegmentationModule.from_pretrained`` wraps a model saved the Hugging Face Hub's way (a directory
or a repo id, ``cfnet.models.hub``) for evaluation and prediction; it has no training recipe, so
it does not train (fine-tuning from such a model is ``model.init_from``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from cfnet.data.sample import Batch
from cfnet.data.transforms import normalised_black
from cfnet.evaluation.inference import SegmentationInference
from cfnet.evaluation.metrics import SegmentationScores, confusion_matrix
from cfnet.lit.class_weight import AUTO, auto_class_weight, check_class_weight
from cfnet.lit.losses import segmentation_loss
from cfnet.models.segmentor import Segmentor, from_pretrained
from cfnet.utils.checkpoint_files import read_checkpoint
from cfnet.utils.hardware import (
    COMPILE_PAYS_AFTER_IMAGES,
    compile_training,
    describe_device,
    planned_images,
    trainer_on_cpu,
)


def _plain(node: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (diverged, or broken inputs)."""


class SegmentationModule(L.LightningModule):
    """Trains and evaluates a ``Segmentor`` (CFNet, FCN) with the paper's recipe."""

    def __init__(
        self,
        *,
        model: Mapping[str, Any],
        optim: Mapping[str, Any] | None,
        aux_weight: float | None,
        se_weight: float | None,
        num_classes: int,
        class_names: list[str],
        class_groups: Mapping[str, list[int]],
        palette: list[list[int]],
        ignore_index: int,
        mean: list[float],
        std: list[float],
        channels_last: bool,
        compile: bool | str,
        class_weight: str | list[float] | None = None,
        net: Segmentor | None = None,
    ) -> None:
        """The arguments are the ``module`` config's (conf/train.yaml), but ``net``: the segmentor
        of ``model`` already built (``from_pretrained``), instead of a new one. ``optim``,
        ``aux_weight`` and ``se_weight`` are None for a module that only evaluates and
        predicts."""
        super().__init__()
        if compile not in (True, False, "auto"):
            raise ValueError(f"module.compile={compile!r}: allowed: true, false, auto")
        # Runtime switches, not part of the model: kept out of the checkpoint's hyper-parameters.
        self.channels_last, self.compile_net = channels_last, compile
        self._configured = False  # configure_model runs once (Lightning calls it per fit / test)
        self.save_hyperparameters(
            {
                "model": _plain(model),
                "optim": None if optim is None else _plain(optim),
                "aux_weight": aux_weight,
                "se_weight": se_weight,
                "num_classes": num_classes,
                "class_names": list(class_names),
                "class_groups": {k: list(v) for k, v in _plain(class_groups).items()},
                "palette": [list(c) for c in palette],
                "ignore_index": ignore_index,
                "mean": list(mean),
                "std": list(std),
                "class_weight": check_class_weight(class_weight, num_classes),
            }
        )
        # loss.class_weight as a tensor; for auto, counted when fitting starts (on_fit_start)
        given = self.hparams.class_weight
        weights = None if given in (None, AUTO) else torch.tensor(given)
        self.register_buffer("loss_class_weight", weights, persistent=False)
        self.net: Segmentor = net if net is not None else instantiate(self.hparams.model)
        self.confusion = torch.nn.ModuleDict(
            {stage: confusion_matrix(num_classes, ignore_index) for stage in ("val", "test")}
        )
        self.scores: dict[str, SegmentationScores] = {}
        # The evaluation protocol (cfnet.evaluation.inference); None: a plain batched forward, as
        # validation during training. cfnet.evaluate sets it from conf/inference/.
        self.inference: SegmentationInference | None = None

    # ---- model ----------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def configure_model(self) -> None:
        """channels_last weights (NHWC convolutions) and ``torch.compile`` where it pays; then one
        line saying what the run uses (device, precision, compile, loader).

        ``compile``: true | false | auto (``cfnet.utils.hardware.compile_training``: on a GPU, for
        runs long enough to pay back the compile time). Compiled in place (``Module.compile`` and
        the bound ``forward_train``), so parameter names and checkpoints stay the same (no
        ``_orig_mod.`` prefixes).
        """
        if self._configured:
            return
        self._configured = True
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        trainer = self._trainer  # None: used without a Trainer
        compiled, why = self._should_compile(trainer)
        if compiled:
            self.net.compile()  # forward: validation, test, predict
            # training calls forward_train, which Module.compile does not cover
            self.net.forward_train = torch.compile(self.net.forward_train)
        if trainer is not None and trainer.is_global_zero:
            line = self._run_line(trainer, compiled, why)
            if self.inference is not None and self.inference.compiles_windows:
                line += ", windows compiled (inference.compile=true)"
            print(line, flush=True)

    def _should_compile(self, trainer: L.Trainer | None) -> tuple[bool, str]:
        """(compile?, why) for ``module.compile``; ``auto`` decides for training runs only."""
        if self.compile_net != "auto":
            return bool(self.compile_net), f"module.compile={str(self.compile_net).lower()}"
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return False, "module.compile=auto: not training"
        datamodule = trainer.datamodule
        train_set = getattr(datamodule, "datasets", {}).get("train")
        images = planned_images(
            trainer.max_steps,
            trainer.max_epochs,
            getattr(datamodule, "batch_size", 0),
            len(train_set) if train_set is not None else 0,
        )
        on_cpu = trainer_on_cpu(trainer)
        compiled = compile_training("auto", on_cpu, images, bool(trainer.fast_dev_run))
        if on_cpu:
            return compiled, "module.compile=auto: eager on the CPU"
        relation = ">=" if images >= COMPILE_PAYS_AFTER_IMAGES else "<"
        return compiled, (
            f"module.compile=auto: {images:,} training images {relation} "
            f"{COMPILE_PAYS_AFTER_IMAGES:,}" + (", fast_dev_run" if trainer.fast_dev_run else "")
        )

    @staticmethod
    def _run_line(trainer: L.Trainer, compiled: bool, why: str) -> str:
        """One line: which hardware the run uses, and how (``trainer=auto`` picks it)."""
        stage = "training" if trainer.state.fn == TrainerFn.FITTING else "evaluating"
        line = f"cfnet: {stage} on {describe_device(trainer)}, precision {trainer.precision}, "
        line += f"{'compiled' if compiled else 'eager'} ({why})"
        datamodule = trainer.datamodule
        if hasattr(datamodule, "loader_settings"):
            loader = datamodule.loader_settings()
            pinned = ", pinned memory" if loader["pin_memory"] else ""
            line += f", loader {loader['num_workers']} workers/process{pinned}"
        return line

    def _images(self, batch: Batch) -> Tensor:
        images = batch["image"]
        return images.to(memory_format=torch.channels_last) if self.channels_last else images

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        map_location: str = "cpu",
        contents: dict[str, Any] | None = None,
        channels_last: bool = False,
    ) -> SegmentationModule:
        """Rebuild from a checkpoint alone, reading tensors and plain data only (no pickle code).

        ``contents``: the checkpoint as the caller has read it already (not read again; ``path``
        then only names it in errors). The backbone's ``pretrained`` file and the ``init_from``
        model are not needed (their weights are in the checkpoint). ``channels_last``: as
        ``module.channels_last`` (applied by ``configure_model``; predict and evaluate set it, as
        training does); never compiled.
        """
        # weights_only; one-line errors that name the file
        ckpt = read_checkpoint(path) if contents is None else contents
        if not isinstance(ckpt, dict) or not {"hyper_parameters", "state_dict"} <= ckpt.keys():
            raise ValueError(
                f"{str(path)!r} is not a cfnet checkpoint (no hyper_parameters and state_dict)"
            )
        hparams = dict(ckpt["hyper_parameters"])
        hparams["model"] = {**hparams["model"], "pretrained": None, "init_from": None}
        module = cls(**hparams, channels_last=channels_last, compile=False)
        module.load_state_dict(ckpt["state_dict"])
        return module.to(map_location)

    @classmethod
    def from_pretrained(
        cls, source: str | Path, map_location: str = "cpu", channels_last: bool = False
    ) -> SegmentationModule:
        """A module around the model saved in ``source`` (a directory, or a Hub repo id:
        ``cfnet.models.hub``), for evaluation and prediction: the classes, palette and
        normalisation are its config.json's, its weights loaded strictly. ``channels_last``: as
        in ``from_checkpoint``."""
        net = from_pretrained(source, map_location=map_location)
        info = net.dataset_info
        assert info is not None  # (from_pretrained sets it)
        return cls(
            model={"_target_": f"cfnet.models.{type(net).__name__}", **net.model_config()},
            optim=None,
            aux_weight=None,
            se_weight=None,
            num_classes=len(info.class_names),
            class_names=info.class_names,
            class_groups=info.class_groups,
            palette=info.palette,
            ignore_index=info.ignore_index,
            mean=info.mean,
            std=info.std,
            channels_last=channels_last,
            compile=False,
            net=net,
        ).to(map_location)

    def require_classes(self, class_names: list[str], dataset: str, source: str) -> None:
        """The dataset config must describe the classes the model (``source``: its checkpoint,
        directory or repo id) was trained on."""
        trained = self.hparams.class_names
        if trained != class_names:
            raise ValueError(
                f"model {source!r} was trained on {len(trained)} classes "
                f"{trained[:4]}..., but dataset={dataset} has {len(class_names)} classes "
                f"{class_names[:4]}... (pass dataset=<the model's dataset>)"
            )

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        terms = segmentation_loss(
            self.net.forward_train(self._images(batch)),
            batch["mask"],
            aux_weight=self.hparams.aux_weight,
            se_weight=self.hparams.se_weight,
            ignore_index=self.hparams.ignore_index,
            class_weight=self.loss_class_weight,
        )
        self._stop_if_not_finite(terms, batch_idx)
        self.log("train/loss", terms["total"], prog_bar=True)
        self.log_dict({f"train/loss_{k}": v for k, v in terms.items() if k != "total"})
        return terms["total"]

    def on_fit_start(self) -> None:
        """``loss.class_weight=auto``: count the training split once (rank 0, then shared); a
        resumed run has its weights from the checkpoint already (``on_load_checkpoint``)."""
        if self.hparams.class_weight != AUTO or self.loss_class_weight is not None:
            return
        trainer = self.trainer
        weights = None
        if trainer.is_global_zero:
            weights = auto_class_weight(trainer.datamodule, trainer.default_root_dir)
        weights = trainer.strategy.broadcast(weights, src=0)
        self.loss_class_weight = torch.tensor(weights, device=self.device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.loss_class_weight is not None:
            checkpoint["cfnet_class_weight"] = self.loss_class_weight.tolist()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "cfnet_class_weight" in checkpoint:
            self.loss_class_weight = torch.tensor(checkpoint["cfnet_class_weight"])

    def _stop_if_not_finite(self, terms: dict[str, Tensor], batch_idx: int) -> None:
        """Stop before a non-finite loss reaches the weights.

        Raised from ``training_step``, i.e. before backward and the optimiser step: the weights
        stay those of the last good step and no checkpoint is written after it (``best-*.ckpt``
        and ``last.ckpt`` keep their bytes; the preemption callback saves on SIGTERM only). One
        all-reduce of a flag per step makes every DDP process stop together, not just the one
        that saw the NaN.
        """
        values = torch.stack([v.detach().float() for v in terms.values()])
        bad = bool(~torch.isfinite(values).all())
        if not self.trainer.strategy.reduce_boolean_decision(bad, all=False):
            return
        if bad:
            named = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            rank = f" on process {self.global_rank}" if self.trainer.world_size > 1 else ""
        else:
            named, rank = "finite here", " on another process"
        raise NonFiniteLossError(
            f"non-finite training loss{rank} at step {self.global_step} (epoch "
            f"{self.current_epoch}, batch {batch_idx}): {named}; stopped before updating the "
            "weights, the checkpoints already written are left as they were (lower "
            "optim.optimizer.lr, or check the data)"
        )

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD; the heads learn at ``head_lr_mult`` × the backbone LR; poly decay per iteration."""
        optim = self.hparams.optim
        if optim is None:
            raise ValueError(
                "this module was made for evaluation and prediction (from_pretrained) and has no "
                "training recipe; to train from its weights, start a run with "
                "model.init_from=<its directory or repo id>"
            )
        base_lr = optim["optimizer"]["lr"]
        backbone = [p for p in self.net.backbone.parameters() if p.requires_grad]
        heads = [
            p
            for name, p in self.net.named_parameters()
            if not name.startswith("backbone.") and p.requires_grad
        ]
        optimizer = instantiate(optim["optimizer"])(
            [
                {"params": backbone, "lr": base_lr},
                {"params": heads, "lr": base_lr * optim["head_lr_mult"]},
            ]
        )
        scheduler = instantiate(optim["scheduler"])(
            optimizer, total_iters=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ---- evaluation -----------------------------------------------------------------------
    def pad_value(self) -> list[float]:
        """Normalised black in this model's normalisation: what windows are padded with."""
        return normalised_black(self.hparams.mean, self.hparams.std)

    def _eval_step(self, batch: Batch, stage: str) -> None:
        images, masks = self._images(batch), batch["mask"]
        if images.shape[0] == 0:  # every sample of the batch was skipped (on_bad_sample=skip)
            return
        if self.inference is None:
            self.confusion[stage].update(self.net(images).argmax(1), masks)
            return
        # The protocol rescales each image by its own size: score each one without its padding.
        for i, (h, w) in enumerate(batch["sizes"]):
            probs = self.inference(self.net, images[i : i + 1, :, :h, :w], self.pad_value())
            self.confusion[stage].update(probs.argmax(1), masks[i : i + 1, :h, :w])

    def _eval_epoch_end(self, stage: str) -> None:
        confusion = self.confusion[stage].compute()  # summed over processes
        self.confusion[stage].reset()
        hp = self.hparams
        scores = SegmentationScores.from_confusion(confusion, hp.class_names, hp.class_groups)
        self.scores[stage] = scores
        # Every process holds the same synced numbers, so sync_dist only averages equal values.
        self.log_dict({f"{stage}/{k}": v for k, v in scores.summary().items()}, sync_dist=True)
        per_class = {
            f"{stage}/IoU/{name}": float("nan") if v is None else v
            for name, v in scores.class_iou.items()
        }
        self.log_dict(per_class, sync_dist=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
