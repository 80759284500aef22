"""The docs stay navigable and honest: every relative link and picture in README.md and docs/*.md
resolves (Markdown anchors included), the README stays a five-minute read, and the generated
benchmarks page is exactly what its generator writes from the committed results, so a hand edit
of a generated table fails here.

References are independent of the code under test: files on disk, a heading-to-anchor rule
written out below (GitHub's), and the generator's own output compared byte for byte.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) / ![alt](src)
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The page without its fenced code blocks (a link inside code is not a link)."""
    keep, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            inside = not inside
            continue
        if not inside:
            keep.append(line)
    return "\n".join(keep)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces
    to '-', and '-1', '-2', ... for repeated headings."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # drop http:, mailto:


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file, or whose heading anchor in a Markdown file, is
    missing."""
    broken = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_picture_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_readme_is_a_five_minute_read():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_link_checker_catches_what_it_should(tmp_path):
    # the checker's own control: good links, a missing file, a missing anchor, a link in code
    (tmp_path / "a.md").write_text("# Some Title: here\n\n## Again\n\n## Again\n")
    (tmp_path / "pic.png").write_bytes(b"")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#some-title-here) [ok2](a.md#again-1) ![pic](pic.png) [gone](nope.md)\n"
        "[bad](a.md#missing) ![nopic](img/x.png)\n```\n[in code](ignored.md)\n```\n"
        "[web](https://example.org/x)\n"
    )
    assert anchors(tmp_path / "a.md") == {"some-title-here", "again", "again-1"}
    assert broken_links(page) == [
        "nope.md (no such file)",
        "a.md#missing (no heading with anchor #missing in a.md)",
        "img/x.png (no such file)",
    ]


def _make_docs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    sys.modules.pop("make_docs", None)
    return importlib.import_module("make_docs")


def test_the_benchmarks_page_is_exactly_what_its_generator_writes(monkeypatch):
    committed = (ROOT / "docs" / "benchmarks.md").read_text()
    assert committed == _make_docs(monkeypatch).render(), (
        "docs/benchmarks.md differs from what benchmarks/make_docs.py renders from "
        "benchmarks/results/: edit the results or benchmarks/benchmarks_{head,notes}.md and run "
        "`python benchmarks/make_docs.py --out docs/benchmarks.md`, not the page"
    )


def test_the_page_follows_the_results_so_a_stale_or_edited_table_fails(monkeypatch, tmp_path):
    # the control for the comparison above: one figure changed in a copy of the results must
    # change the rendered page, at that figure, so the committed page no longer matches
    make_docs = _make_docs(monkeypatch)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    protocol = json.loads((results / "eval_protocol.json").read_text())
    protocol["counted"][0]["passes"] = 123456
    (results / "eval_protocol.json").write_text(json.dumps(protocol))
    monkeypatch.setattr(make_docs, "RESULTS", results)
    rendered = make_docs.render()
    assert "| 123456 |" in rendered
    assert rendered != (ROOT / "docs" / "benchmarks.md").read_text()


def test_a_results_file_without_its_record_is_refused(monkeypatch, tmp_path):
    """Every results file says when, with which code and on which machine its numbers were
    measured (benchmarks/results_files.py); the page is not rendered from one that does not."""
    make_docs = _make_docs(monkeypatch)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    protocol = json.loads((results / "eval_protocol.json").read_text())
    assert {"date", "commit", "machine", "torch"} <= protocol.keys()
    assert {"cpu", "cores", "native_bf16", "gpu"} <= protocol["machine"].keys()
    del protocol["commit"]
    (results / "eval_protocol.json").write_text(json.dumps(protocol))
    monkeypatch.setattr(make_docs, "RESULTS", results)
    with pytest.raises(ValueError, match=r"eval_protocol\.json records no commit"):
        make_docs.render()


def test_the_code_map_names_every_module():
    """docs/development.md's code map has a row for every module of src/cfnet."""
    text = (ROOT / "docs" / "development.md").read_text()
    package = ROOT / "src" / "cfnet"
    modules = [p.relative_to(package).as_posix() for p in package.rglob("*.py")]
    unnamed = [m for m in sorted(modules) if not m.endswith("__init__.py") and f"`{m}`" not in text]
    assert unnamed == [], f"docs/development.md's code map does not name {unnamed}"


def fixture_record(gpu: str) -> dict:
    """A results file's record (benchmarks/results_files.py) as a GPU run writes it."""
    return {
        "command": "python benchmarks/gpu_speed.py --sections lightning",
        "date": "2031-01-02 03:04 UTC",
        "commit": "abc1234",
        "machine": {"cpu": "Some CPU", "cores": 16, "native_bf16": True, "gpu": gpu},
        "torch": "9.9.9",
    }


def test_the_gpu_goals_are_rendered_from_the_cuda_results_files(monkeypatch, tmp_path):
    """A fixture (invented figures, in a temp copy of the results; never committed): the goals
    whose files exist get the figure, the GPU's name, date and commit, and met / not met; a goal
    whose file lacks its row (a check cut off) and one without a file are "not measured"."""
    make_docs = _make_docs(monkeypatch)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    assert not list(results.glob("*cuda*")), "the committed results hold a CUDA file: rewrite me"
    lightning = [
        {"run": "cfnet.train trainer=gpu", "batch": 16, "images_per_s": 212.5},
        {"run": "cfnet.train trainer=gpu", "batch": 2, "images_per_s": 61.0},
    ]
    ms_flip = [  # eager only: the compiled row was cut off
        {"inference.batch_size": 1, "inference.compile": False, "speedup_vs_unbatched": 1.0},
        {"inference.batch_size": 8, "inference.compile": False, "speedup_vs_unbatched": 6.3},
    ]
    for name, rows in (("speed_cuda_lightning", lightning), ("speed_cuda_ms_flip", ms_flip)):
        report = {**fixture_record("NVIDIA H200"), "device": "cuda", "rows": rows}
        (results / f"{name}.json").write_text(json.dumps(report))
        (results / f"{name}.md").write_text(f"the {name} tables\n")
    monkeypatch.setattr(make_docs, "RESULTS", results)
    verdicts = {row["goal"]: (row["measured"], row["verdict"]) for row in make_docs.gpu_goals()}
    record = "NVIDIA H200, 2031-01-02 03:04 UTC, commit abc1234"
    assert verdicts == {
        "GPU: CFNet-R50 training through Lightning, 512², bf16, batch 16": (
            f"212.5 img/s (cfnet.train trainer=gpu); {record}", "met"),
        "GPU: the same, compiled (module.compile=true), batch 16": (
            "no results (benchmarks/gpu_check.sh on a GPU writes "
            "speed_cuda_lightning_compiled.json)", "not measured"),
        "GPU: CFNet-R50 training through Lightning, 512², bf16, batch 2": (
            f"61.0 img/s (cfnet.train trainer=gpu); {record}", "not met"),
        "GPU: the quickstart, python -m cfnet.train (make train)": (
            "no results (benchmarks/gpu_check.sh on a GPU writes speed_cuda_quickstart.json)",
            "not measured"),
        "GPU: predict latency, batch 1, 512², CFNet-R50 / DeepLabV3-R50, eager": (
            "no results (benchmarks/gpu_check.sh on a GPU writes speed_cuda_latency.json)",
            "not measured"),
        "GPU: the same, both with CUDA graphs (reduce-overhead)": (
            "no results (benchmarks/gpu_check.sh on a GPU writes speed_cuda_latency.json)",
            "not measured"),
        "GPU: ms_flip batched vs window by window": (
            f"6.3× (inference.batch_size=8); {record}", "met"),
        "GPU: the same, batched windows compiled (inference.compile=true)": (
            "speed_cuda_ms_flip.json has no row for it (the check was cut off before it)",
            "not measured"),
    }  # fmt: skip
    page = make_docs.render()
    assert f"| 212.5 img/s (cfnet.train trainer=gpu); {record} | met |" in page
    assert "the speed_cuda_lightning tables" in page and "the speed_cuda_ms_flip tables" in page


def test_without_cuda_results_every_gpu_goal_is_not_measured(monkeypatch):
    make_docs = _make_docs(monkeypatch)
    rows = make_docs.gpu_goals()
    assert len(rows) == len(make_docs.GPU_GOALS) == 8
    assert {row["verdict"] for row in rows} == {"not measured"}


def test_the_synthetic_tables_are_the_ones_generated_from_the_claim_results():
    """README's Table 2 on the synthetic scenes and docs/claim.md's Table 2 and 3 are what
    ``python -m cfnet.report benchmarks/results/claim_synthetic.json`` prints: a hand edit, or a
    results file re-run without the docs following, fails here."""
    from cfnet.analysis.claim import read_results, render_tables, table2

    results = read_results(ROOT / "benchmarks" / "results" / "claim_synthetic.json")
    assert table2(results) in (ROOT / "README.md").read_text()
    assert render_tables(results) in (ROOT / "docs" / "claim.md").read_text()
