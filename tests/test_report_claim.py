"""``python -m cfnet.report <claim results .json>``: Table 2 with mean ± sd over seeds, Table 3's
grid, the plot, and one line for a file that is not a claim results file.

The results are written here with scores chosen so that every cell is known by hand: two seeds of
0.20 and 0.40 give 30.0 ± 14.1 (sample sd: |0.40 − 0.20| / √2 = 0.1414).
"""

from __future__ import annotations

import json

from PIL import Image

from cfnet.report import main


def scores(single: float, paired: float, miou: float = 0.5) -> dict:
    return {
        "mixed": {"pixAcc": 0.9, "mIoU": miou, "mIoU_ambiguous": 0.3},
        "single": {"pixAcc": 0.9, "mIoU": 0.5, "mIoU_ambiguous": single},
        "paired": {"pixAcc": 0.9, "mIoU": 0.5, "mIoU_ambiguous": paired},
    }


def ratio(trained: float, untrained: float) -> dict:
    return {"trained": {"ratio": trained}, "untrained": {"ratio": untrained}}


def results() -> dict:
    jobs = [
        # out of the paper's order on purpose: the table puts FCN first, then +GP, then +ACF
        {"table": "table2", "row": "acf", "seed": 0, "scores": scores(0.20, 0.60),
         "pairing": ratio(3.0, 1.0)},
        {"table": "table2", "row": "acf", "seed": 1, "scores": scores(0.40, 0.80),
         "pairing": ratio(5.0, 1.1)},
        {"table": "table2", "row": "fcn", "seed": 0, "scores": scores(0.25, 0.25, miou=0.4),
         "pairing": None},
        {"table": "table2", "row": "gp", "seed": 0, "scores": scores(0.70, 0.25), "pairing": None},
        {"table": "table3", "k": 2, "heads": 1, "seed": 0, "scores": scores(0.5, 0.3)},
        {"table": "table3", "k": 1, "heads": 1, "seed": 0, "scores": scores(0.4, 0.2)},
    ]  # fmt: skip
    return {"jobs": jobs}


def test_the_tables_show_mean_and_sd_over_seeds_in_the_papers_order(tmp_path, capsys):
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(results()))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[1:4] == [
        "| FCN | 1 | 40.0 | 25.0 | 25.0 | — (no ACF) |",
        "| +GP | 1 | 50.0 | 70.0 | 25.0 | — (no ACF) |",
        "| +ACF | 2 | 50.0 ± 0.0 | 30.0 ± 14.1 | 70.0 ± 14.1 | 4.00 ± 1.41 |",
    ]
    assert "Attention own / other cue at initialisation: 1.05 ± 0.07." in out
    assert "| | K=1 | K=2 |" in out
    assert "| H=1 | 40.0 / 20.0 | 50.0 / 30.0 |" in out
    with Image.open(tmp_path / "claim.png") as plot:  # the default: beside the file
        assert plot.size[0] > 300


def test_a_plot_path_can_be_given(tmp_path):
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(results()))
    assert main([str(path), "--plot", str(tmp_path / "figs" / "table2.png")]) == 0
    assert (tmp_path / "figs" / "table2.png").is_file()


def test_files_that_are_not_claim_results_are_one_line(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert main([str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {str(missing)!r} does not exist"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main([str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {str(broken)!r} is not JSON") and "\n" not in err
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"mIoU": 0.5}))
    assert main([str(other)]) == 2
    assert "is not a claim results file (no 'jobs' list" in capsys.readouterr().err
