"""Every example command of the docs (``docs/**/*.md``) and the README runs against the demo platform, as a person
would run it after ``make run``: ``headwater demo`` into a fresh data directory, then ``headwater serve`` (on a free
port here).

Examples are the ``sh`` blocks a page marks with ``<!-- example ... -->`` on the line before them. Each
command (a ``\\`` continues it on the next line) must exit 0 under ``bash -o pipefail``; a ``# → text`` line after
it is text its output must contain. ``http://127.0.0.1:8000`` becomes the test server's address and
``.venv/bin/headwater`` and ``.venv/bin/python`` run this interpreter, so the examples test the code under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from live_http import headwater_serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- example"
EXPECT = "# → "
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@dataclass
class Example:
    """One command of a page and what its output must contain."""

    page: str
    line: int
    command: str
    expected: list[str] = field(default_factory=list)


def pages() -> list[Path]:
    """The README and every docs page, in path order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_examples(path: Path) -> list[Example]:
    """The commands of the page's marked ``sh`` blocks, in order."""
    page = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    examples: list[Example] = []
    number = 0
    while number < len(lines):
        if lines[number].startswith(MARKER):
            assert lines[number + 1] == "```sh", f"{page}:{number + 2}: a marked example must be a ```sh block"
            number += 2
            pending = ""
            while lines[number] != "```":
                line = lines[number]
                if pending:
                    pending += "\n" + line
                elif line.startswith(EXPECT):
                    examples[-1].expected.append(line.removeprefix(EXPECT))
                elif line.strip() and not line.startswith("#"):
                    pending, start = line, number + 1
                if pending and not pending.endswith("\\"):
                    examples.append(Example(page=page, line=start, command=pending))
                    pending = ""
                number += 1
        number += 1
    return examples


def all_examples() -> list[Example]:
    """Every marked example of the README and the docs."""
    return [example for path in pages() for example in page_examples(path)]


def test_the_docs_mark_their_examples() -> None:
    examples = all_examples()
    assert len(examples) >= 14, [e.command for e in examples]
    assert any("datasets show" in e.command for e in examples)
    assert any("jobs submit" in e.command for e in examples)
    assert any("/api/v1/lineage " in e.command for e in examples)  # the OpenLineage endpoint
    assert {e.page for e in examples} >= {"docs/getting-started.md", "docs/clients/graphql.md", "docs/concepts/demo.md"}


def _shims(directory: Path) -> Path:
    """``.venv/bin/headwater`` and ``.venv/bin/python`` running this interpreter (and so this checkout)."""
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, run in (
        ("python", f'exec {sys.executable} "$@"'),
        ("headwater", f'exec {sys.executable} -m headwater.cli "$@"'),
    ):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\n{run}\n")
        shim.chmod(0o755)
    return directory


def test_every_readme_example_works_against_the_demo(tmp_path: Path) -> None:
    if shutil.which("java") is None or shutil.which("curl") is None:  # the demo's Spark cluster; the curl examples
        problem = "the docs' examples need java (the demo's Spark cluster) and curl (make test installs both)"
        if IN_CI:
            pytest.fail(f"{problem}; CI needs them", pytrace=False)
        pytest.skip(problem)
    examples = all_examples()
    assert examples, "no marked examples in the docs"
    data_dir, work_dir = tmp_path / "data", _shims(tmp_path / "checkout")
    env = {**os.environ, "HEADWATER_DATA_DIR": str(data_dir), "COLUMNS": "200"}  # a wide terminal: no cut names
    env.pop("HEADWATER_DATABASE_URL", None)
    demo = subprocess.run(
        [f"{work_dir}/.venv/bin/headwater", "demo"], cwd=work_dir, env=env, capture_output=True, text=True, timeout=600
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    failures: list[str] = []
    with headwater_serve(data_dir) as base:
        for example in examples:
            command = example.command.replace("http://127.0.0.1:8000", base)
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=work_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            missing = [text for text in example.expected if text not in result.stdout]
            if result.returncode != 0 or missing:
                failures.append(
                    f"{example.page}:{example.line}: {example.command}\n  exit {result.returncode}; missing {missing}\n"
                    f"  stdout: {result.stdout[-2000:]}\n  stderr: {result.stderr[-2000:]}"
                )
    assert not failures, "\n".join(failures)
