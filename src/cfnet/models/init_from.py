"""``model.init_from``: a new model starts from the weights of a trained cfnet model.

The model is a checkpoint of ``cfnet.train`` (``.ckpt``), the weights of ``cfnet.export
format=safetensors`` (``.safetensors``, with its ``.json`` beside it), or a model saved the
Hugging Face Hub's way: a directory of ``save_pretrained`` / ``cfnet.export format=hub``, or a Hub
repo id (``org/name``; offline, from the local Hub cache). Every tensor of the model
whose name and shape match one in the file is loaded. The layers that predict classes (the 1×1
classifiers of the head and the auxiliary head, EncNet's SE classifier) keep their fresh random
initialisation where they do not match, which is what fine-tuning onto other classes needs (the
``size mismatch for ...conv_seg`` of other frameworks). Any other tensor that does not match is an
error, never a silent skip; tensors of the file that the model has no place for (an auxiliary head
the new model leaves out) are listed, not loaded. When fewer than half of the model's tensors are
in the file, it holds another architecture, and the error says which settings differ.

Unlike ``ckpt_path`` (the same run, resumed with its optimizer and step), this starts a new run;
unlike ``model.pretrained`` (an ImageNet backbone), it loads the whole model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cfnet.models.encoding import EncModule
from cfnet.models.heads import Classifier
from cfnet.models.hub import find_pretrained
from cfnet.utils.checkpoint_files import read_checkpoint, read_weights

INIT_SUFFIXES = (".ckpt", ".safetensors")
# Below this share of the model's tensors (classifiers aside) in the file: another architecture.
MIN_SHARE = 0.5
# Model settings that change tensor names or shapes (but num_classes, free to differ): named when
# the file does not fit.
SHAPE_KEYS = (
    "_target_", "backbone", "output_stride", "channels", "heads", "k", "phi", "use_acf",
    "use_gp", "use_enc", "enc_codewords", "aux", "aux_channels",
)  # fmt: skip


@dataclass(frozen=True)
class Source:
    """What ``init_from`` names: the segmentor's tensors, and its config where the file has it."""

    path: Path
    tensors: dict[str, Tensor]
    config: dict[str, Any] | None  # model config (plus class_names), from the file's metadata


@dataclass(frozen=True)
class InitPlan:
    """Which tensors a model takes from the file, which stay fresh, which of the file go unused."""

    source: Source
    loaded: list[str]
    fresh: list[str]
    unused: list[str]


def class_layers(model: nn.Module) -> set[str]:
    """State-dict names of the layers whose outputs are the classes: the last conv of every
    ``Classifier`` and EncNet's SE classifier. Their shapes follow ``num_classes``."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if isinstance(module, Classifier):
            layer = f"{prefix}.{len(module) - 1}"
        elif isinstance(module, EncModule):
            layer = f"{prefix}.se_classifier"
        else:
            continue
        names |= {f"{layer}.weight", f"{layer}.bias"}
    return names


def read_source(path: str | Path) -> Source:
    """The segmentor tensors of a cfnet ``.ckpt``, an exported ``.safetensors``, or a saved
    directory or Hub repo id; every problem with it is one line naming it."""
    text = str(path)
    path = Path(text).expanduser()
    what = f"init_from={text!r}:"
    if not path.is_file() and path.suffix not in INIT_SUFFIXES:  # a saved model's dir or repo
        return _read_saved(text, what)
    if path.suffix not in INIT_SUFFIXES:
        raise ValueError(
            f"{what} a file with suffix {path.suffix!r}; allowed: a checkpoint of cfnet.train "
            "(.ckpt), the weights of cfnet.export format=safetensors (.safetensors), or a "
            "directory or Hub repo id of a saved model (cfnet.export format=hub)"
        )
    if path.suffix == ".safetensors":
        tensors = read_weights(path, "init_from file")
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        config = {**meta["model"], "class_names": meta.get("class_names")} if meta else None
        return Source(path, tensors, config)
    checkpoint = read_checkpoint(path, "init_from file", require=("state_dict",))
    tensors = {
        name.removeprefix("net."): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith("net.")
    }
    hparams = checkpoint.get("hyper_parameters", {})
    config = None
    if isinstance(hparams.get("model"), dict):
        config = {**hparams["model"], "class_names": hparams.get("class_names")}
    return Source(path, tensors, config)


def _read_saved(source: str, what: str) -> Source:
    """The tensors and config of a model saved the Hub's way (``cfnet.models.hub``)."""
    try:
        found = find_pretrained(source)
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"{what} {err}") from err
    tensors = read_weights(found.weights, "init_from file")
    config = found.config
    model = {"_target_": f"cfnet.models.{config['model_class']}", **config["model"]}
    return Source(Path(source), tensors, {**model, "class_names": config["class_names"]})


def _shape(tensor: Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def _differences(source: dict[str, Any] | None, own: dict[str, Any] | None) -> str:
    """The shape-changing settings in which the file's model and this one differ, in words."""
    if source is None or own is None:
        return "the file does not say how its model was built"
    # settings of a part that neither model has do not count (aux_channels without aux, ...)
    part_of = {"aux_channels": "aux", "enc_codewords": "use_enc", "heads": "use_acf"}
    part_of |= {"k": "use_acf", "phi": "use_acf"}
    changed = [
        f"{key} {source.get(key)} → {own.get(key)}"
        for key in SHAPE_KEYS
        if key in own
        and source.get(key) != own.get(key)
        and (key not in part_of or source.get(part_of[key]) or own.get(part_of[key]))
    ]
    return ", ".join(changed) or "no setting differs that cfnet knows of"


def plan_init(model: nn.Module, source: Source, own_config: dict[str, Any] | None) -> InitPlan:
    """Match ``model``'s tensors against the file's by name and shape; refuses in one line when
    a tensor other than a class layer does not match (``own_config``: the model's own settings,
    to name the ones that differ)."""
    mine = model.state_dict()
    classes = class_layers(model)
    matches = {
        name
        for name, tensor in mine.items()
        if name in source.tensors and source.tensors[name].shape == tensor.shape
    }
    fresh = sorted(n for n in mine if n in classes and n not in matches)
    broken = [n for n in mine if n not in classes and n not in matches]
    what = f"init_from={str(source.path)!r}:"
    body = [n for n in mine if n not in classes]
    loaded = [n for n in mine if n in matches]
    if len(set(body) & matches) < MIN_SHARE * len(body):
        raise ValueError(
            f"{what} only {len(set(body) & matches)} of this model's {len(body)} tensors are in "
            "the file with the same name and shape: it holds another architecture or backbone "
            f"({_differences(source.config, own_config)}); build the model as the file's was "
            "built, or start from model.pretrained (an ImageNet backbone)"
        )
    if broken:

        def why(name: str) -> str:
            if name not in source.tensors:
                return f"{name} (not in the file)"
            found = _shape(source.tensors[name])
            return f"{name} ({found} in the file, {_shape(mine[name])} here)"

        shown = ", ".join(why(n) for n in broken[:3]) + (" ..." if len(broken) > 3 else "")
        raise ValueError(
            f"{what} {len(broken)} tensor(s) of this model that are not class layers do not "
            f"match the file: {shown}; only the layers that predict classes may differ "
            f"(they start fresh). Settings that differ: {_differences(source.config, own_config)}"
        )
    unused = sorted(n for n in source.tensors if n not in matches)
    return InitPlan(source, loaded, fresh, unused)


def _counts(names: list[str]) -> str:
    groups: dict[str, int] = {}
    for name in names:
        top = name.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in groups.items())


def _listed(names: list[str], limit: int = 6) -> str:
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def describe(plan: InitPlan) -> str:
    """The short table printed when a model is initialised from a file."""
    config = plan.source.config or {}
    names = config.get("class_names") or []
    origin = (
        f"{str(config.get('_target_', '?')).rsplit('.', 1)[-1]} {config.get('backbone', '?')}, "
        f"{len(names)} classes"
        if config
        else "no model config in the file"
    )
    rows = [
        f"init_from {plan.source.path} ({origin}):",
        f"  loaded  {len(plan.loaded):4d} tensors ({_counts(plan.loaded)})",
        f"  fresh   {len(plan.fresh):4d} tensors{': ' + _listed(plan.fresh) if plan.fresh else ''}",
        f"  unused  {len(plan.unused):4d} tensors of the file"
        + (f": {_listed(plan.unused)}" if plan.unused else ""),
    ]
    return "\n".join(rows)


@torch.no_grad()
def load_init(
    model: nn.Module, path: str | Path, own_config: dict[str, Any] | None = None
) -> InitPlan:
    """Initialise ``model`` from ``path`` (module doc) and print what was loaded."""
    plan = plan_init(model, read_source(path), own_config)
    tensors = plan.source.tensors
    missing, unexpected = model.load_state_dict(
        {name: tensors[name] for name in plan.loaded}, strict=False
    )
    assert sorted(missing) == plan.fresh and not unexpected, (missing, unexpected)
    print(describe(plan), flush=True)
    return plan
