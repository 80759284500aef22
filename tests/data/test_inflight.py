"""``cfnet.data.inflight``: a read that never ends is reported with its file; reads that end, or
fail with a ``SampleError`` (which names the file itself) or an interruption, are not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cfnet.data.inflight import InFlight, report
from cfnet.data.io import SampleError

NOTE = r"note: this process \(pid \d+\) never finished reading {}; if it died or failed there"


@pytest.mark.parametrize("failure", [None, SampleError, KeyboardInterrupt, MemoryError])
def test_only_a_read_that_never_ended_is_reported(failure, tmp_path, capsys):
    folder = str(tmp_path / "reads")
    inflight = InFlight(folder)
    path = tmp_path / "odd 'name' é.jpg"
    with inflight.reading(Path("first.jpg")):  # a read that ended: withdrawn
        pass
    if failure is None:
        with inflight.reading(path):
            pass
    else:
        with pytest.raises(failure), inflight.reading(path):
            raise failure("while decoding")
    report(folder)
    err = capsys.readouterr().err
    if failure is MemoryError:  # unexpected: the traceback does not say which file
        assert re.fullmatch(NOTE.format(re.escape(repr(str(path)))) + ".*\n", err), err
    else:
        assert err == ""
    assert not (tmp_path / "reads").exists()  # cleaned up at exit
