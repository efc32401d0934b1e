"""The app's chrome: no Deploy button, and Material icons rather than emoji (which draw as empty boxes
where no emoji font is installed, as on a stock Debian desktop or server browser)."""

from __future__ import annotations

import ast
import re
import tomllib

from tests.conftest import REPO

# Emoji and pictographs (and the dingbats / symbols that fonts draw as emoji).
EMOJI = re.compile("[\U0001f000-\U0001ffff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f]")


def test_toolbar_has_no_deploy_button():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"


def test_no_emoji_in_the_app_text():
    """Every string the app can show (page titles, labels, icons, help) is free of emoji."""
    found = []
    for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and EMOJI.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "\n".join(found)
