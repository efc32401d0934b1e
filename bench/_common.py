"""What several bench scripts do alike: their command line, timing a child process, the import command.

Run as ``python bench/NAME.py``, a script finds this module beside it (``bench/`` is ``sys.path[0]``).
Bench scripts must not import from ``tests/``; what they share lives here.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from pathlib import Path


def counts_parser(description: str, **counts: int) -> argparse.ArgumentParser:
    """An argument parser with one whole-number option per keyword (``knn_rows=10`` is ``--knn-rows``,
    default 10): the sizes and repeats every bench takes. Add the script's other options to it."""
    parser = argparse.ArgumentParser(description=description)
    for name, default in counts.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    return parser


def user_environment() -> dict[str, str]:
    """This process's environment as a user's shell has it: Python writes and reads bytecode caches.

    A development shell may set ``PYTHONDONTWRITEBYTECODE``; a timed child would then compile every
    module of the repository from source on each run (~0.1 s of a 1.6 s import here), while the
    yardstick's modules, installed by pip, come precompiled. A warm-up run writes the caches.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_timed(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    """Run ``command`` to completion; its output and wall, user and system seconds (children included).

    CPU time is read from ``RUSAGE_CHILDREN`` before and after, so it counts the command's own worker
    processes as well, which ``time.process_time`` in this process would miss.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, {
        "wall": wall,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
    }


def import_coco_args(images: Path, annotations: Path, project: Path, dataset: str) -> list[str]:
    """The arguments of ``cocolens import coco`` (after ``cli.py``) for one dataset."""
    options = {"--images": images, "--annotations": annotations, "--project": project, "--dataset": dataset}
    return ["import", "coco", *(part for option, value in options.items() for part in (option, str(value)))]
