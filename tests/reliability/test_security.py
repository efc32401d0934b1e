"""Security: local-only server, paths that stay inside their roots, no unpickling, no code the user did not name."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from cli import _streamlit_command, build_parser
from store.errors import InputError
from store.project import Project, check_name
from tests.conftest import REPO, cli_import, write_small_coco
from tests.reliability.hostile import assert_refused, run_cli

# ----- the server binds to this machine only ----------------------------------------------------


def test_app_binds_to_localhost_unless_told_otherwise():
    for command in ("visualise", "visualize", "demo"):
        assert build_parser().parse_args([command]).address == "127.0.0.1", command
    args = build_parser().parse_args(["visualise", "--project", "p"])
    argv = _streamlit_command(args.project, args.port, args.address)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert "--server.headless" in argv and argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
    told = build_parser().parse_args(["visualise", "--address", "0.0.0.0"])
    assert _streamlit_command(None, told.port, told.address)[argv.index("--server.address") + 1] == "0.0.0.0"


def test_streamlit_config_binds_to_localhost():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False


# ----- names and paths stay inside their roots ----------------------------------------------------

BAD_NAMES = [
    "../x",
    "..",
    ".",
    "a/b",
    "a\\b",
    "",
    "/abs",
    ".hidden",
    "-rf",
    "x" * 101,
    "a\x00b",
    "naïve/../x",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_dataset_and_model_names_cannot_leave_the_project(name, tmp_path):
    for kind in ("dataset", "model"):
        with pytest.raises(InputError, match="is not a valid"):
            check_name(kind, name)
    project = Project(tmp_path)
    with pytest.raises(InputError):
        project.dataset_dir(name)
    with pytest.raises(InputError):
        project.model_dir(name)


def test_job_ids_from_urls_cannot_leave_the_jobs_folder(tmp_path):
    from models.job_state import job_path

    for job_id in ("../../etc", "20250101-120000-ab12/../../x", ""):
        with pytest.raises(InputError, match="is not a job id"):
            job_path(Project(tmp_path), job_id)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict:

    folder = tmp_path_factory.mktemp("security")
    images, ann = write_small_coco(folder / "src", n_images=2)
    root = folder / "project"
    cli_import(images, ann, root, "small", "--workers", "1")
    return {"root": root, "images": images, "ann": ann, "folder": folder}


def test_cli_refuses_names_that_escape(project, tmp_path, capsys):
    root = project["root"]
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}]))
    argv = ["import", "predictions", str(preds), "--project", str(root), "--quiet"]
    assert_refused(capsys, [*argv, "--model", "../../outside"], root, ["not a valid model name"])
    assert_refused(
        capsys, [*argv, "--model", "m", "--dataset", "../small"], root, ["not a valid dataset name"]
    )
    train = ["train", "--project", str(root), "--train", "../small", "--val", "small"]
    assert_refused(capsys, train, root, ["not a valid dataset name"])
    assert not (root.parent / "outside").exists()


@pytest.mark.parametrize(
    "file_name",
    ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "a/../../b.jpg", "C/../../x.jpg"],
)
def test_file_names_that_climb_out_are_refused(project, tmp_path, capsys, file_name):
    coco = json.loads(project["ann"].read_text())
    coco["images"][1]["file_name"] = file_name
    bad = tmp_path / "climb.json"
    bad.write_text(json.dumps(coco))
    argv = ["import", "coco", "--images", str(project["images"]), "--annotations", str(bad)]
    assert_refused(
        capsys,
        [*argv, "--project", str(project["root"]), "--dataset", "climb", "--quiet"],
        project["root"],
        ["images[1] (id=1)", "'file_name'", "leaves the images folder"],
    )


def test_export_out_is_the_users_choice_and_images_stay_under_it(project, tmp_path, capsys):
    out = tmp_path / "anywhere" / "export.json"
    out.parent.mkdir()
    code, _, err = run_cli(
        capsys, ["export", "coco", "--project", str(project["root"]), "--out", str(out), "--max-side", "64"]
    )
    assert code == 0, err
    written = [p for p in (tmp_path / "anywhere").rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.parent.resolve()) for p in written)


# ----- no unpickling anywhere -------------------------------------------------------------------

UNSAFE = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\bread_pickle\("), "pandas.read_pickle"),
    (re.compile(r"\b(joblib|dill|cloudpickle|shelve)\b"), "pickle-based library"),
    (re.compile(r"\byaml\.load\("), "yaml.load"),
]


def _source_files() -> list[Path]:
    """Every .py file of the code base: what git tracks or would track (git-ignored scratch excluded).

    Without git (an unpacked archive), the tree is walked with .venv, .git and friends pruned.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.py"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", "venv", ".git", "node_modules", "__pycache__", ".hypothesis", ".pytest_cache"}
        files = []
        for folder, dirs, names in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in skip]
            files += [Path(folder) / n for n in names if n.endswith(".py")]
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def test_no_pickle_loading_in_the_code_base():
    files = _source_files()
    assert len(files) > 50
    found = []
    for path in files:
        text = path.read_text()
        for pattern, what in UNSAFE:
            found += [f"{path.relative_to(REPO)}: {what}" for _ in pattern.finditer(text)]
    assert not found, found


def _calls(tree: ast.AST, dotted: str) -> list[ast.Call]:
    owner, name = dotted.split(".")
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == owner
    ]


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_every_torch_load_is_weights_only_and_every_np_load_refuses_pickles():
    torch_loads = np_loads = 0
    for path in _source_files():
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "torch.load"):
            torch_loads += 1
            assert _keyword(call, "weights_only") is True, f"{path.relative_to(REPO)}:{call.lineno}"
        for call in _calls(tree, "np.load") + _calls(tree, "numpy.load"):
            np_loads += 1
            assert _keyword(call, "allow_pickle") is False, f"{path.relative_to(REPO)}:{call.lineno}"
    assert torch_loads >= 2  # models/predict.py and the tests: the check is looking at real calls


# ----- custom metric code runs only when the user names it ---------------------------------------

TRAP = "from pathlib import Path\nPath({marker!r}).write_text('executed')\n"


def test_code_lying_around_is_never_imported(project, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "executed.txt"
    root = project["root"]
    for folder in (root, root / "datasets", root / "datasets" / "small", tmp_path):
        for name in ("plugin.py", "metrics.py", "cocolens_plugin_metrics.py", "conftest_x.py"):
            (folder / name).write_text(TRAP.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, ["metrics", "--project", str(root), "--workers", "1"])[0] == 0
    assert run_cli(capsys, ["report", "--project", str(root), "--json"])[0] == 0
    argv = ["import", "coco", "--images", str(project["images"]), "--annotations", str(project["ann"])]
    assert (
        run_cli(capsys, [*argv, "--project", str(root), "--dataset", "again", "--quiet", "--workers", "1"])[0]
        == 0
    )
    assert not marker.exists(), "cocolens imported a module nobody named"
    assert json.loads((root / "project.json").read_text())["plugins"] == []
