"""Every repository path the README and docs/ name in backticks exists, so a moved script leaves no stale name.

A path is a backticked word whose first component is a top-level entry of the repository (`bench/x.py`,
`leaderboards/perf/`, `README.md`). Not checked: placeholders (`<cell>`, `{a,b}`, `*`, `…`, `$OUT`), run
folders a command writes (`runs/`), and the paths of other projects that the docs quote (`EXTERNAL`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Paths in other repositories, named where the docs compare with them.
EXTERNAL = {"examples/scripts/inference.py"}  # the official AHN repository's script (docs/DEFECTS.md, D5)
GENERATED = ("runs/",)  # folders `harness run` and the studies write; never committed
PLACEHOLDER = re.compile(r"[<>{}*$…]")
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}


def named_paths(text: str) -> list[str]:
    """The repository paths named inside backticks in `text` (words split on spaces; `path:line` cut to path)."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            word = word.strip("()[],;:'\"")
            if PLACEHOLDER.search(word) or word.startswith(GENERATED) or word in EXTERNAL:
                continue
            path = re.sub(r"(::|:[0-9]).*$", "", word)  # tests/x.py::test_y, harness/cli.py:12
            head = path.split("/")[0]
            if ("/" in path or "." in path) and head in TOP:
                found.append(path)
    return found


def test_named_paths_are_found_in_constructed_text():
    text = ("Run `python -m bench.speed_table` or `bash bench/gpu_perf.sh throughput`; see `docs/USAGE.md` and "
            "`tests/test_doc_paths.py::test_x`, not `runs/<cell>/` nor `leaderboards/tiny/round2_{a,b}.md`.")
    assert named_paths(text) == ["bench/gpu_perf.sh", "docs/USAGE.md", "tests/test_doc_paths.py"]
    assert named_paths("`scripts/gone.sh`") == ["scripts/gone.sh"]  # found, so its absence fails the test below


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_path_exists(doc: Path):
    missing = sorted({p for p in named_paths(doc.read_text(encoding="utf-8")) if not (REPO / p).exists()})
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"
