"""Meta-tests over the package's layers: a provider sits below the pipeline, never above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import janitor
from janitor.clouds import registry
from janitor.model import Cloud

CLOUDS = Path(janitor.__file__).parent / "clouds"
FORBIDDEN = "janitor.pipeline"


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module a file under `janitor/clouds` imports, absolute or relative, at any depth
    (inside functions and `if TYPE_CHECKING:` too). `source`: text to read as if it were `path`."""
    text = path.read_text(encoding="utf-8") if source is None else source
    package = ["janitor", *path.relative_to(CLOUDS.parent).with_suffix("").parts][:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_pipeline(modules: set[str]) -> bool:
    return any(m == FORBIDDEN or m.startswith(FORBIDDEN + ".") for m in modules)


def cloud_files() -> list[Path]:
    return sorted(CLOUDS.rglob("*.py"))


def test_the_walk_sees_the_cloud_packages() -> None:
    names = {p.relative_to(CLOUDS).as_posix() for p in cloud_files()}
    assert {"base.py", "registry.py", "aws/provider.py"} <= names


@pytest.mark.parametrize("path", cloud_files(), ids=lambda p: p.relative_to(CLOUDS).as_posix())
def test_no_module_under_clouds_imports_the_pipeline(path: Path) -> None:
    assert not imports_pipeline(imported_modules(path)), f"{path} imports {FORBIDDEN}"


@pytest.mark.parametrize(
    "source",
    [
        "from janitor.pipeline import Task\n",
        "import janitor.pipeline\n",
        "from janitor import pipeline\n",
        "def f() -> None:\n    from ...pipeline import Task\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from janitor.pipeline import X\n",
    ],
)
def test_the_check_catches_every_form_of_the_import(source: str) -> None:
    # As if it were a provider module, janitor/clouds/aws/x.py, so that `...` is `janitor`.
    assert imports_pipeline(imported_modules(CLOUDS / "aws" / "x.py", source))


def test_the_check_passes_other_imports() -> None:
    source = "from janitor.clouds.base import Task\nfrom . import session\nimport janitor.policy\n"
    assert not imports_pipeline(imported_modules(CLOUDS / "aws" / "x.py", source))


def test_the_task_record_lives_below_the_pipeline() -> None:
    from janitor.clouds.base import Task

    assert Task.__module__ == "janitor.clouds.base"


@pytest.mark.parametrize("cloud", sorted(registry.PROVIDERS))
def test_every_registered_provider_has_the_provider_interface(cloud: Cloud) -> None:
    module = registry.provider(cloud)
    assert callable(module.tasks)
    assert callable(module.restore_scope)


def test_every_cloud_with_a_kind_has_a_provider() -> None:
    assert {spec.cloud for spec in registry.KINDS.values()} <= set(registry.PROVIDERS)
