"""Every document a comment, docstring or doc cites is in the repository (docs/...), never the background specs.

A citation is a `docs/NAME.md` path (it must exist), a section sign `§` or a defect label `D<n>` (the same comment,
docstring or paragraph must name the document in docs/ that holds it), and nothing may cite the background
documents the repository does not ship (`ahn.md`, `paper.md`, `benchmarks.md`, `anchors.md`, `DESIGN.md`, "spec A1").
Tests are scanned too (this file aside: it quotes the patterns it looks for).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("ahn", "baselines", "harness", "tasks", "scripts", "bench", "studies", "tests")
MARKDOWN = ("README.md", "docs/*.md", "leaderboards/*.md", "leaderboards/*/*.md")

ABSENT = re.compile(
    r"(?<!docs/)\b(?:ahn|paper|benchmarks|anchors)\.md\b|DESIGN\.md|shared/spec|"
    r"\b[Ss]pec\b\s*(?:[A-E]\d|Part\b|part\b|§|ahn\b|benchmarks\b)|\bdefect D\d",
)
DOC_PATH = re.compile(r"\bdocs/([A-Za-z_]+\.md)")
NEEDS_DOC = re.compile(r"§\s*\d|\bD\d{1,2}\b(?!\[)")


def _python_blocks(path: Path) -> list[tuple[int, str]]:
    """Comment runs and docstrings of a Python file, with their first line."""
    text = path.read_text(encoding="utf-8")
    blocks: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                blocks.append((node.body[0].lineno, doc))
    run: list[str] = []
    start = last = 0
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line = tok.start[0]
        if run and line != last + 1:
            blocks.append((start, "\n".join(run)))
            run = []
        if not run:
            start = line
        run.append(tok.string)
        last = line
    if run:
        blocks.append((start, "\n".join(run)))
    return blocks


def _markdown_blocks(path: Path) -> list[tuple[int, str]]:
    blocks, line = [], 1
    for para in path.read_text(encoding="utf-8").split("\n\n"):
        blocks.append((line, para))
        line += para.count("\n") + 2
    return blocks


def _sources() -> list[Path]:
    files = [p for d in CODE_DIRS for p in sorted((REPO / d).rglob("*.py")) if p != Path(__file__).resolve()]
    return files + [p for pattern in MARKDOWN for p in sorted(REPO.glob(pattern))]


def test_comments_cite_only_documents_in_the_repository():
    problems = []
    for path in _sources():
        rel = path.relative_to(REPO)
        blocks = _python_blocks(path) if path.suffix == ".py" else _markdown_blocks(path)
        for line, text in blocks:
            for m in ABSENT.finditer(text):
                problems.append(f"{rel}:{line}: cites {m.group(0)!r}, a document the repository does not ship")
            cited = DOC_PATH.findall(text)
            problems += [f"{rel}:{line}: cites docs/{name}, which does not exist" for name in cited
                         if not (REPO / "docs" / name).is_file()]
            if NEEDS_DOC.search(text) and not cited and not rel.parts[0] == "docs":
                problems.append(f"{rel}:{line}: a section or defect label without the docs/ file that holds it: "
                                f"{NEEDS_DOC.search(text).group(0)!r}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_must():
    assert ABSENT.search("the alignment rule of ahn.md §2.3")
    assert ABSENT.search("official protocol (spec A1)") and ABSENT.search("(defect D6)")
    assert not ABSENT.search("see docs/AHN.md §2.3") and not ABSENT.search("docs/paper.md")
    assert NEEDS_DOC.search("(§3.7)") and NEEDS_DOC.search("fixes D4")
