"""Run ``cocolens`` in a child process under a wall-clock timeout and an address-space limit.

Inputs that once segfaulted, hung or ate all memory are replayed here, so a regression fails one
test instead of taking the test run (or the CI machine) down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Address space, not resident memory: numpy/pyarrow/DuckDB map ~1.5 GB at import, so 6 GB leaves
# room for honest work while an attempt to allocate h×w for a 45000² frame (8 GB) fails at once.
MEMORY_LIMIT_BYTES = 6 * 1024**3
TIMEOUT_S = 120

_RUNNER = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
settings = json.loads(sys.argv[2])
if settings.get("stream_above") is not None:
    import store.coco_reader
    store.coco_reader.STREAM_ABOVE_BYTES = settings["stream_above"]
from cli import main
sys.exit(main(sys.argv[3:]))
"""


def run_guarded(
    argv: list[str],
    timeout: float = TIMEOUT_S,
    memory: int = MEMORY_LIMIT_BYTES,
    stream_above: int | None = None,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``cocolens ARGV`` in a child; a timeout is exit code -9 ('hung')."""
    settings = json.dumps({"stream_above": stream_above})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(memory), settings, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return -9, out, f"hung: no exit within {timeout:.0f} s\n{err}".strip()
    return done.returncode, done.stdout, done.stderr.strip()


def assert_one_line(code: int, err: str, fragments: list[str]) -> None:
    """Exit 2, one line on stderr holding every fragment, no traceback."""
    assert code == 2, (code, err[-3000:])
    assert len(err.splitlines()) == 1, err[-3000:]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
