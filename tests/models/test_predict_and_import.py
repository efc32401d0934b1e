"""`cocolens train` and `cocolens predict` end to end on a tiny dataset, and their one-line errors.

One foreground training (the light model, 1 epoch on 2 images at 128 px) feeds every test here:
its job folder, its checkpoint (reloaded with weights_only=True), the model it imported and the
Model quality page showing it.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cli import main
from models import job_state
from store.project import Project
from tests.conftest import REPO
from tests.models.test_jobs import make_project
from tests.models.tiny_configs import FAST

FAST_TOML = "\n".join(
    f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in FAST.items()
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`cocolens train` once, in the foreground; returns the project, the printed summary and stderr."""
    folder = tmp_path_factory.mktemp("cli_train")
    project = make_project(folder)
    config = folder / "fast.toml"
    config.write_text(FAST_TOML + "\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            ["train", "--project", str(project), "--train", "tr", "--val", "va", "--config", str(config)]
        )
    return {"project": project, "code": code, "summary": json.loads(out.getvalue()), "stderr": err.getvalue()}


@pytest.mark.slow
def test_cli_train_runs_a_job_in_the_foreground_and_imports_its_model(trained):
    assert trained["code"] == 0, trained["stderr"]
    summary = trained["summary"]
    assert summary["status"] == "succeeded" and summary["best_epoch"] == 1
    assert summary["model"] == f"train-{summary['job']}"
    # store.progress_report's lines (stderr is no terminal here): the last one with the val AP
    assert re.search(r"^train: (\d+)/\1 \(100%\).*, bbox_AP \d\.\d{3}, segm_AP", trained["stderr"], re.M)
    assert re.search(r"^predict: (\d+)/\1 \(100%\)", trained["stderr"], re.M)
    project = Project(trained["project"])
    job = job_state.read_job(project.jobs_dir / summary["job"])  # listed like a background job
    assert job["status"] == "succeeded" and job["pid"] and job["ended_at"] >= job["started_at"]
    assert [j["id"] for j in job_state.list_jobs(project)] == [summary["job"]]
    assert "training maskrcnn_mobilenet_v2_fpn on cpu: 2 train / 2 val images" in job_state.log_tail(
        project.jobs_dir / summary["job"]
    )
    meta = project.model_meta(summary["model"])
    assert meta["job"] == summary["job"] and meta["checkpoint"] == summary["checkpoint"]
    assert summary["imported"]["predictions"] == meta["predictions"] > 0


@pytest.mark.slow
def test_cli_predict_reloads_the_checkpoint_safely_and_imports_the_same_predictions(trained, capsys):
    import torch

    project = trained["project"]
    checkpoint = trained["summary"]["checkpoint"]
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(payload) == {"format", "state_dict", "meta"}
    assert payload["meta"]["label_to_category"] == {"1": 1, "2": 2}
    args = [
        "predict",
        "--project",
        str(project),
        "--checkpoint",
        checkpoint,
        "--dataset",
        "va",
        "--model",
        "again",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    first = Project(project).model_meta(trained["summary"]["model"])
    again = Project(project).model_meta("again")
    # same checkpoint, same images, same threshold: the same predictions
    assert again["predictions"] == first["predictions"] == summary["predictions"]
    assert again["checkpoint"] == checkpoint and "job" not in again
    assert json.loads(Path(summary["results_file"]).read_text()) == json.loads(
        (Path(checkpoint).parent / job_state.RESULTS_FILE).read_text()
    )


@pytest.mark.slow
def test_model_quality_page_shows_the_trained_model(trained):
    page = REPO / "pages" / "model_quality.py"  # a rename fails here, not a skip
    model = trained["summary"]["model"]
    at = AppTest.from_file(str(page), default_timeout=120)
    at.session_state["project"] = str(trained["project"])
    at.query_params["model"] = model
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="mq_model").value == model
    stats = json.loads((Path(trained["project"]) / "models" / model / "eval.json").read_text())["bbox"][
        "stats"
    ]
    shown = {m.label: m.value for m in at.metric}
    assert shown["AR100"] == (f"{stats['AR100']:.3f}" if stats["AR100"] >= 0 else "n/a")
    categories = set(at.dataframe[0].value["category"])
    assert categories and categories <= {"red", "orange"}


def test_cli_bad_input_is_one_line_with_exit_code_2(tmp_path, capsys):
    project = make_project(tmp_path, {"tr": 2})
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("max_side = 8\n")
    not_a_checkpoint = tmp_path / "evil.pt"
    not_a_checkpoint.write_bytes(pickle.dumps(Path("/")))  # an object, not tensors: must be refused
    cases = [
        (
            ["train", "--train", "nope", "--val", "tr"],
            "field '--train': no dataset 'nope' (the project has tr)",
        ),
        (
            ["train", "--train", "tr", "--val", "tr", "--config", str(bad_config)],
            "field 'max_side': must be >= 32",
        ),
        (
            ["predict", "--checkpoint", str(tmp_path / "none.pt"), "--dataset", "tr", "--model", "m"],
            "field '--checkpoint': no such checkpoint file",
        ),
        (
            ["predict", "--checkpoint", str(not_a_checkpoint), "--dataset", "tr", "--model", "m"],
            "not a cocolens checkpoint (torch.load(weights_only=True) refused it",
        ),
        (
            ["predict", "--checkpoint", str(not_a_checkpoint), "--dataset", "zz", "--model", "m"],
            "field '--dataset': no dataset 'zz'",
        ),
    ]
    for args, message in cases:
        assert main([args[0], "--project", str(project), *args[1:]]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert not Project(project).jobs_dir.exists() or not list(Project(project).jobs_dir.glob("*/job.json"))
    assert Project(project).models() == []
