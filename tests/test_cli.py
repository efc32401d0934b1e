"""The ``cocolens`` entry point: main's exit code, and no final garbage-collection sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_RUN = """
import atexit, gc, sys
sys.path.insert(0, {repo!r})
import cli
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
sys.argv = ["cocolens", *sys.argv[1:]]
cli.run()
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    code = _RUN.format(repo=str(REPO))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_the_command_exits_with_mains_code_after_freezing_what_is_alive(tmp_path: Path) -> None:
    missing = _run(
        "import",
        "coco",
        "--images",
        str(tmp_path),
        "--annotations",
        str(tmp_path / "no.json"),
        "--project",
        str(tmp_path / "p"),
    )
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.startswith("cocolens: error:") and "no.json" in missing.stderr
    assert missing.stdout.split() == ["frozen", "True"]
    helped = _run("--help")
    assert helped.returncode == 0 and "import" in helped.stdout


def test_the_installed_command_is_the_entry_point_that_exits_this_way() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"cocolens": "cli:run"}
