"""The argument checks every constructor uses, one helper per kind of rule.

Each constructor checks its own arguments with these (``ACFModule`` its heads and K, the DataModule
its sizes, ...), so a plain-Python user gets the same one-line error as a config user. Every
message starts with ``<argument>=<value>:``, and the model's and DataModules' arguments are
named as their config keys: ``cfnet.cli.validate`` runs the constructors' checks, and
``cfnet.cli.errors.user_errors`` puts the config group in front (``heads=3: ...`` becomes
``model.heads=3: ...``, ``keyed``), so a rule is stated once, in the constructor, and still
named in the config's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_ARGUMENT = re.compile(r"[A-Za-z_][\w.\[\]]*=")  # "heads=3: ...", "scale_range[1]=..."


def keyed(group: str, message: str) -> str:
    """A constructor's message in the config's words: ``heads=3: ...`` in group ``model`` becomes
    ``model.heads=3: ...``; any other message gets the group in front (``model: ...``)."""
    return f"{group}.{message}" if _ARGUMENT.match(message) else f"{group}: {message}"


def allowed(values: Iterable[Any]) -> str:
    """``1, 2, 4``: the allowed values as an error message lists them."""
    return ", ".join(str(v) for v in values)


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (YAML ``true`` must not pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    """``value`` is an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer; allowed: 1, 2, 3, ...")
    return value


def one_of(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r}: allowed: {allowed(choices)}")
    return value


def probability(name: str, value: Any) -> float:
    """A dropout rate: a number in [0, 1) (1 would drop everything)."""
    if not is_number(value) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r}: must be a number in [0, 1)")
    return float(value)


def divisors(n: int) -> list[int]:
    """The values that divide ``n``: what a divisibility error offers instead."""
    return [d for d in range(1, n + 1) if n % d == 0]
