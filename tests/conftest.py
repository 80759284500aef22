"""pytest's setup for the whole suite; the helpers themselves are in the ``support`` package."""

from __future__ import annotations

import os

import pytest

# support's assertions (assert_scores_match) report the values compared, as a test's do.
pytest.register_assert_rewrite("support")

# The notebooks (collected with the tests: pyproject's testpaths) train at the smoke budget under
# pytest unless told otherwise (`make figures` sets full): seconds each, every cell executed. The
# kernels nbmake starts inherit this environment. Their claims are asserted at full budget by the
# slow tests in test_claims.py.
os.environ.setdefault("CFNET_NOTEBOOK_BUDGET", "smoke")
