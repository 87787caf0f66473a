"""The README stays a newcomer's page, and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not inside code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # nor inside inline code
    return [t for t in LINK.findall(text) if not re.match(r"^(https?:|mailto:|#)", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_the_readme_links_every_docs_page_and_stays_short():
    linked = {Path(t).name for t in relative_links(REPO / "README.md") if t.startswith("docs/")}
    assert linked == {p.name for p in PAGES[1:]}
    assert len((REPO / "README.md").read_text().splitlines()) <= 180


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "x.md"
    page.write_text("[ok](x.md) [gone](nope.md) [web](https://example.com) `[code](no.md)`\n"
                    "```\n[block](no.md)\n```\n")
    assert relative_links(page) == ["x.md", "nope.md"]


def test_docs_metrics_explains_every_key_the_registry_writes():
    """docs/extending.md's metric recipe: a new key without a row in docs/metrics.md fails here."""
    from dcgan.metrics.registry import ALL_KEYS

    doc = (REPO / "docs" / "metrics.md").read_text()
    missing = [k.key for k in ALL_KEYS if f"`{k.key}`" not in doc]
    assert not missing, f"docs/metrics.md has no row for {missing}"
