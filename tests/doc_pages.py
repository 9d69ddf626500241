"""The documentation's text: the README and the Markdown pages of docs/, whose commands and code
blocks the tests run as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
"""Every page a user reads, the README first."""


def text(page: str) -> str:
    """The text of ``page``, a path relative to the repository (``"docs/guide/python.md"``)."""
    return (ROOT / page).read_text()


def blocks(language: str) -> list[tuple[str, str]]:
    """``(page, code)`` of every fenced block of ``language`` on every page, in reading order."""
    return [(str(page.relative_to(ROOT)), code) for page in PAGES
            for code in re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S)]


def block_after(page: str, after: str, language: str = "python") -> str:
    """The first ``language`` block of ``page`` after the text ``after``."""
    found = re.search(re.escape(after) + rf".*?```{language}\n(.*?)```", text(page), re.S)
    assert found, f"{page}: no {language} block after {after!r}"
    return found.group(1)
