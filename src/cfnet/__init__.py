"""cfnet: CFNet, Co-occurrent Features in Semantic Segmentation (Zhang et al., CVPR 2019).

The packages by role, from the ground floor up; each imports only from its own and those below
(``tests/project/test_imports.py`` walks the imports and fails on a circle or an upward one):

    utils/       checks, hardware, atomic writes, checkpoint files, the run record they carry
    models/      the segmentors: backbone → head (CFNet, FCN); plain nn.Modules
    data/        datasets, transforms, loaders (LightningDataModules), release converters
    evaluation/  the inference protocols (whole, slide, ms_flip) and the metrics
    analysis/    pictures, attention measures, sweep tables, the notebooks' helpers
    lit/         the LightningModule, losses, checkpoint IO, callbacks (reports, resume, W&B)
    explorer/    the co-occurrence explorer's web app (beside lit/: neither imports the other)
    cli/         config, command-line checks, one-line user errors, validation, run config
    train, evaluate, predict, export, prepare, stats, report, explore, cooccurrence: the entry
                 points (python -m)
"""

__version__ = "0.1.0"
