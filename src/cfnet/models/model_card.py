"""The model card (README.md) of a saved segmentor: ``CARD_TEMPLATE``, filled by ``card_sections``.

``huggingface_hub.ModelCard.from_template`` renders it (the ``PyTorchModelHubMixin``'s
``generate_model_card``, ``cfnet.models.hub.HubMixin``), with the YAML header the Hub reads
(``library_name: cfnet``, ``pipeline_tag: image-segmentation``, tags). The card says what the
model is (backbone, K, H, output stride), the dataset and its classes, the training command,
the run's scores (from its ``metrics/*.json``), the cfnet version and commit that wrote it, and
a snippet that loads it and segments a picture, which runs as written
(``tests/models/test_hub.py``).
"""

from __future__ import annotations

import json
from typing import Any

from cfnet import __version__

PAPER_URL = (
    "https://openaccess.thecvf.com/content_CVPR_2019/html/"
    "Zhang_Co-Occurrent_Features_in_Semantic_Segmentation_CVPR_2019_paper.html"
)
PAPER = "Zhang et al., *Co-occurrent Features in Semantic Segmentation*, CVPR 2019"

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

{{ architecture }}

## Use

```python
{{ usage }}
```

{{ loading }}

## Classes

{{ classes }}

## Training

{{ training }}

## Scores

{{ scores }}

## Provenance

{{ provenance }}
"""

# The picture the usage snippet segments (any RGB image; the test writes one there).
EXAMPLE_PICTURE = "example.jpg"


def _architecture(model_class: str, args: dict[str, Any], num_classes: int) -> str:
    """What the model is, as a two-column table."""
    if model_class == "CFNet":
        parts = ["the ACF module"] if args["use_acf"] else []
        parts += ["global pooling"] if args["use_gp"] else []
        parts += ["EncNet's Context Encoding"] if args["use_enc"] else []
        what = "CFNet: a dilated ResNet, then an FCN head" + (
            f" with {' and '.join(parts)}" if parts else ""
        )
        acf = (
            f"H = {args['heads']} heads, K = {args['k']} mixture components, Φ = {args['phi']}"
            if args["use_acf"]
            else "off (`use_acf=false`)"
        )
    else:
        what, acf = "FCN: the paper's baseline, a dilated ResNet, then an FCN head", "none"
    aux = f"on Res-4, {args['aux_channels']} channels" if args["aux"] else "none"
    stride = args["output_stride"]
    rows = [
        ("model", what),
        ("backbone", f"`{args['backbone']}` (timm), dilated, output stride {stride}"),
        ("ACF module (Aggregated Co-occurrent Features)", acf),
        ("head", f"{args['channels']} channels"),
        ("auxiliary head", f"{aux} (a training loss; `forward` does not run it)"),
        ("output", f"logits B × {num_classes} × H × W at the input's size; class = argmax"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _classes(info: dict[str, Any]) -> str:
    names, palette = info["class_names"], info["palette"]
    dataset = f"`{info['dataset']}`" if info["dataset"] else "the training data"
    lines = [
        f"{len(names)} classes of {dataset}; pixels labelled {info['ignore_index']} are ignored "
        "in training and scoring. Input: RGB, `(pixel / 255 - mean) / std` with mean "
        f"{info['mean']} and std {info['std']}.",
        "",
        "| id | class | colour |",
        "|---|---|---|",
    ]
    lines += [
        f"| {i} | {name} | `#{r:02x}{g:02x}{b:02x}` |"
        for i, (name, (r, g, b)) in enumerate(zip(names, palette, strict=True))
    ]
    return "\n".join(lines)


def _training(training: Any) -> str:
    if training is None:
        return "Saved from Python (`save_pretrained`): no training run is recorded with it."
    source = f"The weights are those of `{training.checkpoint}`." if training.checkpoint else ""
    if training.command is None:
        return f"The checkpoint carries no record of the run that wrote it. {source}".strip()
    return f"```bash\n{training.command}\n```\n\n{source}".strip()


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _scores(training: Any) -> str:
    scores = training.scores if training is not None else {}
    if not scores:
        return "No scores are recorded with it."
    splits = sorted(scores, key=lambda s: ({"val": 0, "test": 1}.get(s, 2), s))
    groups = sorted({k for s in splits for k in scores[s] if k.startswith("mIoU_")})
    head = ["split", "protocol", "pixAcc (%)", "mIoU (%)", *(f"{g} (%)" for g in groups)]
    lines = [
        "From the training run's `metrics/<split>.json` (cfnet.train writes `val` after its "
        "last validation and `test` for its best checkpoint).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for split in splits:
        record = scores[split]
        protocol = record.get("protocol")
        if isinstance(protocol, dict):
            protocol = protocol.get("name")
        cells = [split, f"{protocol or 'whole image'}", _percent(record.get("pixAcc"))]
        cells += [_percent(record.get("mIoU")), *(_percent(record.get(g)) for g in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def usage(location: str) -> str:
    """The snippet that loads the model from ``location`` and segments a picture."""
    where, picture = json.dumps(location), json.dumps(EXAMPLE_PICTURE)
    return f"""import numpy as np
import torch
from PIL import Image

import cfnet

model = cfnet.from_pretrained({where})  # in eval mode, on the CPU
info = model.dataset_info  # class names, palette, normalisation
image = np.asarray(Image.open({picture}).convert("RGB"), dtype=np.float32) / 255
x = torch.from_numpy((image - info.mean) / info.std).permute(2, 0, 1)[None].float()
with torch.no_grad():
    classes = model(x).argmax(1)[0]  # H×W class ids
print(sorted({{info.class_names[i] for i in classes.unique().tolist()}}))"""


def _loading(location: str) -> str:
    return (
        "The command-line tools take it too: `python -m cfnet.predict "
        f"ckpt_path={location} input=<picture or folder> output=<folder>`, `python -m "
        f"cfnet.evaluate ckpt_path={location}`, and `model.init_from={location}` to fine-tune "
        "from it. Offline (a cluster node without network): run `hf download <org/name>` where "
        "there is network, with `HF_HOME` on a shared filesystem; on the node, set the same "
        "`HF_HOME` and `HF_HUB_OFFLINE=1`, and the repo id loads from that cache."
    )


def card_sections(
    model_class: str,
    config: dict[str, Any],
    training: Any,
    location: str,
    commit: str | None,
) -> dict[str, str]:
    """The template's sections for a model of ``model_class`` saved with ``config`` (its
    config.json), trained as ``training`` says (a ``TrainingRecord`` or None), loaded from
    ``location`` (a repo id or a directory); ``commit``: cfnet's (``code_commit``)."""
    args = config["model"]
    num_classes = len(config["class_names"])
    acf = model_class == "CFNet" and args["use_acf"]
    shape = f", H={args['heads']}, K={args['k']}" if acf else ""
    dataset = config["dataset"] or "its own data"
    written = f"cfnet {__version__}" + (
        f", commit {commit}" if commit else " (no commit: not run from a git checkout)"
    )
    return {
        "title": f"{model_class} ({args['backbone']}{shape}) on {dataset}",
        "summary": (
            f"A semantic segmentation model saved by cfnet, an implementation of CFNet "
            f"([{PAPER}]({PAPER_URL})): it labels every pixel of a picture with one of "
            f"{num_classes} classes."
        ),
        "architecture": _architecture(model_class, args, num_classes),
        "usage": usage(location),
        "loading": _loading(location),
        "classes": _classes(config),
        "training": _training(training),
        "scores": _scores(training),
        "provenance": f"Written by {written}. Paper: [{PAPER}]({PAPER_URL}).",
    }
