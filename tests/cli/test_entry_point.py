"""What every entry point does around its run (``cfnet.cli.entry_point``): a run dir is left
only where the command wrote into it."""

from __future__ import annotations

import json

from support.cli import run_cli_batch
from support.configs import TINY_DATA
from support.training import make_checkpoint


def test_a_command_that_writes_elsewhere_or_nothing_leaves_no_run_dir(tmp_path):
    """``export output=<dir>`` writes only there, ``stats`` only prints: neither leaves an
    ``outputs/<cmd>/<time>/`` holding only Hydra's ``.hydra/``. ``export`` into its run dir (the
    default output) keeps its run dir."""
    checkpoint = make_checkpoint(tmp_path, "synthetic")
    user = tmp_path / "user"
    user.mkdir()
    results = run_cli_batch(
        [
            ("cfnet.export", [f"ckpt_path={checkpoint}", "format=safetensors", "output=models"]),
            ("cfnet.stats", [*TINY_DATA, "split=val"]),
            ("cfnet.export", [f"ckpt_path={checkpoint}", "format=safetensors"]),
        ],
        cwd=user,
    )
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    assert json.loads(results[1].stdout.splitlines()[-1])["num_images"] == 5
    weights = ["model.json", "model.safetensors"]
    assert sorted(p.name for p in (user / "models").iterdir()) == weights
    (run_dir,) = (user / "outputs" / "export").iterdir()  # the second export's run dir only
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", *weights]
    assert sorted(p.name for p in user.iterdir()) == ["models", "outputs"]
    assert sorted(p.name for p in (user / "outputs").iterdir()) == ["export"]
