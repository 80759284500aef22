"""Saving a segmentor as a directory and loading it back, the Hugging Face Hub's way.

``CFNet`` and ``FCN`` inherit ``HubMixin``, a ``huggingface_hub.PyTorchModelHubMixin``, so they
have ``save_pretrained(dir)``, ``from_pretrained(dir_or_repo_id)`` and ``push_to_hub(repo_id)``;
``cfnet.from_pretrained`` (``cfnet.models.segmentor``) returns whichever of the two a directory
holds. A saved directory::

    config.json        the constructor arguments (pretrained and init_from: null), the model
                       class, and what the model predicts (``DatasetInfo``: dataset name, class
                       names, palette, ignore index, mean/std), with the cfnet version (CONFIG_KEYS)
    model.safetensors  the weights (the mixin's own ``_save_pretrained``)
    README.md          the model card (``ModelCard``; ``card_sections``)

What cfnet does beyond the mixin, and why:

* Loading is strict. The mixin's ``_from_pretrained`` loads with ``strict=False`` by default,
  so missing weights pass silently (smp's ``SMPHubMixin`` inherits that); here every tensor of
  the model must be in the file with its shape, and the file may hold no other
  (``load_weights``). config.json must hold exactly the keys cfnet writes (``check_config``) and
  the class's exact constructor arguments: unknown keys are not ignored, missing ones are not
  filled with defaults.
* A saved config never names weights to fetch: ``pretrained`` and ``init_from`` are stored as
  null (smp keeps ``encoder_weights="imagenet"``, so reloading downloads the encoder again, and
  fails offline). The weights are in model.safetensors.
* A repo id is resolved before anything is built (``find_pretrained``): config.json first, checked
  to be cfnet's, then model.safetensors of the same commit; offline (``HF_HUB_OFFLINE=1``) both
  come from the local Hub cache. Every problem -- not a directory nor a repo id, not in the
  cache, another library's model, a config or weights that do not fit -- is one ``ValueError`` /
  ``FileNotFoundError`` line naming the file or repo and what was expected.
* ``save_pretrained`` never replaces a file unless ``overwrite=True`` (the mixin replaces
  config.json and the weights, and keeps an old README.md: a card describing other weights).
* The card says what the model is (backbone, K, H, output stride), what it predicts, how it was
  trained and what it scored (``TrainingRecord``, filled by ``cfnet.export`` from the run's
  record and ``metrics/*.json``), which cfnet wrote it, and how to load it.

A model's config.json never reaches ``hydra.utils.instantiate``: its ``model_class`` picks one of
the two classes by name (a downloaded file must not name code to run).
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import (
    ModelCard,
    ModelCardData,
    PyTorchModelHubMixin,
    constants,
    hf_hub_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.repocard import metadata_load
from huggingface_hub.utils import validate_repo_id
from torch import nn

from cfnet import __version__
from cfnet.models.model_card import CARD_TEMPLATE, PAPER_URL, card_sections
from cfnet.utils.checks import is_int, is_number, keyed
from cfnet.utils.provenance import code_commit

CONFIG_NAME = constants.CONFIG_NAME  # config.json
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # model.safetensors
CARD_NAME = "README.md"
SAVED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
# The classes config.json's model_class may name (cfnet.models.segmentor.MODEL_CLASSES holds them).
MODEL_CLASSES = ("CFNet", "FCN")
# The keys of config.json, all required, no others (check_config).
CONFIG_KEYS = (
    "cfnet_version", "model_class", "model", "dataset", "class_names", "class_groups",
    "palette", "ignore_index", "mean", "std",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What a model predicts and what input it expects, saved beside its weights: the dataset
    it was trained on (its cfnet config name, or None), one name and one RGB colour per class,
    the label of unlabelled pixels, and the normalisation, ``(pixel / 255 - mean) / std``."""

    name: str | None
    class_names: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    ignore_index: int
    class_groups: dict[str, list[int]] = field(default_factory=dict)  # extra mIoU reports

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DatasetInfo:
        """From a checked config.json (``check_config``)."""
        keys = ("class_names", "palette", "mean", "std", "ignore_index", "class_groups")
        return cls(config["dataset"], **{k: config[k] for k in keys})

    def to_config(self) -> dict[str, Any]:
        """Its part of config.json."""
        fields = asdict(self)
        return {"dataset": fields.pop("name"), **fields}


@dataclass(frozen=True)
class TrainingRecord:
    """What the model card tells about the training run: its command, its scores (split →
    the contents of the run's ``metrics/<split>.json``) and the checkpoint the weights are
    from. ``cfnet.export`` reads them from the checkpoint's run record and run dir."""

    command: str | None
    scores: dict[str, dict[str, Any]]
    checkpoint: str | None


@dataclass(frozen=True)
class Pretrained:
    """A saved model found (``find_pretrained``): the directory its files are in (a snapshot of
    the local Hub cache, for a repo id) and its config.json, checked."""

    source: str  # as the user named it: a directory or a repo id
    directory: Path
    config: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS_NAME

    @property
    def config_path(self) -> str:
        """The file itself (in a repo's snapshot of the Hub cache), for messages about it."""
        return str(self.directory / CONFIG_NAME)

    @property
    def config_name(self) -> str:
        """config.json as the user knows it: ``<dir>/config.json``, or that of the Hub repo."""
        if Path(self.source).expanduser() == self.directory:
            return self.config_path
        return f"{CONFIG_NAME} of Hub repo {self.source!r}"

    def describe(self) -> str:
        """``CFNet resnet50d, 21 classes``: the model in a few words, for messages."""
        backbone = self.config["model"].get("backbone", "?")
        classes = len(self.config["class_names"])
        return f"{self.config['model_class']} {backbone}, {classes} classes"


# ---- config.json -----------------------------------------------------------------------------
class NotCfnetError(ValueError):
    """A directory or repo of another library (or none): ``why`` says what gave it away."""

    def __init__(self, where: str, why: str, card_dir: Path | None = None) -> None:
        hint = _library_of(card_dir) if card_dir is not None else ""
        super().__init__(
            f"{where} is not a cfnet model: {why}{hint}; cfnet loads a directory written by "
            "save_pretrained or cfnet.export format=hub"
        )
        self.where, self.why = where, why


def _library_of(directory: Path) -> str:
    """`` (its README.md says library_name: timm)``, when a model card says whose model it is."""
    try:
        metadata = metadata_load(directory / CARD_NAME) or {}
    except (OSError, ValueError):  # no card, or no YAML header: nothing to add
        return ""
    library = metadata.get("library_name")
    return (
        f" (its {CARD_NAME} says library_name: {library})" if library not in (None, "cfnet") else ""
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rgb(colour: Any) -> bool:
    return (
        isinstance(colour, list)
        and len(colour) == 3
        and all(is_int(c) and 0 <= c <= 255 for c in colour)
    )


def _numbers(value: Any, positive: bool = False) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(is_number(v) and (v > 0 or not positive) for v in value)
    )


# config.json's keys: key → (rule, the rule in words)
_RULES: dict[str, tuple[Any, str]] = {
    "cfnet_version": (lambda v: isinstance(v, str), "a version string"),
    "model_class": (lambda v: v in MODEL_CLASSES, f"one of {', '.join(MODEL_CLASSES)}"),
    "model": (lambda v: isinstance(v, dict), "the constructor's arguments, an object"),
    "dataset": (lambda v: v is None or isinstance(v, str), "a dataset config name, or null"),
    "class_names": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(n, str) for n in v),
        "a list of class names",
    ),
    "class_groups": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(ids, list) and all(map(is_int, ids)) for ids in v.values())
        ),
        "an object of group name → class ids",
    ),
    "palette": (lambda v: isinstance(v, list) and all(map(_rgb, v)), "[r, g, b] colours, 0-255"),
    "ignore_index": (is_int, "an integer"),
    "mean": (_numbers, "3 numbers"),
    "std": (lambda v: _numbers(v, positive=True), "3 positive numbers"),
}


def check_config(config: Any, path: str) -> dict[str, Any]:
    """config.json as cfnet writes it, or one line naming the file, the key and what was
    expected. (The model's arguments: ``check_model_args``, then the constructor.)"""
    if not isinstance(config, dict) or "cfnet_version" not in config:
        held = ", ".join(list(config)[:6]) if isinstance(config, dict) else type(config).__name__
        raise NotCfnetError(path, f"no cfnet_version in it (it holds {held or 'nothing'})")
    unknown = [k for k in config if k not in CONFIG_KEYS]
    missing = [k for k in CONFIG_KEYS if k not in config]
    if unknown or missing:
        what = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
        what += [f"missing key(s) {', '.join(missing)}"] if missing else []
        raise ValueError(
            f"{path}: {'; '.join(what)}: cfnet {__version__} reads exactly "
            f"{', '.join(CONFIG_KEYS)} (the file says cfnet_version {config['cfnet_version']!r}); "
            "save the model again with save_pretrained or cfnet.export format=hub"
        )
    for key, (rule, words) in _RULES.items():
        if not rule(config[key]):
            raise ValueError(f"{path}: {key}={_short(config[key])}: expected {words}")
    classes = len(config["class_names"])
    if len(config["palette"]) != classes:
        raise ValueError(
            f"{path}: palette has {len(config['palette'])} colours for {classes} class_names"
        )
    if config["model"].get("num_classes") != classes:
        raise ValueError(
            f"{path}: model.num_classes={config['model'].get('num_classes')!r} but class_names "
            f"has {classes} names"
        )
    return config


def check_model_args(args: dict[str, Any], params: list[str], model_class: str, path: str) -> None:
    """config.json's ``model`` holds exactly the arguments of the class's constructor
    (``params``), and names no weights to fetch."""
    unknown = [k for k in args if k not in params]
    missing = [k for k in params if k not in args]
    if unknown or missing:
        what = [f"unknown argument(s) {', '.join(unknown)}"] if unknown else []
        what += [f"missing argument(s) {', '.join(missing)}"] if missing else []
        raise ValueError(
            f"{path}: model: {'; '.join(what)} of {model_class} (its arguments: "
            f"{', '.join(params)})"
        )
    for key in ("pretrained", "init_from"):
        if args[key] is not None:
            raise ValueError(
                f"{path}: model.{key}={args[key]!r}: expected null (the weights are in "
                f"{WEIGHTS_NAME}; a saved model names no weights to fetch)"
            )


def read_config(path: Path, where: str) -> dict[str, Any]:
    """config.json at ``path``, checked; ``where``: the directory or repo, as messages name it."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotCfnetError(where, f"its {CONFIG_NAME} is not JSON ({err})") from err
    try:
        return check_config(config, str(path))
    except NotCfnetError as err:
        raise NotCfnetError(where, f"its {CONFIG_NAME} has {err.why}", path.parent) from None


# ---- finding a saved model: a directory, or a repo id in the Hub (cache) ----------------------
@dataclass(frozen=True)
class HubOptions:
    """``hf_hub_download``'s options, as ``from_pretrained`` takes them."""

    revision: str | None = None
    cache_dir: str | Path | None = None
    force_download: bool = False
    local_files_only: bool = False
    token: str | bool | None = None


def _not_in_cache(what: str, repo_id: str, hub: HubOptions) -> FileNotFoundError:
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE=1"
    else:
        why = "local_files_only" if hub.local_files_only else "the Hub cannot be reached"
    cache = hub.cache_dir or constants.HF_HUB_CACHE
    return FileNotFoundError(
        f"{what} is not in the local Hub cache {cache} and cannot be "
        f"downloaded ({why}): run `hf download {repo_id}` where there is network, with the same "
        "HF_HOME (or copy that cache here), or pass the path of a directory saved by "
        "save_pretrained / cfnet.export format=hub"
    )


def _download(repo_id: str, filename: str, hub: HubOptions, revision: str | None) -> Path:
    """``hf_hub_download`` of one file of a model's repo, its errors as one line."""
    where = f"Hub repo {repo_id!r}"
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hub.cache_dir,
                force_download=hub.force_download,
                local_files_only=hub.local_files_only,
                token=hub.token,
            )
        )
    except LocalEntryNotFoundError as err:  # offline or unreachable, and not cached
        what = where if filename == CONFIG_NAME else f"{filename} of {where}"
        raise _not_in_cache(what, repo_id, hub) from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"{where} has no revision {revision!r}") from err
    except RepositoryNotFoundError as err:  # (private and gated repos too)
        raise FileNotFoundError(
            f"{where} does not exist, or is private and your token cannot read it (hf auth "
            f"login); nor is there a directory {repo_id!r} here"
        ) from err
    except EntryNotFoundError as err:
        if filename == CONFIG_NAME:
            raise NotCfnetError(where, f"it has no {CONFIG_NAME}") from err
        raise FileNotFoundError(f"{where} has {CONFIG_NAME} but no {filename}") from err
    except HfHubHTTPError as err:
        first = str(err).strip().splitlines()[0]
        raise FileNotFoundError(f"{where}: {filename} cannot be downloaded: {first}") from err


def find_pretrained(source: str | Path, hub: HubOptions | None = None) -> Pretrained:
    """The saved model ``source`` names: a directory, else a Hub repo id (``org/name``),
    downloaded into the local Hub cache or, offline, found there.

    config.json is read and checked first, so that the weights of another library's repo are
    never downloaded (its model card is, to say whose model it is); the weights come from the
    same commit."""
    hub = hub or HubOptions()
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise NotCfnetError(str(path), f"it holds no {CONFIG_NAME}", path)
        config = read_config(path / CONFIG_NAME, str(path))
        if not (path / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"{path} has {CONFIG_NAME} but no {WEIGHTS_NAME}")
        return Pretrained(text, path, config)
    if path.exists():
        raise ValueError(
            f"{text!r} is a file: from_pretrained takes a directory written by save_pretrained "
            "or cfnet.export format=hub, or a Hub repo id (org/name)"
        )
    try:
        validate_repo_id(text)
    except HFValidationError as err:
        raise FileNotFoundError(
            f"{text!r} is neither a directory nor a Hub repo id (org/name)"
        ) from err
    config_file = _download(text, CONFIG_NAME, hub, hub.revision)
    commit = config_file.parent.name  # snapshots/<commit>/config.json
    where = f"Hub repo {text!r}"
    try:
        config = read_config(config_file, where)
    except NotCfnetError as err:
        try:  # its model card, to say whose model it is
            card = _download(text, CARD_NAME, hub, commit)
        except (FileNotFoundError, ValueError):
            raise err from None
        raise NotCfnetError(where, err.why, card.parent) from None
    weights = _download(text, WEIGHTS_NAME, hub, commit)
    return Pretrained(text, weights.parent, config)


# ---- the weights -------------------------------------------------------------------------------
def _listed(names: list[str], limit: int = 3) -> str:
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_weights(model: nn.Module, pretrained: Pretrained) -> None:
    """model.safetensors into ``model``, strictly: every tensor of the model is in the file with
    its shape, and the file holds no other; else one line naming what does not fit."""
    from safetensors.torch import load_file

    weights = pretrained.weights
    try:
        tensors = load_file(str(weights))
    except Exception as err:  # safetensors' header and size checks
        raise ValueError(f"{weights} cannot be read: {' '.join(str(err).split())}") from err
    own = model.state_dict()
    missing = [n for n in own if n not in tensors]
    unexpected = [n for n in tensors if n not in own]
    other = [n for n in own if n in tensors and tensors[n].shape != own[n].shape]
    if missing or unexpected or other:

        def shape(t: Any) -> str:
            return "×".join(map(str, t.shape)) or "scalar"

        shapes = [f"{n} ({shape(tensors[n])} in the file, {shape(own[n])} here)" for n in other]
        parts = [f"{len(missing)} missing ({_listed(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({_listed(unexpected)})"] if unexpected else []
        parts += [f"{len(other)} of another shape: {_listed(shapes)}"] if other else []
        raise ValueError(
            f"{weights} does not fit {pretrained.config_path} ({pretrained.describe()}): "
            f"tensors {'; '.join(parts)}"
        )
    model.load_state_dict(tensors, strict=True)


# ---- the mixin ---------------------------------------------------------------------------------
class HubMixin(
    PyTorchModelHubMixin,
    library_name="cfnet",
    pipeline_tag="image-segmentation",
    tags=["semantic-segmentation", "cfnet"],
    paper_url=PAPER_URL,
    model_card_template=CARD_TEMPLATE,
):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for ``CFNet`` and ``FCN``: the
    ``PyTorchModelHubMixin`` (it records the constructor's arguments as the model is made, writes
    the weights with safetensors, the card with ``ModelCard``, and pushes one commit with
    ``HfApi``), strict and offline-safe as the module doc says.

    ``dataset_info`` (a ``DatasetInfo``): what the model predicts; ``from_pretrained`` sets it,
    ``save_pretrained`` needs it (``cfnet.export format=hub`` takes it from the checkpoint).
    """

    dataset_info: DatasetInfo | None = None

    @classmethod
    def constructor_arguments(cls) -> list[str]:
        """The names of the constructor's arguments: config.json's ``model`` holds these."""
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def model_config(self) -> dict[str, Any]:
        """The arguments this model was built with (recorded by the mixin as it was made), with
        ``pretrained`` and ``init_from`` null: its weights are saved with it."""
        recorded = self._hub_mixin_config
        names = self.constructor_arguments()
        if not isinstance(recorded, dict) or any(name not in recorded for name in names):
            raise ValueError(
                f"{type(self).__name__} cannot be saved: its constructor's arguments are not all "
                "plain values (only CFNet and FCN are saved)"
            )
        return {name: recorded[name] for name in names} | {"pretrained": None, "init_from": None}

    def hub_config(self) -> dict[str, Any]:
        """config.json: the model's class and arguments, its ``dataset_info``, cfnet's version."""
        if self.dataset_info is None:
            raise ValueError(
                f"{type(self).__name__}.save_pretrained: the model has no dataset_info (class "
                "names, palette, mean/std): set model.dataset_info = cfnet.models.DatasetInfo("
                "...) first; cfnet.export format=hub takes it from a checkpoint"
            )
        config = {"cfnet_version": __version__, "model_class": type(self).__name__}
        config |= {"model": self.model_config(), **self.dataset_info.to_config()}
        return check_config(config, f"the config.json of this {type(self).__name__}")

    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        config: dict[str, Any] | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> str | None:
        """Write config.json, model.safetensors and README.md into ``save_directory`` (the
        mixin's ``save_pretrained``); none of them is replaced unless ``overwrite=True``.

        ``repo_id``: the Hub repo the directory is for (the card's snippet loads it); with
        ``push_to_hub=True`` the model is pushed there too (default: the directory's name), and
        the commit's URL returned. ``config``: only the one ``hub_config`` builds (the mixin
        hands it back when it pushes). ``model_card_kwargs``: ``generate_model_card``'s."""
        own = self.hub_config()
        if config is not None and config != own:
            raise ValueError(
                "save_pretrained(config=...): config.json is what the model and its dataset_info "
                "say; set model.dataset_info instead"
            )
        directory = Path(save_directory).expanduser()
        existing = [str(directory / name) for name in SAVED_FILES if (directory / name).exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"{existing[0]!r} already exists; pass overwrite=true to replace it or choose "
                "another directory"
            )
        (directory / CARD_NAME).unlink(missing_ok=True)  # (the mixin would keep an old card)
        card = {"location": repo_id or str(save_directory), **(model_card_kwargs or {})}
        super().save_pretrained(directory, config=own, model_card_kwargs=card)
        if push_to_hub:
            return self.push_to_hub(repo_id or directory.name, model_card_kwargs=model_card_kwargs)
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's (safetensors' ``save_model``), then the weights made readable as any new
        file is (the umask's mode): safetensors writes them for their owner alone (0600), which
        a directory shared on a cluster, or handed to a colleague, must not be."""
        super()._save_pretrained(save_directory)
        umask = os.umask(0)
        os.umask(umask)
        (save_directory / WEIGHTS_NAME).chmod(0o666 & ~umask)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Upload config.json, model.safetensors and README.md to ``repo_id`` in one commit (the
        mixin's: ``HfApi.create_repo``, then ``upload_folder`` of a fresh ``save_pretrained``);
        the card's snippet loads ``repo_id``. Returns the commit's URL."""
        card = {"location": repo_id, **(model_card_kwargs or {})}
        return super().push_to_hub(
            repo_id,
            commit_message=commit_message or self.commit_message(),
            private=private,
            token=token,
            branch=branch,
            create_pr=create_pr,
            model_card_kwargs=card,
        )

    def commit_message(self) -> str:
        """``cfnet 0.1.0: CFNet (resnet50d) on pascal_voc``: the default of ``push_to_hub``."""
        config = self.hub_config()
        dataset = config["dataset"] or "own data"
        return (
            f"cfnet {__version__}: {config['model_class']} ({config['model']['backbone']}) "
            f"on {dataset}"
        )

    def generate_model_card(
        self, location: str = "<directory or org/name>", training: TrainingRecord | None = None
    ) -> ModelCard:
        """README.md: ``CARD_TEMPLATE`` filled by ``card_sections``, under the mixin's card data
        (library_name, pipeline_tag, tags). ``location``: what the snippet loads."""
        config = self.hub_config()
        sections = card_sections(type(self).__name__, config, training, location, code_commit())
        return ModelCard.from_template(
            card_data=ModelCardData(**self._hub_mixin_info.model_card_data.to_dict()),
            template_str=self._hub_mixin_info.model_card_template,
            **sections,
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        map_location: str = "cpu",
    ) -> Any:
        """The model saved in a directory or a Hub repo (``org/name``), in eval mode on
        ``map_location``, its ``dataset_info`` set. The other arguments are ``hf_hub_download``'s;
        with ``HF_HUB_OFFLINE=1`` a repo id is read from the local Hub cache."""
        hub = HubOptions(revision, cache_dir, force_download, local_files_only, token)
        found = find_pretrained(pretrained_model_name_or_path, hub)
        named = found.config["model_class"]
        if named != cls.__name__:
            raise ValueError(
                f"{found.source} holds {named}, not {cls.__name__}: load it with "
                f"{named}.from_pretrained or cfnet.from_pretrained"
            )
        # the mixin's own: it reads config.json of the (now local) directory and hands it on
        return super().from_pretrained(found.directory, map_location=map_location)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None,
        map_location: str = "cpu",
    ) -> Any:
        """Build the model from ``config`` (config.json as the mixin read it, checked) and load
        its weights strictly. ``model_id`` is a local directory here (``from_pretrained``)."""
        directory = Path(model_id)
        found = Pretrained(model_id, directory, check_config(config, str(directory / CONFIG_NAME)))
        args = found.config["model"]
        check_model_args(args, cls.constructor_arguments(), cls.__name__, found.config_path)
        try:
            model = cls(**args)
        except ValueError as err:  # the constructor's own checks: "heads=3: ..."
            raise ValueError(f"{found.config_path}: {keyed('model', str(err))}") from err
        load_weights(model, found)
        model.dataset_info = DatasetInfo.from_config(found.config)
        return model.to(map_location).eval()
