"""The one way every benchmark saves its numbers: ``benchmarks/results/<name>.{json,md}``, each
with what makes them comparable (``recorded``: when, the code's commit, the machine -- its CPU
model, whether the CPU computes bf16 natively, its GPU -- and torch), and one markdown-table
writer. ``benchmarks/make_docs.py`` refuses a results file without that record."""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from cfnet.utils.hardware import cpu_precision, cpus_available
from cfnet.utils.provenance import code_commit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECORD_KEYS = ("command", "date", "commit", "machine", "torch")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def recorded() -> dict:
    """What a results file records about the run that wrote it."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script.name
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "command": shlex.join(["python", str(name), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": code_commit(),
        "machine": {
            "cpu": cpu_model(),
            "cores": cpus_available(),
            "native_bf16": cpu_precision() == "bf16-mixed",
            "gpu": gpu,
        },
        "torch": torch.__version__,
    }


def describe(record: dict) -> str:
    """The record in one line, as docs/benchmarks.md shows it."""
    machine = record["machine"]
    bf16 = "native bf16" if machine["native_bf16"] else "no native bf16"
    gpu = machine["gpu"] or "no GPU"
    return (
        f"`{record['command']}`; {record['date']}, commit {record['commit']}, "
        f"{machine['cpu']} ({machine['cores']} cores, {bf16}), {gpu}, torch {record['torch']}"
    )


def save_results(name: str, report: dict, text: str, results: Path = RESULTS) -> dict:
    """``<results>/<name>.json`` (the record, then the numbers) and ``.md`` (the record's line,
    then the printed tables); returns the saved report."""
    clash = sorted(set(report) & set(RECORD_KEYS))
    if clash:
        raise ValueError(f"{name}: {clash} are the record's keys (results_files.recorded)")
    report = {**recorded(), **report}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (results / f"{name}.md").write_text(f"{describe(report)}.\n\n{text.rstrip()}\n")
    print(f"saved {results / name}.json and {results / name}.md")
    return report


def markdown(rows: list[dict]) -> str:
    """Rows of equal keys (or not) as one markdown table, a column per key in first-seen order."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
