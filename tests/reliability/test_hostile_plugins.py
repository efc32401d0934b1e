"""Broken custom metrics: ``cocolens metrics --add`` names the module or metric in one line, exit 2.

A plugin that cannot be loaded, or a table metric that raises or returns the wrong number of
values, changes nothing in the project (not even project.json's plugin list). A pixel metric
that raises on an image is different: it is one image among thousands, so its value is null for
that image and the pass goes on (compute_image never raises).
"""

from __future__ import annotations

import json
import sys
import textwrap

import pandas as pd
import pytest

from metrics import registry
from tests.reliability.hostile import assert_refused, run_cli

HEADER = "from metrics.registry import image_metric, object_metric, image_table_metric\nimport numpy as np\n"

# case id → (plugin source, or None for a file that is not there; fragments of the error line)
PLUGIN_CASES: dict[str, tuple[str | None, list[str]]] = {
    "file-not-found": (None, ["'--add'", "custom metric file not found"]),
    "syntax-error": ("def broken(:\n    pass\n", ["'--add'", "SyntaxError"]),
    "raises-on-import": ("raise RuntimeError('plugin exploded at import')\n", ["RuntimeError", "exploded"]),
    "imports-missing-package": (
        "import no_such_package_cocolens\n",
        ["ModuleNotFoundError", "no_such_package"],
    ),
    "name-not-identifier": (
        "@object_metric(name='object size', description='x')\ndef f(objects, images):\n    return objects['area']\n",
        ["ValueError", "'object size'", "identifier"],
    ),
    "metric-raises": (
        "@object_metric(description='x')\ndef boom_metric(objects, images):\n    return 1 / 0\n",
        ["metric boom_metric", "dataset small", "raised ZeroDivisionError"],
    ),
    "wrong-length": (
        "@object_metric(description='x')\ndef short_metric(objects, images):\n    return np.zeros(3)\n",
        ["metric short_metric", "returned (3,) values, expected 8", "one per object"],
    ),
    "image-table-wrong-length": (
        "@image_table_metric(description='x')\ndef long_metric(objects, images):\n"
        "    return np.zeros(len(images) + 1)\n",
        ["metric long_metric", "expected 4", "one per image"],
    ),
    "returns-strings": (
        "@object_metric(description='x')\ndef text_metric(objects, images):\n"
        "    return ['big'] * len(objects)\n",
        ["metric text_metric", "raised ValueError"],
    ),
    "good-then-raising": (
        "@object_metric(description='x')\ndef fine_metric(objects, images):\n    return objects['area']\n\n"
        "@object_metric(description='x')\ndef late_boom(objects, images):\n    raise KeyError('no_column')\n",
        ["metric late_boom", "raised KeyError"],
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import imported_small

    return imported_small(tmp_path_factory.mktemp("plugins"), 4, "--workers", "1")


@pytest.fixture(autouse=True)
def clean_registry():
    """Plugins register into the process-wide registry: restore it so no other test sees them."""
    registry.ensure_builtin_loaded()
    saved = dict(registry._REGISTRY)
    modules = set(sys.modules)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith("cocolens_plugin_") or name.startswith("reliability_plugin_"):
            del sys.modules[name]


@pytest.mark.parametrize("case_id", list(PLUGIN_CASES))
def test_broken_plugin_is_one_line_exit_2_project_unchanged(project, tmp_path, capsys, case_id):
    source, fragments = PLUGIN_CASES[case_id]
    plugin = tmp_path / f"plugin_{case_id.replace('-', '_')}.py"
    if source is not None:
        plugin.write_text(HEADER + textwrap.dedent(source))
    err = assert_refused(
        capsys,
        ["metrics", "--project", str(project), "--add", str(plugin), "--workers", "1"],
        project,
        fragments,
    )
    assert "Traceback" not in err


def test_dotted_module_not_found(project, capsys):
    assert_refused(
        capsys,
        ["metrics", "--project", str(project), "--add", "no_such_module_cocolens.metrics"],
        project,
        ["no_such_module_cocolens.metrics", "'--add'", "ModuleNotFoundError"],
    )


def test_pixel_metric_that_raises_is_null_and_the_pass_goes_on(project, tmp_path, capsys):
    plugin = tmp_path / "pixel_boom.py"
    plugin.write_text(
        HEADER + "@image_metric(description='x')\ndef pixel_boom(ctx):\n"
        "    if ctx.width and ctx.rgb.mean() > 100:\n        raise RuntimeError('bright image')\n"
        "    return float(ctx.rgb.mean())\n"
    )
    code, out, err = run_cli(
        capsys, ["metrics", "--project", str(project), "--add", str(plugin), "--workers", "1"]
    )
    assert code == 0, err
    values = pd.read_parquet(project / "datasets" / "small" / "metrics" / "image__pixel_boom.parquet")
    assert len(values) == 4 and values["value"].isna().any() and values["value"].notna().any()
    assert str(plugin) in json.loads(out)["plugins"]
    assert str(plugin) in json.loads((project / "project.json").read_text())["plugins"]
    assert not (project / ".staging").exists()
