"""The documentation's promises that code can check: the exit-code table, the two set-up commands, a
README short enough to read first, and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from orkes_provision.errors import EXIT_CODES

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_exit_code_page_matches_the_code() -> None:
    section = (REPO / "docs" / "exit-codes.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.MULTILINE))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    block = setup.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_readme_project_file_example_is_valid(tmp_path: Path) -> None:
    from orkes_provision.workers.project import load_project

    section = (REPO / "docs" / "workers.md").read_text()
    example = section.split("```toml", 1)[1].split("```", 1)[0]
    (tmp_path / "orkes-provision.toml").write_text(example)
    project = load_project(tmp_path / "orkes-provision.toml")
    assert project is not None
    assert project.app_name == "greetings-worker"
    assert [w.name for w in project.workers] == ["greetings"]


def test_the_readme_stays_short_enough_to_read_first() -> None:
    assert len(README.splitlines()) < 200


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^#+ (.*)", line)
        if heading:
            slug = _slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_relative_link_of_the_documentation_leads_to_a_file_and_heading_that_exist() -> None:
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "benchmarks" / "README.md",
             *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []
