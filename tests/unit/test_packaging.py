"""The distribution: a name of its own on the package index; the import package and the command
stay `janitor`; extras and install lines name the distribution itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# PEP 508: a requirement starts with the distribution name, then optional [extras].
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        project: dict[str, Any] = tomllib.load(fh)["project"]
    return project


def test_the_distribution_is_not_called_janitor() -> None:
    """`janitor` on the package index is an unrelated project: `pip install janitor` gets it."""
    name = _project()["name"]
    assert _normalise(name) != "janitor"
    assert _normalise(name) == "ml-janitor"


def test_the_command_and_the_import_package_stay_janitor() -> None:
    assert _project()["scripts"] == {"janitor": "janitor.cli:main"}
    assert (ROOT / "src" / "janitor" / "__init__.py").is_file()


def test_extras_that_name_the_project_name_the_distribution_itself() -> None:
    project = _project()
    own = _normalise(project["name"])
    extras: dict[str, list[str]] = project["optional-dependencies"]
    self_refs = []
    for requirements in extras.values():
        for requirement in requirements:
            match = _REQUIREMENT.match(requirement)
            assert match, requirement
            dist = _normalise(match.group(1))
            assert dist != "janitor", f"{requirement!r} would install the unrelated `janitor`"
            if dist == own:
                self_refs.append(match.group(2) or "")
    assert self_refs, "`all` names the distribution's own extras"
    for named in self_refs:
        for extra in named.split(","):
            assert extra.strip() in extras, f"extra {extra!r} is not defined"
    assert any(set(x.split(",")) >= {"aws", "slack", "daemon", "demo"} for x in self_refs)


def test_install_lines_in_the_docs_and_messages_name_the_distribution() -> None:
    own = _normalise(_project()["name"])
    texts = [ROOT / "README.md", *sorted((ROOT / "src").rglob("*.py"))]
    lines = [
        line
        for path in texts
        for line in path.read_text(encoding="utf-8").splitlines()
        if "pip install" in line and "[" in line
    ]
    assert lines, "the README says how to install"
    for line in lines:
        for quoted in re.findall(r"pip install\s+'([^']+)'", line):
            match = _REQUIREMENT.match(quoted)
            assert match, line
            if not quoted.startswith("."):  # `pip install -e '.[all,dev]'` is the work tree
                assert _normalise(match.group(1)) == own, line
