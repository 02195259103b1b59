"""The default policy's comments show settings that work when uncommented."""

from __future__ import annotations

import re
from pathlib import Path

from janitor.policy import parse_policy
from janitor.state import open_store

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICIES = [ROOT / "src/janitor/data/default.yaml", ROOT / "policies/default.yaml"]


def _uncommented_state_url(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if re.match(r"#\s*state_url:", ln)]
    policy = parse_policy(text.replace(line, line.lstrip("# ")), str(path), env={})
    assert policy.state_url is not None
    return policy.state_url


def test_the_commented_state_url_is_an_absolute_path_with_four_slashes(tmp_path: Path) -> None:
    for path in DEFAULT_POLICIES:
        url = _uncommented_state_url(path)
        assert url.startswith("sqlite:////"), url
        example = Path(url.removeprefix("sqlite:///"))
        assert example.is_absolute(), url
        # The same form, pointed at a scratch directory, opens a store at that absolute path
        # whatever the working directory.
        target = tmp_path / example.relative_to(example.anchor)
        store = open_store(f"sqlite:///{target}")
        assert store.get_states([]) == {}
        assert target.is_file()
