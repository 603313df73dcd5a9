"""The README stays a short way in: at most 15 KB, the two set-up commands
verbatim (.ci/run runs the test one), a tour of real commands, and links that
land on pages of the documentation site."""

from __future__ import annotations

import re

from tests.conftest import ROOT, readme_tour

README = ROOT / "README.md"
#: The quick start's two commands, verbatim.
SETUP_COMMANDS = (
    "scripts/bootstrap && .venv/bin/featctl deploy && .venv/bin/featctl score --weights "
    "conv_rate=0.7,acc_rate=0.3 --driver 1001 --driver 1002 --output table",
    "scripts/bootstrap --dev && .venv/bin/pytest",
)


def test_readme_is_at_most_15_kb() -> None:
    size = README.stat().st_size
    assert size <= 15 * 1024, f"README.md is {size} bytes; keep it at most 15 KB and move the rest into docs/"


def test_readme_keeps_the_two_setup_commands_verbatim() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README.read_text(encoding="utf-8"), re.DOTALL)
    for command in SETUP_COMMANDS:
        assert command in blocks, f"README.md lost the set-up command {command!r}"


def test_ci_runs_the_readmes_test_command_and_builds_the_site() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    bootstrap, test = SETUP_COMMANDS[1].split(" && ")
    assert re.search(rf"^{re.escape(bootstrap)}$", ci, re.M) and re.search(rf"^{re.escape(test)}$", ci, re.M)
    assert re.search(r"^\.venv/bin/mkdocs build --strict --site-dir ", ci, re.M)


def test_tour_covers_the_issue_s_commands_in_order() -> None:
    names = [c.split()[0] for c in readme_tour()]
    assert names == ["deploy", "score", "online", "historical", "status", "destroy"]
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("$ "):
            assert line.startswith("$ .venv/bin/featctl "), line


def test_readme_links_land_on_site_pages() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert links, "the README should link into docs/"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for link in links:
        assert (ROOT / link).is_file(), link
        assert link.removeprefix("docs/") in nav, f"{link} is not in mkdocs.yml's nav"


def test_every_doc_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [p for p in pages if f": {p}" not in nav] == []
