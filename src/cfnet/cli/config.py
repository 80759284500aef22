"""What every entry point sets up before it composes a config: where the configs are
(``CONFIG_DIR``), the OmegaConf resolvers they use (registered on import), and Lightning's notices
that say nothing about a cfnet run, silenced."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from cfnet.cli import resolvers

resolvers.register()  # before any config is composed
# Lightning-internal notices that say nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r".*is not supported by the model summary.*")
# Wrong for cfnet: the training stream's position is restored through the DataModule's state
# (cfnet.data.sampling), which this check of the loader's own interface does not see.
warnings.filterwarnings("ignore", message=r".*ended before the epoch ended and your dataloader.*")
# model.freeze_backbone keeps the backbone in eval mode on purpose (its BatchNorm statistics).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
# Lightning's notices that say nothing about the user's run: its adverts for its cloud services
# (litlogger, litmodels), and that cfnet's own ModelSummary callback replaces its default one.
_SILENCED = ("💡 Tip", "Trainer already configured with model summary callbacks")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith(_SILENCED)
)
# The configs: conf/ at the repository root (checkout, editable install), else the copy an
# installed wheel carries as the data package cfnet.conf (setup.py maps conf/ there).
_PACKAGE = Path(__file__).resolve().parents[1]  # src/cfnet; in a wheel: site-packages/cfnet
_CHECKOUT_CONF = _PACKAGE.parents[1] / "conf"
_WHEEL_CONF = _PACKAGE / "conf"
CONFIG_DIR = str(_WHEEL_CONF if _WHEEL_CONF.is_dir() else _CHECKOUT_CONF)
