"""``python -m cfnet.report <sweep dir | claim results .json>``: → markdown tables and a plot.

A sweep dir: a sweep over ``+experiment/table2`` becomes the paper's Table 2, one over ``model.k``
× ``model.heads`` Table 3, any other one row per job (``cfnet.analysis.sweeps``). Writes
``report.md`` and ``report.png`` into the sweep dir (replacing only those two files) and prints
the markdown.

A claim results file (``benchmarks/claim_sweep.py``: seeds × rows, scored per scene family):
Table 2 and Table 3 with mean ± sd over seeds (``cfnet.analysis.claim``), printed; the plot goes
to ``--plot`` (default: the file's name with ``.png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfnet.analysis.sweeps import report


def claim_report(results_file: Path, plot: Path | None) -> str:
    """The claim results' tables, and their plot saved to ``plot``."""
    from cfnet.analysis.claim import claim_figure, read_results, render_tables
    from cfnet.analysis.viz import save_figure

    results = read_results(results_file)
    plot = plot or results_file.with_suffix(".png")
    save_figure(claim_figure(results), plot)
    return render_tables(results) + f"\nplot: {plot}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cfnet.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "source", type=Path, help="multirun/<experiment>/<time>, or a claim results .json"
    )
    parser.add_argument(
        "--split", default="test", help="metrics file per job: metrics/<split>.json"
    )
    parser.add_argument("--metric", default="mIoU", help="plotted metric (e.g. mIoU_ambiguous)")
    parser.add_argument("--plot", type=Path, help="a claim results file's plot (default: .png)")
    args = parser.parse_args(argv)
    try:
        if args.source.suffix == ".json":
            print(claim_report(args.source, args.plot))
        else:
            print(report(args.source, args.split, args.metric))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
