"""cfnet: CFNet, Co-occurrent Features in Semantic Segmentation (Zhang et al., CVPR 2019).

The packages by role, from the ground floor up; each imports only from its own and those below
(``tests/project/test_imports.py`` walks the imports and fails on a circle or an upward one):

    utils/       checks, hardware, atomic writes, checkpoint files, the run record they carry
    models/      the segmentors: backbone → head (CFNet, FCN); plain nn.Modules; Hub save / load
    data/        datasets, transforms, loaders (LightningDataModules), release converters
    evaluation/  the inference protocols (whole, slide, ms_flip) and the metrics
    analysis/    pictures, attention measures, sweep tables, the notebooks' helpers
    lit/         the LightningModule, losses, checkpoint IO, callbacks (reports, resume, W&B)
    explorer/    the co-occurrence explorer's web app (beside lit/: neither imports the other)
    cli/         config, command-line checks, one-line user errors, validation, run config,
                 the model a command loads, publishing
    train, evaluate, predict, export, prepare, stats, report, explore, cooccurrence: the entry
                 points (python -m)

``cfnet.from_pretrained(dir_or_repo_id)``: a saved CFNet or FCN (a directory or a Hugging Face
Hub repo; ``cfnet.models.hub``).
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``cfnet.from_pretrained`` (``cfnet.models.segmentor``), imported on first use, so that
    ``import cfnet`` itself stays light: the map above and the version, importing nothing."""
    if name == "from_pretrained":
        from cfnet.models.segmentor import from_pretrained

        return from_pretrained
    raise AttributeError(f"module 'cfnet' has no attribute {name!r}")
