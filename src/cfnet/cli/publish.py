"""``cfnet.export format=hub [push_to_hub=org/name]``: a checkpoint as a saved model directory,
pushed to the Hugging Face Hub on request.

The model saves itself (``cfnet.models.hub``); what it cannot know comes from the checkpoint and
its run, here: what it predicts (``DatasetInfo``: the classes, palette and normalisation of its
hyper-parameters, and the dataset named by its run record), and, for the model card, the training
command and the run's scores (``TrainingRecord``: the run record's overrides, the run dir's
``metrics/*.json``).

Pushing needs a token and a network. Both are checked before the checkpoint is read
(``check_can_push``): when either is missing, one line says which, and nothing is written.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from omegaconf import OmegaConf

from cfnet.evaluation.metrics import read_scores
from cfnet.lit import SegmentationModule
from cfnet.models.hub import SAVED_FILES, DatasetInfo, TrainingRecord
from cfnet.utils.checkpoint_files import read_checkpoint
from cfnet.utils.run_record import RunRecord, run_record


def check_can_push(repo_id: str) -> None:
    """A repo id, a token and a reachable Hub (the token checked by ``whoami``), or one line
    saying which is missing and what to do instead."""
    what = f"push_to_hub={repo_id}:"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"{what} not a Hub repo id (expected org/name)") from err
    upload = (
        f"export without push_to_hub, then upload the directory where there is one: hf upload "
        f"{repo_id} <output>"
    )
    if constants.HF_HUB_OFFLINE:
        raise ValueError(f"{what} no network (HF_HUB_OFFLINE=1); {upload}")
    token = get_token()
    if token is None:
        raise ValueError(
            f"{what} no Hugging Face token: run `hf auth login` or set HF_TOKEN (a token that may "
            "write to the repo)"
        )
    try:
        HfApi(token=token).whoami()
    except HfHubHTTPError as err:  # the Hub answered: 401 for a token it does not know
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{what} the Hub refused the token: {first}") from err
    except Exception as err:  # no answer at all: DNS, connection, proxy, timeout (httpx's own)
        raise ValueError(
            f"{what} no network: {constants.ENDPOINT} cannot be reached "
            f"({type(err).__name__}); {upload}"
        ) from err


def dataset_info(hparams: Any, record: RunRecord | None) -> DatasetInfo:
    """What the checkpoint's model predicts: its hyper-parameters' classes, palette and
    normalisation, and the dataset its run record names (None without a record)."""
    name = OmegaConf.select(record.config, "dataset.name") if record is not None else None
    return DatasetInfo(
        name=name,
        class_names=list(hparams["class_names"]),
        palette=[list(c) for c in hparams["palette"]],
        mean=list(hparams["mean"]),
        std=list(hparams["std"]),
        ignore_index=hparams["ignore_index"],
        class_groups={k: list(v) for k, v in hparams.get("class_groups", {}).items()},
    )


def training_record(ckpt_path: str, record: RunRecord | None) -> TrainingRecord:
    """The card's account of the run: its command (``python -m cfnet.train`` and the run's
    overrides), the scores of the run dir's ``metrics/*.json``, the checkpoint's file name."""
    if record is None:
        return TrainingRecord(None, {}, Path(ckpt_path).name)
    command = shlex.join(["python", "-m", "cfnet.train", *record.overrides])
    metrics = record.run_dir / "metrics" if record.run_dir is not None else None
    files = sorted(metrics.glob("*.json")) if metrics is not None and metrics.is_dir() else []
    return TrainingRecord(command, {p.stem: read_scores(p) for p in files}, Path(ckpt_path).name)


def export_hub(
    ckpt_path: str, output: Path, overwrite: bool, push_to_hub: str | None
) -> list[Path]:
    """config.json, model.safetensors and README.md of the checkpoint's model in ``output``
    (none replaced unless ``overwrite``); pushed to ``push_to_hub`` when given."""
    if push_to_hub:
        check_can_push(push_to_hub)
    checkpoint = read_checkpoint(ckpt_path)
    module = SegmentationModule.from_checkpoint(ckpt_path, contents=checkpoint).eval()
    record = run_record(ckpt_path, checkpoint)
    net = module.net
    net.dataset_info = dataset_info(module.hparams, record)
    card = {"training": training_record(ckpt_path, record)}
    net.save_pretrained(output, repo_id=push_to_hub, model_card_kwargs=card, overwrite=overwrite)
    written = [output / name for name in SAVED_FILES]
    print(f"wrote {output}: {', '.join(SAVED_FILES)}")
    if push_to_hub:
        url = net.push_to_hub(push_to_hub, model_card_kwargs=card)
        print(f"pushed to {push_to_hub}: {url}")
    return written
