"""A new user's mistakes on the command line, through the entry points: exit status 2, one line on
stderr that names the key and says what to type instead, no traceback, and no run dir left.

Missing mandatory values name the key with an example command; unknown keys (in any group, with or
without ``+``) name the closest existing key. All calls run in one interpreter
(``run_cli_batch``: each is ``python -m <module>`` as ``runpy`` runs it).
"""

from __future__ import annotations

from support.cli import run_cli, run_cli_batch

MISTAKES = [  # (entry point, arguments, the one line on stderr)
    (
        "cfnet.evaluate",
        [],
        "error: ckpt_path is required; e.g. python -m cfnet.evaluate "
        "ckpt_path=<file.ckpt|dir|org/name>",
    ),
    (
        "cfnet.export",
        ["format=safetensors"],
        "error: ckpt_path is required; e.g. python -m cfnet.export ckpt_path=<file.ckpt> "
        "format=onnx|safetensors|hub",
    ),
    (
        "cfnet.predict",
        ["ckpt_path=model.ckpt"],
        "error: input, output are required; e.g. python -m cfnet.predict "
        "ckpt_path=<file.ckpt|dir|org/name> input=<image|folder> output=<folder>",
    ),
    (
        "cfnet.explore",
        ["port=0"],
        "error: ckpt_path is required; e.g. python -m cfnet.explore ckpt_path=<file.ckpt>",
    ),
    (
        "cfnet.cooccurrence",
        [],
        "error: ckpt_path is required; e.g. python -m cfnet.cooccurrence ckpt_path=<file.ckpt>",
    ),
    (
        "cfnet.train",
        ["model.head=4"],
        "error: model.head: no such key in the train config; did you mean model.heads?",
    ),
    (  # what Hydra's own hint (+model.head=4) would have built, and failed on, later
        "cfnet.train",
        ["+model.head=4"],
        "error: model.head: CFNet has no argument 'head'; did you mean model.heads?",
    ),
    (  # a callback added whole (its _target_ first) is not mistaken for an unknown argument
        "cfnet.train",
        [
            "+callbacks.extra._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.extra.monitor=val/mIoU",
            "+callbacks.extra.patiense=3",
        ],
        "error: callbacks.extra.patiense: EarlyStopping has no argument 'patiense'; did you mean "
        "callbacks.extra.patience?",
    ),
    (  # the same with --cfg job (Hydra would print the config): the same line
        "cfnet.train",
        ["model.head=4", "--cfg", "job"],
        "error: model.head: no such key in the train config; did you mean model.heads?",
    ),
    (  # --cfg prints a config whose mandatory values may be unset: only the keys are checked
        "cfnet.evaluate",
        ["--cfg", "job", "dataset.eval_batch_sise=2"],
        "error: dataset.eval_batch_sise: no such key in the evaluate config; did you mean "
        "dataset.eval_batch_size?",
    ),
    (
        "cfnet.train",
        ["+model.heads=4"],
        "error: +model.heads: the key exists; set it without the +: model.heads=...",
    ),
    (
        "cfnet.train",
        ["trainer.max_epoch=3"],
        "error: trainer.max_epoch: no such key in the train config; did you mean "
        "trainer.max_epochs?",
    ),
    (  # a misspelt group, and a deletion of a key that is not there
        "cfnet.train",
        ["modle.k=2", "~callbacks.progress_barr"],
        "error: modle.k: no such key in the train config; did you mean model.k?; "
        "callbacks.progress_barr: no such key in the train config; did you mean "
        "callbacks.progress_bar?",
    ),
    (  # in a sweep, before any job starts
        "cfnet.train",
        ["-m", "model.k=1,2", "optim.optimizer.momentun=0.8"],
        "error: optim.optimizer.momentun: no such key in the train config; did you mean "
        "optim.optimizer.momentum?",
    ),
    (
        "cfnet.evaluate",
        ["ckpt_path=model.ckpt", "dataset.eval_batch_sise=2"],
        "error: dataset.eval_batch_sise: no such key in the evaluate config; did you mean "
        "dataset.eval_batch_size?",
    ),
    (
        "cfnet.predict",
        ["ckpt_path=m.ckpt", "input=in", "output=out", "inference.stride_rat=0.5"],
        "error: inference.stride_rat: no such key in the predict config; did you mean "
        "inference.stride_rate?",
    ),
]


def test_each_mistake_is_one_line_with_what_to_type_and_leaves_no_run_dir(tmp_path):
    runs = tmp_path / "runs"
    calls = [
        (module, [*args, f"hydra.run.dir={runs / str(i)}", f"hydra.sweep.dir={runs / str(i)}"])
        for i, (module, args, _) in enumerate(MISTAKES)
    ]
    for call, result, (_, _, line) in zip(calls, run_cli_batch(calls), MISTAKES, strict=True):
        where = f"python -m {call[0]} {' '.join(call[1])}:\n{result.stdout}\n{result.stderr}"
        assert result.returncode == 2, where
        assert result.stderr.splitlines() == [line], where
    assert not runs.exists()


def test_cfg_job_without_a_mandatory_value_prints_the_config():
    """--cfg shows the config as composed: ``ckpt_path: ???`` is not a mistake there."""
    result = run_cli("cfnet.evaluate", "--cfg", "job")
    assert "ckpt_path: ???" in result.stdout and result.stderr == ""


def test_refused_runs_leave_no_run_dir(tmp_path):
    """Refused once Hydra has made the run dir (``outputs/<name>/<time>/``, from the folder the
    user is in): a missing checkpoint, a file dataset's wrong root (found when the data module is
    built), an impossible setting. Nothing is left, not even the empty ``outputs/``."""
    missing = tmp_path / "missing.ckpt"
    calls = [
        ("cfnet.evaluate", [f"ckpt_path={missing}"]),
        ("cfnet.export", [f"ckpt_path={missing}"]),
        ("cfnet.train", ["dataset=pascal_voc", f"dataset.root={tmp_path / 'nowhere'}"]),
        ("cfnet.train", ["model.heads=3"]),
        ("cfnet.cooccurrence", [f"ckpt_path={missing}"]),
    ]
    user = tmp_path / "user"
    user.mkdir()
    results = run_cli_batch(calls, cwd=user)
    for call, result in zip(calls, results, strict=True):
        where = f"python -m {call[0]} {' '.join(call[1])}:\n{result.stderr}"
        assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith("error: ")
        assert "Traceback" not in result.stderr, where
    assert "nowhere" in results[2].stderr and "does not exist" in results[0].stderr
    assert list(user.iterdir()) == []
