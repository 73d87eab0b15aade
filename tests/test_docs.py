"""Every ```python block of README.md and docs/*.md runs pasted alone, so none can rot; the docs
site builds strictly (``mkdocs build --strict``) when mkdocs is installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[str, str]]:
    """(page:line, code) of every ```python block of the pages."""
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return out


BLOCKS = python_blocks()


def test_the_pages_have_blocks() -> None:
    assert len(BLOCKS) >= 8, [name for name, _ in BLOCKS]
    assert any(name.startswith("README.md") for name, _ in BLOCKS)


def test_the_block_finder_finds_a_block() -> None:
    page = "text\n```python\nx = 1\n```\n```\nnot python\n```\n"
    assert _BLOCK.findall(page) == ["x = 1\n"]


_RUNNER = """
import json, sys, traceback
results = {}
for name, code in json.load(open(sys.argv[1], encoding="utf-8")):
    try:  # a fresh namespace per block: nothing defined by one block is seen by the next
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
        results[name] = None
    except BaseException:
        results[name] = traceback.format_exc()
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Every block run once, in one interpreter (torch imported once), in the repository root (for
    examples/), on one CPU thread: block name -> None, or the traceback it raised."""
    folder = tmp_path_factory.mktemp("blocks")
    (folder / "blocks.json").write_text(json.dumps(BLOCKS), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", _RUNNER, str(folder / "blocks.json"), str(folder / "out.json")],
                            check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((folder / "out.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", [name for name, _ in BLOCKS])
def test_block_runs_pasted_alone(name: str, outcomes: dict[str, str | None]) -> None:
    assert outcomes[name] is None, outcomes[name]


def test_a_failing_block_is_reported(tmp_path: Path) -> None:
    """The runner catches what a block raises, and a name defined by one block is gone in the next."""
    (tmp_path / "b.json").write_text(json.dumps([["one", "x = 1"], ["two", "print(x)"]]), encoding="utf-8")
    subprocess.run([sys.executable, "-c", _RUNNER, str(tmp_path / "b.json"), str(tmp_path / "o.json")], check=True)
    out = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    assert out["one"] is None and "NameError" in out["two"]


@pytest.mark.slow
def test_docs_build_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8").count("from_pretrained") > 1
