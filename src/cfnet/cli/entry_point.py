"""An entry point's ``main``, written once: the command line checked in one line, the config
composed by Hydra (which makes the run dir), the run, and user errors reported in one line.

Each entry module (``cfnet.train``, ``cfnet.evaluate``, ...) is its function ``run(cfg)`` and
``main = hydra_main("<config name>", run)``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import hydra
from omegaconf import DictConfig

from cfnet.cli.command_line import check_command_line, check_group_choices
from cfnet.cli.config import CONFIG_DIR
from cfnet.cli.errors import discard_empty_run_dir, user_errors

T = TypeVar("T")


def hydra_main(
    config_name: str,
    run: Callable[[DictConfig], T],
    before: Callable[[list[str]], list[str]] | None = None,
) -> Callable[[], T | None]:
    """``main()`` for ``python -m cfnet.<name>``: ``run(cfg)`` on ``conf/<config_name>.yaml`` as
    Hydra composes it from the command line (``sys.argv``).

    Before Hydra composes anything and makes a run dir, the command line's config-group options,
    keys and mandatory values are checked (``cfnet.cli.command_line``); then ``before(argv)``, when
    given, reads what the run dir depends on and returns the overrides to add (``cfnet.train``: a
    resume runs in its checkpoint's dir). A user error, there or in ``run``, is one line on stderr
    and exit status 2 (``cfnet.cli.errors``); a run dir left with nothing but Hydra's record of the
    run is removed. Hydra names the job (the run dir's ``<job>.log``) after ``run``'s module.
    """

    @functools.wraps(run)  # Hydra unwraps it: the job is named after run's module, not this one
    def task(cfg: DictConfig) -> T:
        with user_errors():
            result = run(cfg)
        discard_empty_run_dir()
        return result

    composed = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(task)

    def main() -> T | None:
        argv = sys.argv[1:]
        with user_errors():
            check_group_choices(argv)
            check_command_line(argv, config_name)
            if before is not None:
                sys.argv += before(argv)
        return composed()

    return main
