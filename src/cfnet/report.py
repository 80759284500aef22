"""``python -m cfnet.report <sweep dir>``: a sweep's jobs → a markdown table and a plot.

A sweep over ``+experiment/table2`` becomes the paper's Table 2, one over ``model.k`` ×
``model.heads`` Table 3, any other one row per job (``cfnet.analysis.sweeps``). Writes
``report.md`` and ``report.png`` into the sweep dir (replacing only those two files) and prints
the markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfnet.analysis.sweeps import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cfnet.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("sweep_dir", type=Path, help="multirun/<experiment>/<time>")
    parser.add_argument(
        "--split", default="test", help="metrics file per job: metrics/<split>.json"
    )
    parser.add_argument("--metric", default="mIoU", help="plotted metric (e.g. mIoU_ambiguous)")
    args = parser.parse_args(argv)
    try:
        print(report(args.sweep_dir, args.split, args.metric))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
